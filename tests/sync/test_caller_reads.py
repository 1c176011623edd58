"""The threading connection reads the socket on the thread that calls ``recv``.

These tests prove that moving reads off the background thread keeps every
guarantee it gave: pings are answered and closing handshakes finish both
while the application is blocked in ``recv`` (its own thread reads them) and
after it stopped calling ``recv`` (the background thread takes over); timed
``recv`` loses no message, even when frames arrive split at any byte; a
``recv`` with no time left still returns a message already in the socket;
concurrent receivers get :class:`ConcurrencyError` and never lose or repeat a
message; TLS works with timeouts; a write of several frames goes out as
one vector without being joined; and a client's thread in ``recv`` with no
timeout reads with one system call per message, not a poll and a read.
"""

from __future__ import annotations

import contextlib
import functools
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import trustme

from tests.behaviour.raw import RawPeer
from tether.exceptions import ConcurrencyError, ConnectionClosedOK
from tether.protocol.client import ClientProtocol
from tether.protocol.close import Close
from tether.protocol.events import CloseReceived, Ping, Pong
from tether.protocol.uri import parse_uri
from tether.sync import ClientConnection, Server, ServerConnection, connect
from tether.sync.connection import JOIN_LIMIT, Connection

from .conftest import TIMEOUT, RawServer, ServerFactory, bounded, start_thread, uri_of


def open_raw(raw_server: RawServer) -> tuple[ClientConnection, RawPeer]:
    """A client and its raw peer, which answers no close: closing takes ``close_timeout``.

    No keepalive: the raw peer would not answer its pings.
    """
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    return ws, raw_server.peer()


