"""Topics, on every API: subscriptions, fan-out, shared frames, leaving on close, slow subscribers.

Each API has its own ``Topics`` (``publish`` is a coroutine in tether.asyncio
and tether.trio, a plain call that never blocks in tether.sync); the brokers,
which each API bridges its own way, are tested in each API's own tests.
"""

from __future__ import annotations

import gc
import inspect
import weakref
from typing import Any

import pytest

from tests.backends import Backend, Face, Handler
from tether.exceptions import ConnectionClosed, ConnectionClosedError
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.connection import State


def make_topics(backend: Backend, **options: Any) -> Any:
    """The API's ``Topics``."""
    return backend.module("topics").Topics(**options)


async def publish(topics: Any, topic: str, message: Any) -> int:
    """Publish with the API's ``publish``; return how many connections got it."""
    result = topics.publish(topic, message)
    sent: int = await result if inspect.isawaitable(result) else result
    return sent


def subscribing(topics: Any, *names: str) -> Handler:
    """A handler that subscribes its connection to ``names`` and publishes what it receives."""

    async def handler(ws: Face) -> None:
        topics.subscribe(ws.native, *names)
        while True:
            try:
                message = await ws.recv(timeout=None)
            except ConnectionClosed:
                return
            await publish(topics, names[0], message)

    return handler


async def clients_of(backend: Backend, port: int, count: int, **options: Any) -> list[Face]:
    clients = [await backend.connect(f"ws://127.0.0.1:{port}/", **options) for _ in range(count)]
    await backend.until(lambda: len(backend.server.connections) >= count)
    return clients


async def read_to_the_end(client: Face) -> None:
    """Read until the connection closes; raise how it closed."""
    while True:
        await client.recv()


def test_publish_reaches_every_subscriber_and_counts(backend: Backend) -> None:
    async def body() -> None:
        topics = make_topics(backend)
        async with backend.serve(subscribing(topics, "room:1"), compression=None) as port:
            clients = await clients_of(backend, port, 3, compression=None)
            await backend.until(lambda: len(topics.subscribers("room:1")) == 3)
            assert await publish(topics, "room:1", "hello") == 3
            assert await publish(topics, "room:1", b"\x00\x01") == 3
            assert await publish(topics, "room:2", "nobody") == 0
            for client in clients:
                assert await client.recv() == "hello"
                assert await client.recv() == b"\x00\x01"
            assert topics.stats.delivered == 6
            assert topics.stats.published == 3
            # Without extensions, one frame served all three.
            assert topics.stats.shared_frames == 6
            assert topics.stats.own_frames == 0

            # Publishers running at once (threads, in tether.sync) reach everyone.
            async def publisher(number: int) -> None:
                if backend.api == "sync":
                    await backend.in_thread(lambda: topics.publish("room:1", f"m{number}"))
                else:
                    await publish(topics, "room:1", f"m{number}")

            await backend.together(*(lambda n=n: publisher(n) for n in range(4)))
            for client in clients:
                assert sorted([await client.recv() for _ in range(4)]) == ["m0", "m1", "m2", "m3"]
            assert topics.stats.delivered == 18
            assert topics.stats.shared_frames == 18

            # A message from a client goes to all, its sender included.
            await clients[0].send("hi")
            for client in clients:
                assert await client.recv() == "hi"
            await clients[1].close()
            await backend.until(lambda: len(topics.subscribers("room:1")) == 2)
            for client in (clients[0], clients[2]):
                await client.close()
            await backend.until(lambda: topics.topics() == set())
            # Nobody is left: publishing reaches no one.
            assert await publish(topics, "room:1", "anyone?") == 0

    backend.run(body)


def test_a_closed_connection_leaves_every_topic(backend: Backend) -> None:
    async def body() -> None:
        topics = make_topics(backend)
        async with backend.serve(subscribing(topics, "a", "b")) as port:
            (client,) = await clients_of(backend, port, 1)
            await backend.until(lambda: topics.topics() == {"a", "b"})
            (connection,) = topics.subscribers("a")
            ref = weakref.ref(connection)
            del connection
            await client.close()
            await backend.until(lambda: not backend.server.connections)
            # A connection leaves its topics once it is closed, TCP included:
            # a server's connection is no longer open (so not in
            # server.connections) while it waits for the client's EOF.
            await backend.until(lambda: topics.topics() == set())
            assert topics.subscribers("a") == []
            # Topics keep no closed connection alive.
            await backend.until(lambda: gc.collect() >= 0 and ref() is None)

    backend.run(body)


def test_unsubscribe(backend: Backend) -> None:
    async def body() -> None:
        topics = make_topics(backend)
        async with backend.serve(subscribing(topics, "a", "b")) as port:
            (client,) = await clients_of(backend, port, 1)
            await backend.until(lambda: topics.topics() == {"a", "b"})
            (connection,) = topics.subscribers("a")
            topics.unsubscribe(connection, "a")
            assert topics.topics() == {"b"}
            assert topics.topics(connection) == {"b"}
            assert await publish(topics, "a", "x") == 0
            topics.unsubscribe(connection)
            assert topics.topics() == set()
            # Its closure hook is gone with its last topic.
            assert connection._on_closed == []
            await client.close()

    backend.run(body)


