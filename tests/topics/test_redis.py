"""Topics across processes through a real redis-server: RedisBroker and RedisPublisher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection
from tether.topics import RedisBroker, RedisPublisher

from .servers import RedisClusterServers, RedisServer, free_port

TIMEOUT = 10


async def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def wait_numsub(redis_server: RedisServer, channel: str, count: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while await asyncio.to_thread(redis_server.numsub, channel) != count:
            await asyncio.sleep(0.02)


class Node:
    """What one process of a deployment holds: topics on a broker, a server, a client."""

    def __init__(self, topics: tether.Topics, server: Server, client: ClientConnection) -> None:
        self.topics = topics
        self.server = server
        self.client = client


@contextlib.asynccontextmanager
async def node(url: str, *topic_names: str) -> AsyncIterator[Node]:
    topics = tether.Topics(broker=RedisBroker(url, min_backoff=0.05, max_backoff=0.2))

    async def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, *topic_names)
        async for message in ws:
            await topics.publish(topic_names[0], message)

    async with tether.serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await tether.connect(f"ws://127.0.0.1:{port}/")
        await wait_for(lambda: bool(topics.topics()))
        try:
            yield Node(topics, server, client)
        finally:
            await client.close()
            await topics.aclose()


async def test_every_process_gets_what_any_publishes(redis_server: RedisServer) -> None:
    async with (
        node(redis_server.url, "room") as one,
        node(redis_server.url, "room", "lobby") as two,
    ):
        await wait_numsub(redis_server, "tether:room", 2)
        # Only the process with subscribers listens to a topic.
        await wait_numsub(redis_server, "tether:lobby", 1)
        # From a client of one process to the clients of both, once each.
        await one.client.send("hello")
        assert await one.client.recv() == "hello"
        assert await two.client.recv() == "hello"
        # From a process with no connections and no event loop.
        with RedisPublisher(redis_server.url) as publisher:
            listening = await asyncio.to_thread(publisher.publish, "room", b"\x00binary")
        assert listening == 2
        assert await one.client.recv() == b"\x00binary"
        assert await two.client.recv() == b"\x00binary"
        assert one.topics.stats.received == 1
        assert two.topics.stats.received == 2
        # A process whose last subscriber of a topic leaves stops listening to it.
        (connection,) = two.topics.subscribers("lobby")
        two.topics.unsubscribe(connection, "lobby")
        await wait_numsub(redis_server, "tether:lobby", 0)
        await two.client.close()
        await wait_numsub(redis_server, "tether:room", 1)


async def test_redis_restarted_mid_stream(redis_server: RedisServer) -> None:
    async with (
        node(redis_server.url, "feed") as one,
        node(redis_server.url, "feed") as two,
    ):
        broker = one.topics.broker
        assert isinstance(broker, RedisBroker)
        await wait_numsub(redis_server, "tether:feed", 2)
        await one.topics.publish("feed", "before")
        assert await one.client.recv() == "before"
        assert await two.client.recv() == "before"

        redis_server.stop()
        # Local delivery goes on; what could not reach the others is counted.
        await wait_for(lambda: not broker.connected)
        for index in range(5):
            assert await one.topics.publish("feed", f"during {index}") == 1
            assert await one.client.recv() == f"during {index}"
        assert one.topics.stats.undelivered == 5

        redis_server.start()
        await wait_for(lambda: one.topics.stats.reconnects == 1)
        await wait_for(lambda: two.topics.stats.reconnects == 1)
        await wait_numsub(redis_server, "tether:feed", 2)
        await one.topics.publish("feed", "after")
        assert await one.client.recv() == "after"
        # At most once: the other process never sees what was published while Redis was away.
        assert await two.client.recv() == "after"
        assert one.topics.stats.undelivered == 5


async def test_messages_not_from_tether_are_refused(redis_server: RedisServer) -> None:
    async with node(redis_server.url, "t") as one:
        await wait_numsub(redis_server, "tether:t", 1)
        with RedisPublisher(redis_server.url) as publisher:
            await asyncio.to_thread(publisher.client.publish, "tether:t", b"raw")
            await asyncio.to_thread(publisher.publish, "t", "ok")
        assert await one.client.recv() == "ok"
        assert one.topics.stats.invalid == 1


async def test_sharded_pubsub(redis_server: RedisServer) -> None:
    topics = tether.Topics(broker=RedisBroker(redis_server.url, sharded=True))
    async with tether.serve(lambda ws: _subscribe(topics, ws), "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with tether.connect(f"ws://127.0.0.1:{port}/") as client:
            await wait_for(lambda: bool(topics.topics()))
            with RedisPublisher(redis_server.url, sharded=True) as publisher:
                async with asyncio.timeout(TIMEOUT):
                    while not await asyncio.to_thread(publisher.publish, "s", "sharded"):
                        await asyncio.sleep(0.02)
            assert await client.recv() == "sharded"
    await topics.aclose()


async def _subscribe(topics: tether.Topics, ws: ServerConnection) -> None:
    topics.subscribe(ws, "s")
    await ws.wait_closed()


def test_bad_backoff() -> None:
    with pytest.raises(ValueError, match="backoff"):
        RedisBroker(min_backoff=0)


async def test_a_process_without_connections_publishes_at_once(redis_server: RedisServer) -> None:
    async with node(redis_server.url, "news") as reader:
        await wait_numsub(redis_server, "tether:news", 1)
        # A fresh process: its first message waits for the connection to Redis.
        async with tether.Topics(broker=RedisBroker(redis_server.url)) as publisher:
            assert await publisher.publish("news", "first") == 0
        assert await reader.client.recv() == "first"
        assert publisher.stats.undelivered == 0


async def test_unreachable_redis_at_start() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", min_backoff=0.05, max_backoff=0.1)
    async with tether.Topics(broker=broker) as topics:
        assert await topics.publish("t", "lost") == 0
        assert topics.stats.undelivered == 1
        assert not broker.connected


async def test_redis_cluster(redis_cluster: RedisClusterServers) -> None:
    # Topics whose channels hash to slots on every shard.
    names = [f"room:{index}" for index in range(6)]
    first = tether.Topics(broker=RedisBroker(redis_cluster.url(0), cluster=True))
    second = tether.Topics(broker=RedisBroker(redis_cluster.url(1), cluster=True))

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        topics = first if ws.request.path == "/first" else second
        topics.subscribe(ws, *names)
        await ws.wait_closed()

    async with tether.serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with (
            tether.connect(f"ws://127.0.0.1:{port}/first") as one,
            tether.connect(f"ws://127.0.0.1:{port}/second") as two,
        ):
            await wait_for(lambda: len(first.topics()) == len(second.topics()) == 6)
            channels = [f"tether:{name}" for name in names]
            async with asyncio.timeout(TIMEOUT):
                # Until both processes listen on every shard.
                while set(
                    (await asyncio.to_thread(redis_cluster.shardnumsub, *channels)).values()
                ) != {2}:
                    await asyncio.sleep(0.05)
            for name in names:
                assert await first.publish(name, f"to {name}") == 1
            for name in names:
                assert await one.recv(timeout=TIMEOUT) == f"to {name}"
            received = {await two.recv(timeout=TIMEOUT) for _ in names}
            assert received == {f"to {name}" for name in names}
            # And from a process without connections.
            with RedisPublisher(redis_cluster.url(2), cluster=True) as publisher:
                assert await asyncio.to_thread(publisher.publish, "room:5", "from outside") == 2
            assert await one.recv(timeout=TIMEOUT) == "from outside"
            assert await two.recv(timeout=TIMEOUT) == "from outside"
    await first.aclose()
    await second.aclose()
