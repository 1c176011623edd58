"""tether.trio.broadcast: one frame to many connections, slow ones skipped."""

from __future__ import annotations

import pytest
import trio

import tether.trio
from tether.trio import ServerConnection, broadcast

from .conftest import hold, serving, trio_test, uri_of


@trio_test
async def test_broadcast_reaches_every_open_connection() -> None:
    async with serving(hold) as server:
        clients = [await tether.trio.connect(uri_of(server)) for _ in range(20)]
        while len(server.connections) < 20:
            await trio.sleep(0.001)
        assert await broadcast(server.connections, "to all") == 20
        assert await broadcast(server.connections, b"\x01\x02") == 20
        for ws in clients:
            assert await ws.recv() == "to all"
            assert await ws.recv() == b"\x01\x02"
        await clients[0].close()
        while len(server.connections) > 19:
            await trio.sleep(0.001)
        assert await broadcast(server.connections, "fewer") == 19
        for ws in clients[1:]:
            assert await ws.recv() == "fewer"
            await ws.close()


@trio_test
async def test_broadcast_skips_a_connection_over_its_write_limit() -> None:
    async with serving(hold, write_limit=1024, max_size=None) as server:
        slow = await tether.trio.connect(uri_of(server), max_queue=1, max_size=None)
        while not server.connections:
            await trio.sleep(0.001)
        theirs: ServerConnection = next(iter(server.connections))
        big = "x" * 1_000_000
        sent = 0
        with pytest.raises(ExceptionGroup) as caught:  # noqa: PT012
            for _ in range(100):
                sent += await broadcast([theirs], big, raise_exceptions=True)
        assert isinstance(caught.value.exceptions[0], BlockingIOError)
        assert sent >= 1
        with pytest.raises(TypeError):
            await broadcast([theirs], 42)  # type: ignore[arg-type]
        for _ in range(sent):
            assert await slow.recv() == big
        await slow.close()
