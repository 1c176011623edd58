"""``unix_connect`` picks the same URI on every API: ``ws://localhost/`` unless TLS is asked for."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import tether.sync
from tests.backends import Backend


def test_unix_connect_speaks_plain_http_unless_tls_is_asked_for(
    backend: Backend, tmp_path: Path
) -> None:
    path = str(tmp_path / "ws.sock")
    seen: list[tuple[str, str]] = []

    def echo(ws: tether.sync.ServerConnection) -> None:
        assert ws.request is not None
        seen.append((ws.request.headers["Host"], ws.request.path))
        for message in ws:
            ws.send(message)

    async def body() -> None:
        # ssl=False means no TLS, as leaving ssl out does.
        for options in ({}, {"ssl": None}, {"ssl": False}):
            ws = await backend.unix_connect(path, **options)
            await ws.send("over a Unix socket")
            assert await ws.recv() == "over a Unix socket"
            await ws.close()
        ws = await backend.unix_connect(path, "ws://tether.test/api?x=1", ssl=False)
        await ws.close()
        with pytest.raises(ValueError, match="ssl=False"):
            await backend.unix_connect(path, "wss://localhost/", ssl=False)

    with tether.sync.unix_serve(echo, path) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        backend.run(body)
    thread.join(10)
    assert seen == [("localhost", "/")] * 3 + [("tether.test", "/api?x=1")]
