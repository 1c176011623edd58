"""Topics for threading connections: fan-out, leaving on close, slow subscribers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tether.exceptions import ConnectionClosedError
from tether.sync import ClientConnection, ServerConnection, Topics, connect

from .conftest import TIMEOUT, ServerFactory, uri_of


def subscribing(topics: Topics, name: str) -> Callable[[ServerConnection], None]:
    def handler(ws: ServerConnection) -> None:
        topics.subscribe(ws, name)
        for message in ws:
            topics.publish(name, message)

    return handler


def wait_for(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_publish_from_threads_reaches_every_subscriber(start_server: ServerFactory) -> None:
    topics = Topics()
    server = start_server(subscribing(topics, "room"), compression=None)
    clients = [connect(uri_of(server), compression=None) for _ in range(3)]
    wait_for(lambda: len(topics.subscribers("room")) == 3)
    threads = [threading.Thread(target=topics.publish, args=("room", f"m{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    for client in clients:
        assert sorted(str(client.recv(timeout=TIMEOUT)) for _ in range(4)) == [
            "m0",
            "m1",
            "m2",
            "m3",
        ]
    assert topics.stats.delivered == 12
    assert topics.stats.shared_frames == 12
    # A message from a client goes to all, its sender included.
    clients[0].send("hi")
    for client in clients:
        assert client.recv(timeout=TIMEOUT) == "hi"
    for client in clients:
        client.close()
    wait_for(lambda: topics.topics() == set())


def test_bad_write_limit() -> None:
    with pytest.raises(ValueError, match="write_limit"):
        Topics(write_limit=-1)


def start_slow(
    start_server: ServerFactory, topics: Topics
) -> tuple[ClientConnection, ClientConnection]:
    server = start_server(subscribing(topics, "feed"), compression=None)
    fast = connect(uri_of(server), compression=None, max_queue=None)
    # Reads nothing: its queue fills and it stops reading the socket.
    slow = connect(uri_of(server), compression=None, max_queue=1)
    wait_for(lambda: len(topics.subscribers("feed")) == 2)
    return fast, slow


def publish_until(topics: Topics, predicate: Callable[[], bool]) -> int:
    payload = b"x" * 16384
    for count in range(1, 3001):
        topics.publish("feed", payload)
        if predicate():
            return count
    raise AssertionError("the slow subscriber was never found out")


def read_to_the_end(client: ClientConnection) -> None:
    """Read until the connection closes; raise how it closed."""
    while True:
        client.recv(timeout=TIMEOUT)


@pytest.mark.parametrize("policy", ["drop", "close"])
def test_slow_subscriber(start_server: ServerFactory, policy: str) -> None:
    topics = Topics(write_limit=8192)
    topics.set_policy("feed", policy)  # type: ignore[arg-type]
    fast, slow = start_slow(start_server, topics)
    received = [0]

    def drain() -> None:
        for _ in fast:
            received[0] += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if policy == "drop":
        published = publish_until(topics, lambda: topics.stats.dropped > 0)
    else:
        published = publish_until(topics, lambda: topics.stats.closed > 0)
    wait_for(lambda: received[0] == published)
    if policy == "drop":
        assert topics.stats.closed == 0
    else:
        assert topics.stats.dropped == 0
        with pytest.raises(ConnectionClosedError) as raised:
            read_to_the_end(slow)
        assert raised.value.rcvd is not None
        assert raised.value.rcvd.code == 1013
    slow.close()
    fast.close()
    reader.join(TIMEOUT)
