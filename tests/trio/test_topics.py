"""tether.trio.Topics: a broker between two topics, bridged into the trio run.

What every API's topics share is tested once in tests/behaviour/test_topics.py.
"""

from __future__ import annotations

import trio

import tether.trio
from tether.topics import MemoryBus
from tether.trio import ServerConnection

from .conftest import serving, trio_test, uri_of


def room_server(topics: tether.trio.Topics) -> object:
    async def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, "room")
        await ws.send("joined")
        async for message in ws:
            await topics.publish("room", message)

    return handler


@trio_test
async def test_broker_between_two_topics() -> None:
    bus = MemoryBus()
    async with (
        tether.trio.Topics(broker=bus.broker()) as here,
        tether.trio.Topics(broker=bus.broker()) as there,
        serving(room_server(there)) as server,  # type: ignore[arg-type]
        tether.trio.connect(uri_of(server)) as ws,
    ):
        assert await ws.recv() == "joined"
        # The broker subscribes on its own thread: publish until it did.
        with trio.fail_after(5):
            while True:
                assert await here.publish("room", "from elsewhere") == 0
                with trio.move_on_after(0.05):
                    assert await ws.recv() == "from elsewhere"
                    break
        assert there.stats.received >= 1
        assert here.stats.received == 0
