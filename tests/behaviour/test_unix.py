"""``unix_connect`` picks the same URI on every API: ``ws://localhost/`` unless TLS is asked for."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import tether
import tether.sync
from tests.backends import Backend, Face, echo_until_closed


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


def listening_family(backend: Backend) -> int:
    """The address family of the server's listening socket."""
    server = backend.server
    sockets = [server.socket] if backend.api == "sync" else list(server.sockets)
    (listener,) = sockets
    return int(listener.family)


def client_family(ws: Face) -> int:
    """The address family of a client's socket."""
    native = ws.native
    if isinstance(native, tether.ClientConnection):
        assert native.transport is not None
        return int(native.transport.get_extra_info("socket").family)
    if isinstance(native, tether.sync.ClientConnection):
        return int(native.socket.family)
    return int(native._stream_socket().family)


@pytest.fixture
def socket_path() -> Iterator[str]:
    # A short directory: Unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="tether-") as directory:
        yield os.path.join(directory, "ws.sock")


def test_unix_serve_and_connect(backend: Backend, socket_path: str) -> None:
    serve_and_connect(backend, socket_path)


@pytest.mark.apis("asyncio", "sync")
def test_serve_with_unix_true(backend: Backend, socket_path: str) -> None:
    # tether.trio.serve takes a port or listeners, as websockets.trio's does.
    serve_and_connect(backend, socket_path, unix=True)


def serve_and_connect(backend: Backend, socket_path: str, **options: Any) -> None:
    """Serve on a Unix socket; connect with each spelling of a Unix socket's client."""
    requests: list[tuple[str, str]] = []

    async def echo(ws: Face) -> None:
        request = ws.native.request
        requests.append((request.path, request.headers["Host"]))
        await echo_until_closed(ws)

    async def body() -> None:
        async with backend.unix_serve(echo, socket_path, **options):
            assert listening_family(backend) == socket.AF_UNIX
            encoded = quote(socket_path, safe="")
            clients = [
                await backend.unix_connect(socket_path),
                await backend.unix_connect(socket_path, "ws://tether.test/api"),
                await backend.connect("ws://localhost/chat", unix=True, path=socket_path),
                await backend.connect(f"ws+unix://{encoded}/chat?room=1"),
                # Without a target, the request asks for "/".
                await backend.connect(f"ws+unix://{encoded}"),
                # An empty authority leaves the socket path to path=.
                await backend.connect("ws+unix:///empty-authority", path=socket_path),
            ]
            for number, ws in enumerate(clients):
                assert client_family(ws) == socket.AF_UNIX
                await ws.send(f"over a Unix socket {number}")
                assert await ws.recv() == f"over a Unix socket {number}"
                await ws.send(b"\x00binary")
                assert await ws.recv() == b"\x00binary"
                await ws.close()
        # Each client waited for its handshake, not for its handler to start:
        # on threads, two handlers may record their requests in either order.
        assert sorted(requests) == sorted(
            [
                ("/", "localhost"),
                ("/api", "tether.test"),
                ("/chat", "localhost"),
                ("/chat?room=1", "localhost"),
                ("/", "localhost"),
                ("/empty-authority", "localhost"),
            ]
        )

    backend.run(body)


def test_unix_socket_missing(backend: Backend, tmp_path: Path) -> None:
    async def body() -> None:
        with pytest.raises(FileNotFoundError):
            await backend.connect(f"ws+unix://{quote(str(tmp_path / 'absent.sock'), safe='')}/")
        with pytest.raises(FileNotFoundError):
            await backend.unix_connect(str(tmp_path / "absent.sock"))
        with pytest.raises(ValueError, match="not both"):
            await backend.connect("ws+unix://%2Ftmp%2Fa.sock/", path="/tmp/b.sock")

    backend.run(body)