def test_bad_arguments(backend: Backend) -> None:
    async def body() -> None:
        topics = make_topics(backend)
        with pytest.raises(ValueError, match="non-empty str"):
            topics.set_policy("", "drop")
        with pytest.raises(ValueError, match="'drop' or 'close'"):
            make_topics(backend, slow="wait")
        with pytest.raises(ValueError, match="'drop' or 'close'"):
            topics.set_policy("a", "block")
        with pytest.raises(TypeError, match="cannot publish dict"):
            await publish(topics, "a", {"a": 1})

    backend.run(body)


def test_compressed_once_for_subscribers_without_context_takeover(backend: Backend) -> None:
    async def body() -> None:
        topics = make_topics(backend)
        async with backend.serve(subscribing(topics, "news")) as port:
            uri = f"ws://127.0.0.1:{port}/"
            sharing = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
            shared = [
                await backend.connect(uri, extensions=[sharing], compression=None) for _ in range(3)
            ]
            keeping = [await backend.connect(uri, compression="deflate") for _ in range(2)]
            plain = await backend.connect(uri, compression=None)
            await backend.until(lambda: len(topics.subscribers("news")) == 6)
            message = "compress me " * 50
            for _ in range(3):
                assert await publish(topics, "news", message) == 6
            for client in [*shared, *keeping, plain]:
                for _ in range(3):
                    assert await client.recv() == message
            # One compression per message for the three sharing clients; the two
            # whose server side keeps its context share the plain frame, uncompressed,
            # with the client without compression: no compressor of their own.
            assert topics.stats.compressions == 3
            assert topics.stats.shared_frames == 3 * 6
            assert topics.stats.own_frames == 0
            for client in [*shared, *keeping, plain]:
                await client.close()

    backend.run(body)


@pytest.mark.parametrize("policy", ["drop", "close"])
def test_slow_subscriber(backend: Backend, policy: str) -> None:
    async def body() -> None:
        # tether.sync's Topics measures what waits to be written itself; the
        # others use the server's write_limit.
        if backend.api == "sync":
            topics, limits = make_topics(backend, write_limit=8192), {}
        else:
            topics, limits = make_topics(backend), {"write_limit": 4096}
        topics.set_policy("feed", policy)
        assert topics.policy("feed") == policy
        subscribed: list[Face] = []

        async def handler(ws: Face) -> None:
            subscribed.append(ws)
            await subscribing(topics, "feed")(ws)

        async with backend.serve(handler, compression=None, **limits) as port:
            uri = f"ws://127.0.0.1:{port}/"
            fast = [await backend.connect(uri, max_queue=None, compression=None) for _ in range(2)]
            # It reads nothing: once one message waits in its queue, it stops
            # reading the socket, and the server's buffer fills.
            slow = await backend.connect(uri, max_queue=1, compression=None)
            await backend.until(lambda: len(topics.subscribers("feed")) == 3)
            counts = [0, 0]
            published = [0]
            closes: list[Any] = []

            async def drain(index: int) -> None:
                while True:
                    try:
                        await fast[index].recv(timeout=None)
                    except ConnectionClosed:
                        return
                    counts[index] += 1

            def found_out() -> bool:
                return bool(topics.stats.dropped if policy == "drop" else topics.stats.closed)

            async def caught_up() -> None:
                await backend.until(lambda: counts == [published[0]] * 2)

            async def publisher() -> None:
                payload = b"x" * 16384
                for _ in range(3000):
                    await publish(topics, "feed", payload)
                    published[0] += 1
                    if found_out():
                        break
                    # Let the fast clients' readers and the writers run; now and
                    # then, let them catch up, so that only the slow one falls behind.
                    await backend.sleep(0)
                    if published[0] % 16 == 0:
                        await caught_up()
                else:
                    raise AssertionError("the slow subscriber was never found out")
                if policy == "drop":
                    # More after the first drop: the slow one stays behind, the others don't.
                    for _ in range(20):
                        await caught_up()
                        await publish(topics, "feed", b"y" * 16384)
                        published[0] += 1
                await caught_up()
                closes.extend(ws.native.protocol.close_sent for ws in subscribed)
                for client in fast:
                    await client.close()

            await backend.together(lambda: drain(0), lambda: drain(1), publisher)
            if policy == "drop":
                assert topics.stats.dropped >= 20
                assert topics.stats.closed == 0
                assert closes == [None] * 3
                assert slow.state is State.OPEN
                await slow.close()
            else:
                assert topics.stats.closed == 1
                assert topics.stats.dropped == 0
                # The server closed the slow one, and only it, with 1013.
                assert sorted(close is None for close in closes) == [False, True, True]
                assert [close.code for close in closes if close is not None] == [1013]
                # The slow client reads what was written before the close frame, then 1013.
                with pytest.raises(ConnectionClosedError) as raised:
                    await read_to_the_end(slow)
                assert raised.value.rcvd is not None
                assert raised.value.rcvd.code == 1013
                await backend.until(lambda: topics.topics() == set())

    backend.run(body)
