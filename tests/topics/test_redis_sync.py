"""Topics of the threading API across processes, through a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tether.sync import ClientConnection, ServerConnection, Topics, connect, serve
from tether.topics import RedisBroker, RedisPublisher

from .servers import RedisServer

TIMEOUT = 10.0


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@contextmanager
def node(url: str) -> Iterator[tuple[Topics, ClientConnection]]:
    """One process's share: threading topics on a broker, a server and a client."""
    topics = Topics(broker=RedisBroker(url, min_backoff=0.05, max_backoff=0.2))

    def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, "room")
        for message in ws:
            topics.publish("room", message)

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        with connect(f"ws://127.0.0.1:{port}/") as client, topics:
            wait_for(lambda: bool(topics.topics()))
            yield topics, client
        server.shutdown()
        thread.join(TIMEOUT)


def test_threading_topics_across_processes(redis_server: RedisServer) -> None:
    with node(redis_server.url) as (one, alice), node(redis_server.url) as (two, bob):
        wait_for(lambda: redis_server.numsub("tether:room") == 2)
        alice.send("hello from one")
        assert alice.recv(timeout=TIMEOUT) == "hello from one"
        assert bob.recv(timeout=TIMEOUT) == "hello from one"
        with RedisPublisher(redis_server.url) as publisher:
            assert publisher.publish("room", b"\x01from outside") == 2
        assert alice.recv(timeout=TIMEOUT) == b"\x01from outside"
        assert bob.recv(timeout=TIMEOUT) == b"\x01from outside"
        assert one.stats.received == 1
        assert two.stats.received == 2
