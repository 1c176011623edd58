"""The threading connection: receiving, sending, pings, closing, concurrency, keepalive."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tether.exceptions import ConcurrencyError, ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import Close
from tether.protocol.events import CloseReceived, Message, Ping, Pong
from tether.sending import Data
from tether.sync import ClientConnection, Server, ServerConnection, connect

from .conftest import (
    TIMEOUT,
    RawServer,
    ServerFactory,
    bounded,
    raw_client,
    start_thread,
    uri_of,
)


def open_client(server: Server, **kwargs: object) -> ClientConnection:
    """Connect to ``server`` with bounded timeouts."""
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return connect(uri_of(server), **kwargs)  # type: ignore[arg-type]


class Hold:
    """A handler that keeps the server connection for the test, until released."""

    def __init__(self) -> None:
        self.connection: ServerConnection | None = None
        self.ready = threading.Event()
        self.release = threading.Event()

    def __call__(self, ws: ServerConnection) -> None:
        self.connection = ws
        self.ready.set()
        self.release.wait(TIMEOUT)

    def get(self) -> ServerConnection:
        """The server side of the connection, once open."""
        assert self.ready.wait(TIMEOUT), "the handler did not start"
        assert self.connection is not None
        return self.connection


@pytest.fixture
def held(start_server: ServerFactory) -> Iterator[tuple[Hold, Server]]:
    """A server whose handler hands its connection to the test."""
    hold = Hold()
    server = start_server(hold)
    yield hold, server
    hold.release.set()


# Receiving


def test_recv_timeout_loses_no_message(held: tuple[Hold, Server]) -> None:
    hold, server = held
    with open_client(server) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        hold.get().send("after the timeout")
        assert ws.recv(timeout=TIMEOUT) == "after the timeout"


def test_recv_decode(echo_server: Server) -> None:
    with open_client(echo_server) as ws:
        ws.send("café")
        assert ws.recv(timeout=TIMEOUT, decode=False) == "café".encode()
        ws.send(b"bytes")
        assert ws.recv(timeout=TIMEOUT, decode=True) == "bytes"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01"


def test_recv_streaming(held: tuple[Hold, Server]) -> None:
    hold, server = held
    with open_client(server) as ws:
        hold.get().send(["one", "two", "three"])
        assert list(ws.recv_streaming()) == ["one", "two", "three", ""]
        hold.get().send(b"whole")
        assert list(ws.recv_streaming()) == [b"whole"]
        hold.get().send([b"a", b"b"])
        assert list(ws.recv_streaming(decode=True)) == ["a", "b", ""]
        # Streaming and whole reads share the queue in order.
        hold.get().send(["x", "y"])
        assert ws.recv(timeout=TIMEOUT) == "xy"


def test_concurrent_recv_raises(echo_server: Server) -> None:
    with open_client(echo_server) as ws:
        started = threading.Event()
        result: list[object] = []

        def first() -> None:
            started.set()
            result.append(ws.recv(timeout=TIMEOUT))

        thread = start_thread(first)
        assert started.wait(TIMEOUT)
        # The first recv is waiting once it holds the receive slot; poll for that.
        for _ in range(200):
            try:
                with pytest.raises(ConcurrencyError):
                    ws.recv(timeout=0.01)
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the second recv never saw the first one")
        with pytest.raises(ConcurrencyError):
            next(ws.recv_streaming())
        ws.send("for the first")
        thread.join(TIMEOUT)
        assert result == ["for the first"]


def test_iteration_ends_quietly_on_1000_and_1001(start_server: ServerFactory) -> None:
    for code in (1000, 1001):

        def handler(ws: ServerConnection, code: int = code) -> None:
            ws.send("one")
            ws.send("two")
            ws.close(code)

        server = start_server(handler)
        with open_client(server) as ws:
            assert bounded(lambda ws=ws: list(ws)) == ["one", "two"]  # type: ignore[misc]
            assert ws.close_code == code


def test_iteration_raises_on_error_close(start_server: ServerFactory) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("one")
        ws.close(4000, "custom")

    server = start_server(handler)
    with open_client(server) as ws:
        received: list[str | bytes] = []

        def read() -> None:
            for message in ws:
                received.append(message)

        with pytest.raises(ConnectionClosedError) as info:
            bounded(read)
        assert received == ["one"]
        assert info.value.rcvd == Close(4000, "custom")
        assert ws.close_code == 4000
        assert ws.close_reason == "custom"


# Sending


def test_send_kinds(echo_server: Server) -> None:
    with open_client(echo_server) as ws:
        ws.send("text")
        assert ws.recv(timeout=TIMEOUT) == "text"
        ws.send(b"bytes")
        assert ws.recv(timeout=TIMEOUT) == b"bytes"
        ws.send(bytearray(b"bytearray"))
        assert ws.recv(timeout=TIMEOUT) == b"bytearray"
        ws.send(memoryview(b"_memoryview_")[1:-1])
        assert ws.recv(timeout=TIMEOUT) == b"memoryview"
        ws.send(["frag", "ments"])
        assert ws.recv(timeout=TIMEOUT) == "fragments"
        pieces: list[Data] = [b"by", bytearray(b"te"), memoryview(b"s")]
        ws.send(iter(pieces))
        assert ws.recv(timeout=TIMEOUT) == b"bytes"
        ws.send(b"text as bytes", text=True)
        assert ws.recv(timeout=TIMEOUT) == "text as bytes"
        ws.send("binary as str", text=False)
        assert ws.recv(timeout=TIMEOUT) == b"binary as str"
        ws.send([])  # Nothing at all is sent.
        ws.send("still open")
        assert ws.recv(timeout=TIMEOUT) == "still open"


def test_send_refuses_other_types(echo_server: Server) -> None:
    with open_client(echo_server) as ws:
        with pytest.raises(TypeError):
            ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ws.send({"a": 1})
        ws.send("still open")
        assert ws.recv(timeout=TIMEOUT) == "still open"


def test_send_mixed_fragments_fails_connection(held: tuple[Hold, Server]) -> None:
    hold, server = held
    ws = open_client(server)
    with pytest.raises(TypeError):
        ws.send(["text", b"bytes"])
    peer = hold.get()
    with pytest.raises(ConnectionClosedError) as info:
        bounded(lambda: peer.recv(timeout=TIMEOUT))
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1011
    assert bounded(lambda: ws.wait_closed(TIMEOUT))


def test_send_iterator_error_fails_connection(held: tuple[Hold, Server]) -> None:
    hold, server = held
    ws = open_client(server)

    def pieces() -> Iterator[str]:
        yield "first"
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        ws.send(pieces())
    peer = hold.get()
    with pytest.raises(ConnectionClosedError) as info:
        bounded(lambda: peer.recv(timeout=TIMEOUT))
    assert info.value.rcvd == Close(1011, "error in fragmented message")
    assert bounded(lambda: ws.wait_closed(TIMEOUT))
    with pytest.raises(ConnectionClosedError):
        ws.send("too late")


def test_send_from_many_threads_does_not_interleave(echo_server: Server) -> None:
    threads, count = 16, 200
    with open_client(echo_server, max_queue=None) as ws:

        def sender(n: int) -> None:
            for i in range(count):
                if i % 3 == 0:
                    ws.send([f"{n}:", f"{i}:", "x" * (i % 7)])
                else:
                    ws.send(f"{n}:{i}:" + "x" * (i % 7))

        workers = [start_thread(lambda n=n: sender(n)) for n in range(threads)]  # type: ignore[misc]
        received = [ws.recv(timeout=TIMEOUT) for _ in range(threads * count)]
        for worker in workers:
            worker.join(TIMEOUT)
            assert not worker.is_alive()
    per_thread: dict[int, list[int]] = {n: [] for n in range(threads)}
    for message in received:
        assert isinstance(message, str)
        n, i, filler = message.split(":")
        assert filler == "x" * (int(i) % 7)
        per_thread[int(n)].append(int(i))
    # Each thread's messages arrive whole and in the order it sent them.
    assert per_thread == {n: list(range(count)) for n in range(threads)}


# Pings and pongs


def test_ping_returns_event_and_measures_latency(echo_server: Server) -> None:
    with open_client(echo_server) as ws:
        pong = ws.ping()
        assert pong.wait(TIMEOUT)
        assert ws.latency > 0
        assert ws.ping("text payload").wait(TIMEOUT)
        assert ws.ping(b"\x01\x02").wait(TIMEOUT)
        with pytest.raises(ValueError, match="125"):
            ws.ping(b"x" * 126)


def test_duplicate_ping_payload(raw_server: RawServer) -> None:
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    try:
        peer = raw_server.peer()
        first = ws.ping(b"same")
        with pytest.raises(ConcurrencyError):
            ws.ping(b"same")
        second = ws.ping(b"later")
        # One pong answers its ping and every ping sent before it.
        peer.engine.send_pong(b"later")
        peer.flush()
        assert second.wait(TIMEOUT)
        assert first.is_set()
    finally:
        bounded(ws.close)


def test_pong_and_pings_from_a_raw_peer(echo_server: Server) -> None:
    peer = raw_client(echo_server)
    try:
        peer.engine.send_pong(b"unsolicited")
        peer.engine.send_ping(b"are you there")
        peer.flush()
        # The server answers the ping without anybody calling recv for it.
        assert peer.next_event() == Pong(b"are you there")
    finally:
        peer.close()


def test_unsolicited_pong_reaches_peer(raw_server: RawServer) -> None:
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1)
    try:
        peer = raw_server.peer()
        ws.pong(b"heartbeat")
        ws.pong("text heartbeat")
        assert peer.next_event() == Pong(b"heartbeat")
        assert peer.next_event() == Pong(b"text heartbeat")
    finally:
        bounded(ws.close)


def test_pings_answered_without_recv(held: tuple[Hold, Server]) -> None:
    hold, server = held
    with open_client(server) as ws:
        ws.send("unread")  # The server never reads it.
        assert hold.get().ping().wait(TIMEOUT)
        assert ws.ping().wait(TIMEOUT)


# Closing


def test_close_code_and_reason_seen_by_peer(held: tuple[Hold, Server]) -> None:
    hold, server = held
    ws = open_client(server)
    peer = hold.get()
    bounded(lambda: ws.close(4001, "see you"))
    with pytest.raises(ConnectionClosedError) as info:
        peer.recv(timeout=TIMEOUT)
    assert info.value.rcvd == Close(4001, "see you")
    assert peer.close_code == 4001
    assert peer.close_reason == "see you"
    # Closing again does nothing.
    bounded(ws.close)


def test_server_close_ok(held: tuple[Hold, Server]) -> None:
    hold, server = held
    ws = open_client(server)
    bounded(lambda: hold.get().close(1001, "restart"))
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=TIMEOUT)
    assert ws.close_code == 1001
    assert ws.close_reason == "restart"
    with pytest.raises(ConnectionClosedOK):
        ws.send("too late")
    with pytest.raises(ConnectionClosedOK):
        ws.ping()
    with pytest.raises(ConnectionClosedOK):
        ws.pong()


def test_close_timeout_with_silent_peer(raw_server: RawServer) -> None:
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    peer = raw_server.peer()
    # The peer never answers the close frame: close() returns after the timeout.
    bounded(ws.close)
    assert isinstance(peer.next_event(), CloseReceived)
    assert ws.wait_closed(0)
    assert ws.close_code == 1006


def test_close_with_full_queue(start_server: ServerFactory) -> None:
    def flood(ws: ServerConnection) -> None:
        for i in range(50):
            ws.send(f"message {i}")
        ws.wait_closed(TIMEOUT)

    server = start_server(flood)
    ws = open_client(server, max_queue=2)
    assert ws.recv(timeout=TIMEOUT) == "message 0"
    # The reader thread paused on a full queue; it must read the close answer.
    bounded(ws.close)
    assert ws.close_code == 1000


def test_max_queue_keeps_every_message(start_server: ServerFactory) -> None:
    def flood(ws: ServerConnection) -> None:
        for i in range(100):
            ws.send(f"message {i}")

    server = start_server(flood)
    with open_client(server, max_queue=1) as ws:
        assert bounded(lambda: list(ws)) == [f"message {i}" for i in range(100)]


# Keepalive and flow control


def test_keepalive_detects_silent_peer(raw_server: RawServer) -> None:
    ws = connect(
        raw_server.uri,
        open_timeout=TIMEOUT,
        ping_interval=0.05,
        ping_timeout=0.05,
        close_timeout=0.1,
    )
    peer = raw_server.peer()
    with pytest.raises(ConnectionClosedError) as info:
        ws.recv(timeout=TIMEOUT)
    assert info.value.sent == Close(1011, "keepalive ping timeout")
    assert isinstance(peer.next_event(), Ping)
    assert ws.close_code == 1006


def test_keepalive_with_live_peer(start_server: ServerFactory) -> None:
    server = start_server(ping_interval=0.02, ping_timeout=TIMEOUT)
    with open_client(server, ping_interval=0.02, ping_timeout=TIMEOUT) as ws:
        for i in range(5):
            ws.send(str(i))
            assert ws.recv(timeout=TIMEOUT) == str(i)
            assert ws.ping().wait(TIMEOUT)
        assert ws.latency > 0


def test_large_messages_both_ways_do_not_deadlock(start_server: ServerFactory) -> None:
    # Both peers write 20 MiB without reading first: neither may stop reading
    # because its own write is stuck.
    size = 20 * 1024 * 1024

    def handler(ws: ServerConnection) -> None:
        sender = start_thread(lambda: ws.send(b"s" * size))
        received = ws.recv(timeout=TIMEOUT)
        sender.join(TIMEOUT)
        ws.send(b"ok" if received == b"c" * size and not sender.is_alive() else b"bad")

    server = start_server(handler, max_size=None, compression=None)
    with open_client(server, max_size=None, compression=None) as ws:
        sender = start_thread(lambda: ws.send(b"c" * size))
        assert ws.recv(timeout=TIMEOUT) == b"s" * size
        assert ws.recv(timeout=TIMEOUT) == b"ok"
        sender.join(TIMEOUT)
        assert not sender.is_alive()


def test_recv_timeout_while_a_write_is_stuck(raw_server: RawServer) -> None:
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    raw_server.peer()  # It never reads.
    failures: list[BaseException] = []

    def send() -> None:
        try:
            ws.send(b"x" * (64 * 1024 * 1024))
        except BaseException as exc:
            failures.append(exc)

    stuck = start_thread(send)
    try:
        # recv's timeout holds even while a send waits for the peer to read.
        with pytest.raises(TimeoutError):
            bounded(lambda: ws.recv(timeout=0.1))
    finally:
        # close() is bounded by close_timeout even with the write stuck, and
        # the stuck send then fails.
        bounded(ws.close)
        stuck.join(TIMEOUT)
        assert not stuck.is_alive()
    assert len(failures) == 1
    assert isinstance(failures[0], ConnectionClosedError)


def test_message_events_from_raw_peer(echo_server: Server) -> None:
    peer = raw_client(echo_server)
    try:
        peer.engine.send_text(b"hello")
        peer.flush()
        assert peer.next_event() == Message("hello")
    finally:
        peer.close()
