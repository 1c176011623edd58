"""The asyncio server and connection rows of the websockets 17 checklist, end to end."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import tether
from tether.asyncio.server import ServerConnection, serve

from .conftest import ServerFactory, echo, uri_of

TIMEOUT = 5


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def test_server_close_with_code_and_reason(start_server: ServerFactory) -> None:
    server = await start_server(hold)
    clients = [await tether.connect(uri_of(server)) for _ in range(2)]
    server.close(code=1012, reason="restarting")
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
        for ws in clients:
            await ws.wait_closed()
    assert [(ws.close_code, ws.close_reason) for ws in clients] == [(1012, "restarting")] * 2


async def test_serve_forever_starts_serving() -> None:
    server = await serve(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    task = asyncio.create_task(server.serve_forever())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.is_serving():
                await asyncio.sleep(0)
            async with tether.connect(uri_of(server)) as ws:
                await ws.send("served")
                assert await ws.recv() == "served"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not server.is_serving()


@pytest.mark.parametrize("name", ["basic_auth", "broadcast"])
def test_server_module_exports(name: str) -> None:
    import tether.asyncio.server as server_module  # noqa: PLC0415

    assert getattr(server_module, name) is getattr(tether, name)
    with pytest.raises(AttributeError):
        server_module.no_such_name  # noqa: B018


@pytest.mark.parametrize("raises", [False, True])
async def test_async_with_connect_that_raises_closes_with_1011(
    start_server: ServerFactory, raises: bool
) -> None:
    # async with on the connection itself: tests/behaviour/test_closing.py.
    closed: asyncio.Queue[tuple[int | None, str | None]] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        await closed.put((ws.close_code, ws.close_reason))

    server = await start_server(handler)
    with pytest.raises(RuntimeError) if raises else contextlib.nullcontext():
        async with tether.connect(uri_of(server)):
            if raises:
                raise RuntimeError("boom")
    async with asyncio.timeout(TIMEOUT):
        assert await closed.get() == ((1011, "") if raises else (1000, ""))