class ReadSpy:
    """Record which thread reads the socket, and signal a first read by a given thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, ws: Connection) -> None:
        self.threads: list[threading.Thread] = []
        self.watched: threading.Thread | None = None
        self.watched_read = threading.Event()
        original: Callable[..., None] = ws._read_once

        def read_once(timeout: float | None, **kwargs: bool) -> None:
            current = threading.current_thread()
            self.threads.append(current)
            if current is self.watched:
                self.watched_read.set()
            original(timeout, **kwargs)

        # The instance attribute wins over the method for every caller,
        # the background thread included.
        monkeypatch.setattr(ws, "_read_once", read_once)


def recv_in_thread(ws: Connection, spy: ReadSpy) -> tuple[threading.Thread, list[object]]:
    """Call ``recv`` in a thread; return once that thread reads the socket itself."""
    results: list[object] = []
    started = threading.Event()

    def run() -> None:
        started.wait(TIMEOUT)
        try:
            results.append(ws.recv(timeout=TIMEOUT))
        except Exception as exc:
            results.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    spy.watched = thread
    thread.start()
    started.set()
    assert spy.watched_read.wait(TIMEOUT), "recv did not read the socket itself"
    return thread, results


def test_ping_answered_by_the_thread_blocked_in_recv(
    raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, peer = open_raw(raw_server)
    try:
        spy = ReadSpy(monkeypatch, ws)
        receiver, results = recv_in_thread(ws, spy)
        peer.engine.send_ping(b"are you there")
        peer.flush()
        assert peer.next_event() == Pong(b"are you there")
        peer.engine.send_text(b"done")
        peer.flush()
        receiver.join(TIMEOUT)
        assert results == ["done"]
        # Nothing came before recv started reading, so every read was its own:
        # the background thread stays away while an application thread reads.
        assert set(spy.threads) == {receiver}
    finally:
        bounded(ws.close)


def test_pings_answered_after_the_application_stopped_reading(
    raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, peer = open_raw(raw_server)
    try:
        spy = ReadSpy(monkeypatch, ws)
        peer.engine.send_text(b"first")
        peer.flush()
        assert ws.recv(timeout=TIMEOUT) == "first"
        # The application read a moment ago and stopped: the background
        # thread must notice and answer for it.
        spy.threads.clear()
        peer.engine.send_ping(b"after recv")
        peer.flush()
        assert peer.next_event() == Pong(b"after recv")
        assert spy.threads
        assert all(t.name.startswith("tether-reader") for t in spy.threads)
        # Same after a recv that timed out.
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.01)
        peer.engine.send_ping(b"after a timeout")
        peer.flush()
        assert peer.next_event() == Pong(b"after a timeout")
        # And our own ping's pong is read while nobody receives.
        pong = ws.ping(b"ours")
        assert peer.next_event() == Ping(b"ours")
        peer.engine.send_pong(b"ours")
        peer.flush()
        assert pong.wait(TIMEOUT)
    finally:
        bounded(ws.close)


def test_close_handshake_read_by_the_thread_blocked_in_recv(
    raw_server: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, peer = open_raw(raw_server)
    spy = ReadSpy(monkeypatch, ws)
    receiver, results = recv_in_thread(ws, spy)
    peer.engine.send_close(1000, "bye")
    peer.flush()
    assert peer.next_event() == CloseReceived(Close(1000, "bye"))
    # The server closes TCP after the closing handshake.
    peer.close()
    receiver.join(TIMEOUT)
    assert len(results) == 1
    assert isinstance(results[0], ConnectionClosedOK)
    assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1000
    assert ws.close_reason == "bye"
    assert set(spy.threads) == {receiver}


def frames(peer: RawPeer, count: int) -> tuple[bytes, list[str]]:
    """``count`` text messages, every seventh one fragmented, as bytes on the wire."""
    expected = []
    for i in range(count):
        text = f"message {i} " + "x" * (i % 50)
        expected.append(text)
        if i % 7 == 3:
            half = len(text) // 2
            peer.engine.send_text(text[:half].encode(), fin=False)
            peer.engine.send_continuation(text[half:].encode(), fin=True)
        else:
            peer.engine.send_text(text.encode())
    return b"".join(peer.engine.data_to_send()), expected


def dribble(peer: RawPeer, data: bytes, timed_out: threading.Event) -> threading.Thread:
    """Write ``data`` in pieces cut at random bytes, in a thread.

    After every fifth piece, wait until ``recv`` times out: the cuts fall
    anywhere, so a timed ``recv`` often ends with part of a frame read.
    """
    rng = random.Random(5)

    def run() -> None:
        pos = 0
        pieces = 0
        while pos < len(data):
            size = rng.randint(1, 300)
            peer.sock.sendall(data[pos : pos + size])
            pos += size
            pieces += 1
            if pieces % 5 == 0:
                timed_out.clear()
                timed_out.wait(TIMEOUT)

    return start_thread(run)


def test_timed_recv_loses_no_message(raw_server: RawServer) -> None:
    ws, peer = open_raw(raw_server)
    try:
        data, expected = frames(peer, 300)
        timed_out = threading.Event()
        writer = dribble(peer, data, timed_out)
        received: list[object] = []
        deadline = time.monotonic() + TIMEOUT
        while len(received) < len(expected) and time.monotonic() < deadline:
            try:
                received.append(ws.recv(timeout=0.001))
            except TimeoutError:
                timed_out.set()
        writer.join(TIMEOUT)
        assert received == expected
    finally:
        bounded(ws.close)


def test_recv_with_no_time_left_returns_what_arrived(raw_server: RawServer) -> None:
    ws, peer = open_raw(raw_server)
    try:
        poller = select.poll()
        poller.register(ws.socket, select.POLLIN)
        for i in range(50):
            peer.engine.send_text(f"{i}".encode())
            peer.flush()
            if poller.poll(100):
                # The message is in the socket: recv must look there, even
                # with no time left, or wait for the background thread that
                # may be reading it at this very moment.
                assert ws.recv(timeout=0) == f"{i}"
            else:
                # The background thread read it already (or it is late).
                assert ws.recv(timeout=TIMEOUT) == f"{i}"
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
    finally:
        bounded(ws.close)


def test_concurrent_receivers_lose_and_repeat_nothing(start_server: ServerFactory) -> None:
    count = 400

    def burst(ws: ServerConnection) -> None:
        for i in range(count):
            ws.send(str(i))
            if i % 40 == 0:
                time.sleep(0.002)
        ws.wait_closed(TIMEOUT)

    server = start_server(burst)
    with connect(uri_of(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        got: list[list[str]] = [[], []]
        deadline = time.monotonic() + TIMEOUT

        def receive(n: int) -> None:
            while sum(map(len, got)) < count and time.monotonic() < deadline:
                # The other thread may be receiving, or nothing came in time.
                with contextlib.suppress(ConcurrencyError, TimeoutError):
                    got[n].append(cast(str, ws.recv(timeout=0.005)))

        threads = [start_thread(functools.partial(receive, n)) for n in range(2)]
        for thread in threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive()
        assert sorted(got[0] + got[1], key=int) == [str(i) for i in range(count)]
        # Each thread's share comes in order.
        for share in got:
            assert share == sorted(share, key=int)


def test_recv_refused_while_a_streamed_message_is_half_read(
    raw_server: RawServer,
) -> None:
    ws, peer = open_raw(raw_server)
    try:
        peer.engine.send_text(b"one", fin=False)
        peer.engine.send_continuation(b"two", fin=False)
        peer.flush()
        pieces = ws.recv_streaming()
        assert next(pieces) == "one"
        # The generator holds the receiving side until the message ends.
        with pytest.raises(ConcurrencyError):
            ws.recv(timeout=0)
        with pytest.raises(ConcurrencyError):
            next(ws.recv_streaming())
        assert next(pieces) == "two"
        peer.engine.send_continuation(b"three", fin=True)
        peer.engine.send_text(b"next")
        peer.flush()
        assert list(pieces) == ["three"]
        assert ws.recv(timeout=TIMEOUT) == "next"
    finally:
        bounded(ws.close)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(start_server: ServerFactory, ca: trustme.CA) -> tuple[Server, Any]:
    """An echo server over TLS and a client context that trusts it."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return start_server(ssl=server_context), client_context


