"""tether.trio.Topics: publish and subscribe, leaving on close, slow subscribers, a broker."""

from __future__ import annotations

import pytest
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
async def test_publish_to_subscribers_and_leave_on_close() -> None:
    topics = tether.trio.Topics()
    async with serving(room_server(topics)) as server:  # type: ignore[arg-type]
        alice = await tether.trio.connect(uri_of(server))
        bob = await tether.trio.connect(uri_of(server))
        assert await alice.recv() == "joined"
        assert await bob.recv() == "joined"
        await alice.send("hello")
        assert await alice.recv() == "hello"
        assert await bob.recv() == "hello"
        await bob.send(b"\x01\x02")
        assert await alice.recv() == b"\x01\x02"
        assert await bob.recv() == b"\x01\x02"
        assert len(topics.subscribers("room")) == 2
        await bob.close()
        with trio.fail_after(5):
            while len(topics.subscribers("room")) != 1:
                await trio.sleep(0.01)
        await alice.close()
        with trio.fail_after(5):
            while topics.topics():
                await trio.sleep(0.01)
        assert topics.stats.published == 2
        assert topics.stats.delivered == 4
        # Nobody is left: publishing reaches no one.
        assert await topics.publish("room", "anyone?") == 0


@pytest.mark.parametrize("slow", ["drop", "close"])
@trio_test
async def test_slow_subscribers(slow: str) -> None:
    topics = tether.trio.Topics(slow=slow)  # type: ignore[arg-type]
    subscribed: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, "firehose")
        subscribed.append(ws)
        await ws.wait_closed()

    async with serving(handler, write_limit=1024, close_timeout=0.5) as server:
        # A client that never reads: its server side fills up.
        client = tether.trio.connect(uri_of(server), max_queue=1, max_size=None, close_timeout=0.5)
        async with client as ws:
            with trio.fail_after(5):
                while not subscribed:
                    await trio.sleep(0.01)
                payload = "x" * 65536
                while topics.stats.dropped + topics.stats.closed == 0:
                    await topics.publish("firehose", payload)
                    await trio.sleep(0)
            close_sent = subscribed[0].protocol.close_sent
            if slow == "close":
                assert topics.stats.closed == 1
                assert close_sent is not None
                assert close_sent.code == 1013
            else:
                assert topics.stats.dropped >= 1
                assert close_sent is None
            assert ws.close_code is None


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
