"""The asyncio API's basic round trip, on both event loops."""

from __future__ import annotations

import asyncio

import tether
from tether.asyncio.server import Server

from .conftest import ServerFactory, uri_of


async def test_echo_round_trip(echo_server: Server) -> None:
    async with tether.connect(uri_of(echo_server)) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00" * 100_000)
        assert await ws.recv() == b"\x00" * 100_000
    assert ws.close_code == 1000


async def test_loop_is_parametrized(start_server: ServerFactory) -> None:
    server = await start_server()
    async with tether.connect(uri_of(server)) as ws:
        await ws.send([b"a", b"b"])
        assert await ws.recv() == b"ab"
    assert type(asyncio.get_running_loop()).__module__.split(".")[0] in {"asyncio", "uvloop"}