def test_tls_timed_recv(tls_server: tuple[Server, Any]) -> None:
    server, context = tls_server
    port = server.socket.getsockname()[1]
    with connect(f"wss://localhost:{port}/", ssl=context, open_timeout=TIMEOUT) as ws:
        for i in range(30):
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.001)
            ws.send(f"{i}")
            received = None
            deadline = time.monotonic() + TIMEOUT
            while received is None and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    received = ws.recv(timeout=0.001)
            assert received == f"{i}"
        # Without a timeout the receiving thread reads TLS itself.
        ws.send("blocking")
        assert ws.recv() == "blocking"
        assert ws.ping().wait(TIMEOUT)


class VectorSocket:
    """A stand-in socket whose ``sendmsg`` sends at most a few KiB, as a signal could cut it."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.sendall_calls = 0
        self.sendmsg_calls = 0

    def sendall(self, data: bytes) -> None:
        self.sendall_calls += 1
        self.written += data

    def sendmsg(self, buffers: list[memoryview]) -> int:
        self.sendmsg_calls += 1
        room = 7000
        for buffer in buffers:
            taken = bytes(buffer[:room])
            self.written += taken
            room -= len(taken)
            if not room:
                break
        return 7000 - room


def test_several_large_frames_written_as_one_vector() -> None:
    fake = VectorSocket()
    ws = Connection(cast(socket.socket, fake), ClientProtocol(parse_uri("ws://localhost/")))
    chunks = [b"a" * 20000, b"", b"b" * 30000, b"c" * 5]
    ws._write(chunks)
    assert bytes(fake.written) == b"".join(chunks)
    assert fake.sendall_calls == 0
    assert fake.sendmsg_calls > 1
    # Small pieces are cheaper to join than to send as a vector.
    fake.written.clear()
    small = [b"x" * 10, b"y" * (JOIN_LIMIT - 10)]
    ws._write(small)
    assert bytes(fake.written) == b"".join(small)
    assert fake.sendall_calls == 1


class CountingSocket(socket.socket):
    """A real socket that counts, per thread, the reads and writes made on it."""

    def __init__(self, fileno: int) -> None:
        super().__init__(fileno=fileno)
        self.reads: dict[int, int] = {}
        self.writes: dict[int, int] = {}

    def _count(self, calls: dict[int, int]) -> None:
        ident = threading.get_ident()
        calls[ident] = calls.get(ident, 0) + 1

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._count(self.reads)
        return super().recv(size, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._count(self.writes)
        return super().send(data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._count(self.writes)
        super().sendall(data, flags)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self._count(self.writes)
        return super().sendmsg(buffers, *args)


class CountingPoll:
    """``select.poll`` that counts the waits made by one thread."""

    def __init__(self, real: Callable[[], Any], counted: int, waits: list[int]) -> None:
        self.poller = real()
        self.counted = counted
        self.waits = waits

    def register(self, fd: Any, events: int) -> None:
        self.poller.register(fd, events)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if threading.get_ident() == self.counted:
            self.waits.append(1)
        return cast(list[tuple[int, int]], self.poller.poll(timeout))


def test_client_reads_a_message_with_one_call(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    me = threading.get_ident()
    waits: list[int] = []
    real_poll = select.poll
    monkeypatch.setattr(select, "poll", lambda: CountingPoll(real_poll, me, waits))
    plain = socket.create_connection(server.socket.getsockname()[:2], timeout=TIMEOUT)
    sock = CountingSocket(plain.detach())
    with connect(uri_of(server), sock=sock, open_timeout=TIMEOUT, ping_interval=None) as ws:
        assert ws.socket is sock
        ws.send(b"warm-up")
        assert ws.recv() == b"warm-up"
        sock.reads.clear()
        sock.writes.clear()
        waits.clear()
        count = 50
        for i in range(count):
            message = i.to_bytes(16)
            ws.send(message)
            assert ws.recv() == message
        # One write per message, and the reads without a poll before each:
        # the background reader may read some replies if this thread is
        # descheduled longer than the grace, never more than one each.
        assert sock.writes == {me: count}
        assert 1 <= sock.reads.get(me, 0) <= count
        assert sum(sock.reads.values()) == count
        assert waits == []
        # With a timeout the thread still waits in poll, which bounds it.
        ws.send(b"timed")
        assert ws.recv(timeout=TIMEOUT) == b"timed"
        assert waits
