"""websockets 17's connect parameters, on every API: create_connection, pairs, limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import Backend, Face
from tether.exceptions import ConnectionClosedError, HeaderLineTooLong, InvalidStatus
from tether.protocol.http11 import Limits


async def echo(ws: Face) -> None:
    await ws.send(await ws.recv(timeout=None))
    await ws.wait_closed()


def test_create_connection(backend: Backend) -> None:
    made: list[Any] = []
    base = backend.module("client").ClientConnection

    class Recording(base):  # type: ignore[misc, valid-type]
        """A connection class of the application's, as websockets users subclass theirs."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    async def body() -> None:
        async with backend.serve(echo) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/", create_connection=Recording)
            assert isinstance(ws.native, Recording)
            await ws.send("mine")
            assert await ws.recv() == "mine"
            await ws.close()
            assert made == [ws.native]

    backend.run(body)


def test_max_size_and_max_queue_pairs(backend: Backend) -> None:
    async def fragments(ws: Face) -> None:
        queue = ws.native._messages
        await ws.send(str((queue.full_at, queue.low_at)))
        await ws.send(["abcd", "efgh"])
        await ws.send("x" * 10)
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(fragments, max_queue=(6, 1)) as port:
            ws = await backend.connect(
                f"ws://127.0.0.1:{port}/", max_size=(100, 8), max_queue=(4, 0)
            )
            queue = ws.native._messages
            assert (queue.full_at, queue.low_at) == (4, 0)
            assert await ws.recv() == "(6, 1)"
            # Fragments of 4 bytes each are under the fragment limit of 8.
            assert await ws.recv() == "abcdefgh"
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv()
            assert caught.value.sent is not None
            assert caught.value.sent.code == 1009

    backend.run(body)


def test_limits_of_the_http_parsers(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(echo, server_header="x" * 200) as port:
            with pytest.raises(HeaderLineTooLong):
                await backend.connect(f"ws://127.0.0.1:{port}/", limits=Limits(max_line=100))
            # The default limits read it.
            ws = await backend.connect(f"ws://127.0.0.1:{port}/")
            await ws.close()
        async with backend.serve(echo, limits=Limits(max_headers=8)) as port:
            many = {f"X-Header-{index}": "1" for index in range(10)}
            with pytest.raises(InvalidStatus) as caught:
                await backend.connect(f"ws://127.0.0.1:{port}/", additional_headers=many)
            assert caught.value.response.status_code == 431

    backend.run(body)


def test_a_limit_below_its_range_fails_serve_and_connect(backend: Backend) -> None:
    # At once, not in every connection's handshake; connect does not even
    # try to reach the (closed) port.
    with pytest.raises(ValueError, match="max_size"):
        backend.module("client").connect("ws://127.0.0.1:9/", max_size=-1)

    async def body() -> None:
        with pytest.raises(ValueError, match="max_size"):
            async with backend.serve(echo, max_size=-1):
                pass  # pragma: no cover - not reached

    backend.run(body)
