"""Topics for asyncio connections: subscriptions, fan-out with shared frames, slow subscribers."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable

import pytest

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import ConnectionClosedError
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.connection import State
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


async def clients_of(server: Server, count: int, **kwargs: object) -> list[ClientConnection]:
    clients = [await tether.connect(uri_of(server), **kwargs) for _ in range(count)]  # type: ignore[arg-type]
    await wait_for(lambda: len(server.connections) == count)
    return clients


async def test_publish_reaches_every_subscriber_and_counts(start_server: ServerFactory) -> None:
    topics = tether.Topics()
    server = await start_server(subscribing(topics, "room:1"), compression=None)
    clients = await clients_of(server, 3)
    await wait_for(lambda: len(topics.subscribers("room:1")) == 3)
    assert await topics.publish("room:1", "hello") == 3
    assert await topics.publish("room:1", b"\x00\x01") == 3
    assert await topics.publish("room:2", "nobody") == 0
    for client in clients:
        assert await client.recv() == "hello"
        assert await client.recv() == b"\x00\x01"
    assert topics.stats.delivered == 6
    assert topics.stats.published == 3
    # Without extensions, one frame served all three.
    assert topics.stats.shared_frames == 6
    assert topics.stats.own_frames == 0
    for client in clients:
        await client.close()


async def test_a_closed_connection_leaves_every_topic(start_server: ServerFactory) -> None:
    topics = tether.Topics()
    server = await start_server(subscribing(topics, "a", "b"))
    (client,) = await clients_of(server, 1)
    await wait_for(lambda: topics.topics() == {"a", "b"})
    (connection,) = topics.subscribers("a")
    ref = weakref.ref(connection)
    del connection
    await client.close()
    await wait_for(lambda: not server.connections)
    assert topics.topics() == set()
    assert topics.subscribers("a") == []
    gc.collect()
    assert ref() is None


async def test_unsubscribe(start_server: ServerFactory) -> None:
    topics = tether.Topics()
    server = await start_server(subscribing(topics, "a", "b"))
    (client,) = await clients_of(server, 1)
    await wait_for(lambda: topics.topics() == {"a", "b"})
    (connection,) = topics.subscribers("a")
    topics.unsubscribe(connection, "a")
    assert topics.topics() == {"b"}
    assert topics.topics(connection) == {"b"}
    assert await topics.publish("a", "x") == 0
    topics.unsubscribe(connection)
    assert topics.topics() == set()
    assert connection._on_closed == []
    await client.close()


def test_bad_arguments() -> None:
    topics = tether.Topics()
    with pytest.raises(ValueError, match="non-empty str"):
        topics.set_policy("", "drop")
    with pytest.raises(ValueError, match="'drop' or 'close'"):
        tether.Topics(slow="wait")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'drop' or 'close'"):
        topics.set_policy("a", "block")  # type: ignore[arg-type]


async def test_publish_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="cannot publish dict"):
        await tether.Topics().publish("a", {"a": 1})  # type: ignore[arg-type]


async def test_compressed_once_for_subscribers_without_context_takeover(
    start_server: ServerFactory,
) -> None:
    topics = tether.Topics()
    server = await start_server(subscribing(topics, "news"))
    sharing = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
    shared_clients = await clients_of(server, 3, extensions=[sharing], compression=None)
    keeping = [await tether.connect(uri_of(server), compression="deflate") for _ in range(2)]
    plain = await tether.connect(uri_of(server), compression=None)
    await wait_for(lambda: len(topics.subscribers("news")) == 6)
    message = "compress me " * 50
    for _ in range(3):
        assert await topics.publish("news", message) == 6
    for client in [*shared_clients, *keeping, plain]:
        for _ in range(3):
            assert await client.recv() == message
    # One compression per message for the three sharing clients; the two
    # whose server side keeps its context share the plain frame, uncompressed,
    # with the client without compression: no compressor of their own.
    assert topics.stats.compressions == 3
    assert topics.stats.shared_frames == 3 * 6
    assert topics.stats.own_frames == 0
    for client in [*shared_clients, *keeping, plain]:
        await client.close()


async def slow_setup(
    start_server: ServerFactory, topics: tether.Topics
) -> tuple[list[ClientConnection], ClientConnection]:
    server = await start_server(subscribing(topics, "feed"), write_limit=4096, compression=None)
    fast = await clients_of(server, 2, max_queue=None, compression=None)
    # It reads nothing: once one message waits in its queue, it stops
    # reading the socket, and the server's buffer fills.
    slow = await tether.connect(uri_of(server), max_queue=1, compression=None)
    await wait_for(lambda: len(topics.subscribers("feed")) == 3)
    return fast, slow


async def publish_until(topics: tether.Topics, predicate: Callable[[], bool]) -> int:
    """Publish 16 KiB messages until the slow subscriber is found out; return how many."""
    payload = b"x" * 16384
    for count in range(1, 2001):
        await topics.publish("feed", payload)
        if predicate():
            return count
        if count % 16 == 0:
            # Let the transports write to the fast clients.
            await asyncio.sleep(0)
    raise AssertionError("the slow subscriber was never found out")


async def test_slow_subscriber_dropped_while_others_get_everything(
    start_server: ServerFactory,
) -> None:
    topics = tether.Topics(slow="drop")
    fast, slow = await slow_setup(start_server, topics)

    async def drain(client: ClientConnection, count: list[int]) -> None:
        async for _ in client:
            count[0] += 1

    counts = [[0], [0]]
    readers = [asyncio.create_task(drain(c, n)) for c, n in zip(fast, counts, strict=True)]
    published = await publish_until(topics, lambda: topics.stats.dropped > 0)
    # More after the first drop: the slow one stays behind, the others don't.
    for _ in range(20):
        await topics.publish("feed", b"y" * 16384)
        published += 1
    await wait_for(lambda: counts[0][0] == counts[1][0] == published)
    assert topics.stats.dropped >= 20
    assert topics.stats.closed == 0
    assert slow.protocol.state is State.OPEN
    for client in [*fast, slow]:
        await client.close()
    for reader in readers:
        await reader


async def read_to_the_end(client: ClientConnection) -> None:
    """Read until the connection closes; raise how it closed."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            await client.recv()


async def test_slow_subscriber_closed_with_1013(start_server: ServerFactory) -> None:
    topics = tether.Topics()
    topics.set_policy("feed", "close")
    assert topics.policy("feed") == "close"
    fast, slow = await slow_setup(start_server, topics)

    async def drain(client: ClientConnection, count: list[int]) -> None:
        async for _ in client:
            count[0] += 1

    counts = [[0], [0]]
    readers = [asyncio.create_task(drain(c, n)) for c, n in zip(fast, counts, strict=True)]
    published = await publish_until(topics, lambda: topics.stats.closed > 0)
    await wait_for(lambda: counts[0][0] == counts[1][0] == published)
    assert topics.stats.closed == 1
    assert topics.stats.dropped == 0
    # The slow client reads what was written before the close frame, then 1013.
    with pytest.raises(ConnectionClosedError) as raised:
        await read_to_the_end(slow)
    assert raised.value.rcvd is not None
    assert raised.value.rcvd.code == 1013
    await wait_for(lambda: len(topics.subscribers("feed")) == 2)
    for client in fast:
        await client.close()
    for reader in readers:
        await reader


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
