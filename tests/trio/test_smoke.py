"""The trio API at a glance: serve in a nursery, connect, exchange, close."""

from __future__ import annotations

import tether.trio

from .conftest import serving, trio_test, uri_of


@trio_test
async def test_echo() -> None:
    async with serving() as server, tether.trio.connect(uri_of(server)) as ws:
        await ws.send("Hello!")
        assert await ws.recv() == "Hello!"
    assert ws.close_code == 1000
