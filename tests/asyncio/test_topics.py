"""Topics for asyncio connections: the memory broker between topics of one event loop.

What every API's topics share is tested once in tests/behaviour/test_topics.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection
from tether.topics import MemoryBus

from .conftest import ServerFactory, uri_of

TIMEOUT = 5


def subscribing(
    topics: tether.Topics, *names: str
) -> Callable[[ServerConnection], Awaitable[None]]:
    """A handler that subscribes its connection to ``names`` and publishes what it receives."""

    async def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, *names)
        async for message in ws:
            await topics.publish(names[0], message)

    return handler


async def wait_for(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(0.01)


async def clients_of(server: Server, count: int) -> list[ClientConnection]:
    clients = [await tether.connect(uri_of(server)) for _ in range(count)]
    await wait_for(lambda: len(server.connections) == count)
    return clients


async def test_memory_broker_carries_messages_between_topics(
    start_server: ServerFactory,
) -> None:
    bus = MemoryBus()
    first = tether.Topics(broker=bus.broker())
    second = tether.Topics(broker=bus.broker())
    publisher = tether.Topics(broker=bus.broker())
    server1 = await start_server(subscribing(first, "t"))
    server2 = await start_server(subscribing(second, "t"))
    (c1,) = await clients_of(server1, 1)
    (c2,) = await clients_of(server2, 1)
    await wait_for(lambda: bool(first.topics()) and bool(second.topics()))
    # The publisher has no connections: it reaches none itself.
    assert await publisher.publish("t", "across") == 0
    assert await c1.recv() == "across"
    assert await c2.recv() == "across"
    # A message from a subscriber's server reaches the other; no echo twice.
    await c1.send("from one")
    assert await c1.recv() == "from one"
    assert await c2.recv() == "from one"
    assert first.stats.received == 1
    assert second.stats.received == 2
    await c1.close()
    await c2.close()
    for topics in (first, second, publisher):
        await topics.aclose()
    assert await publisher.publish("t", "after") == 0
    assert publisher.stats.undelivered == 1
