"""Idle connections have no thread of their own: the shared watcher waits for their sockets.

A reader thread starts when data comes while nobody is in ``recv`` and ends
after ``READER_LINGER`` seconds of quiet, handing the socket back. These
tests shorten that linger so that every hand-over happens many times, and
check the guarantees of the background reader: pings are answered, close
frames and EOF are seen, no message is lost or read twice, and the socket is
closed once the connection ends.
"""

from __future__ import annotations

import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.behaviour.raw import RawPeer
from tether.exceptions import ConnectionClosed
from tether.protocol.events import Message, Pong
from tether.sync import ClientConnection, Server, ServerConnection, connect
from tether.sync import connection as sync_connection
from tether.sync.connection import WATCH_SOCKET
from tether.sync.watcher import watcher

from .conftest import (
    TIMEOUT,
    RawServer,
    ServerFactory,
    bounded,
    raw_client,
    start_thread,
    uri_of,
)


@pytest.fixture(autouse=True)
def short_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_connection, "READER_LINGER", 0.005)


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` until it holds, for ``TIMEOUT`` seconds at most."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def reader_of(ws: ClientConnection | ServerConnection) -> list[threading.Thread]:
    name = f"tether-reader-{str(ws.id)[:8]}"
    return [thread for thread in threading.enumerate() if thread.name == name]


def watched(ws: ClientConnection | ServerConnection) -> bool:
    return ws._watch == WATCH_SOCKET and ws.socket.fileno() in watcher and not reader_of(ws)


@pytest.fixture
def idle(raw_server: RawServer) -> Iterator[tuple[ClientConnection, RawPeer]]:
    """A client that went idle (watched, no reader thread) and its raw peer."""
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    peer = raw_server.peer()
    try:
        assert wait_until(lambda: watched(ws))
        yield ws, peer
    finally:
        bounded(ws.close)


def test_pings_answered_while_idle(idle: tuple[ClientConnection, RawPeer]) -> None:
    ws, peer = idle
    for i in range(5):
        payload = f"ping {i}".encode()
        peer.engine.send_ping(payload)
        peer.flush()
        assert peer.next_event() == Pong(payload)
        # The reader thread that answered goes away again.
        assert wait_until(lambda: watched(ws))


def test_messages_that_came_while_idle_are_received_once_in_order(
    idle: tuple[ClientConnection, RawPeer],
) -> None:
    ws, peer = idle
    for i in range(50):
        peer.engine.send_text(f"message {i}".encode())
        if i % 10 == 0:
            peer.engine.send_ping(str(i).encode())
        peer.flush()
    # More than max_queue: the reader stops reading until recv makes room.
    received = [ws.recv(timeout=TIMEOUT) for _ in range(50)]
    assert received == [f"message {i}" for i in range(50)]
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.05)
    assert [peer.next_event() for _ in range(5)] == [
        Pong(str(i).encode()) for i in range(0, 50, 10)
    ]


def test_close_frame_while_idle(idle: tuple[ClientConnection, RawPeer]) -> None:
    ws, peer = idle
    peer.engine.send_close(1001, "bye")
    peer.flush()
    peer.close()
    assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1001
    # The reader thread that saw it closed the socket.
    assert wait_until(lambda: ws.socket.fileno() == -1)
    assert ws.socket.fileno() not in watcher


def test_eof_while_idle(idle: tuple[ClientConnection, RawPeer]) -> None:
    ws, peer = idle
    peer.close()
    assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1006
    assert wait_until(lambda: ws.socket.fileno() == -1)


def test_socket_closed_by_the_thread_in_recv(idle: tuple[ClientConnection, RawPeer]) -> None:
    ws, peer = idle
    errors: list[ConnectionClosed] = []

    def receive() -> None:
        try:
            ws.recv(timeout=TIMEOUT)
        except ConnectionClosed as exc:
            errors.append(exc)

    receiver = start_thread(receive)
    # Wait until recv reads the socket itself, then end the connection.
    assert wait_until(lambda: ws._reading)
    peer.close()
    receiver.join(TIMEOUT)
    assert not receiver.is_alive()
    assert len(errors) == 1
    assert ws.wait_closed(0)
    assert wait_until(lambda: ws.socket.fileno() == -1)


class Gate:
    """A socket pair the shared watcher waits for; its callback holds the watcher's thread.

    The watcher calls back each socket of one ``select`` in turn, after it
    forgot them all: while a gate's callback waits, the calls picked with it
    wait too, in the order their sockets became readable (epoll's order).
    """

    def __init__(self, *, hold: bool = True) -> None:
        self.reading, self.writing = socket.socketpair()
        self.hold = hold
        self.entered = threading.Event()
        """Set once the watcher calls the gate back."""
        self.release = threading.Event()
        """Lets the watcher's thread go on, for a gate that holds it."""
        watcher.watch(self.reading.fileno(), self._called)

    def _called(self) -> None:
        self.entered.set()
        if self.hold:
            self.release.wait(TIMEOUT)

    def trigger(self) -> None:
        """Make the socket readable: the watcher calls the gate back on its next turn."""
        self.writing.send(b"x")

    def close(self) -> None:
        self.release.set()
        watcher.forget(self.reading.fileno())
        self.reading.close()
        self.writing.close()


def test_a_watcher_call_made_stale_by_recv_is_ignored(
    idle: tuple[ClientConnection, RawPeer],
) -> None:
    # The interleaving of the race: (1) the watcher picks the call of the
    # connection's readable socket; (2) before it runs, recv takes the socket
    # and reads; (3) recv left, and after the grace the socket is watched
    # again; (4) the stale call runs. It must change nothing: it used to take
    # the socket for a reader and watch it a second time later (KeyError
    # 'already registered' on a shared thread; make soak's threading cases
    # then lost connections that nobody read).
    ws, peer = idle
    fd = ws.socket.fileno()
    first, second = Gate(), Gate()
    after = Gate(hold=False)
    try:
        first.trigger()
        assert first.entered.wait(TIMEOUT)
        # The watcher's thread waits in first's callback. Now second's socket,
        # then the connection's, become readable: its next turn picks both.
        second.trigger()
        peer.engine.send_text(b"taken by recv")
        peer.flush()
        assert select.select([ws.socket], [], [], TIMEOUT)[0]
        first.release.set()
        assert second.entered.wait(TIMEOUT)
        # (1) The connection's call is picked and waits behind second's.
        assert fd not in watcher
        assert ws._watch == WATCH_SOCKET
        # (2) recv without a timeout takes the socket from the watcher.
        assert ws.recv() == "taken by recv"
        # (3) Watched again once the grace after recv is over.
        assert wait_until(lambda: watched(ws))
        # (4) The stale call runs; after's callback runs once it returned.
        after.trigger()
        second.release.set()
        assert after.entered.wait(TIMEOUT)
        assert watched(ws)
        # The connection still reads while idle.
        peer.engine.send_ping(b"still read")
        peer.flush()
        assert peer.next_event() == Pong(b"still read")
        peer.engine.send_text(b"and then")
        peer.flush()
        assert ws.recv(timeout=TIMEOUT) == "and then"
    finally:
        for gate in (first, second, after):
            gate.close()


def test_close_while_idle(start_server: ServerFactory) -> None:
    server = start_server()
    ws = connect(uri_of(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT)
    assert wait_until(lambda: watched(ws))
    bounded(ws.close)
    assert ws.close_code == 1000
    assert wait_until(lambda: ws.socket.fileno() == -1)


def test_hand_overs_lose_and_repeat_nothing(start_server: ServerFactory) -> None:
    # The receiver pauses at random around READER_GRACE and READER_LINGER,
    # so reads go to it, to reader threads and to the watcher in turn.
    count = 120

    def burst(ws: ServerConnection) -> None:
        for message in ws:
            size = int(message)
            for i in range(size):
                ws.send(f"{size}.{i}")

    server: Server = start_server(burst, ping_interval=0.04, ping_timeout=TIMEOUT)
    rng = random.Random(42)
    with connect(uri_of(server), open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_queue=4) as ws:
        deadline = time.monotonic() + TIMEOUT
        for n in range(count):
            size = rng.randrange(1, 8)
            ws.send(str(size))
            if rng.random() < 0.5:
                time.sleep(rng.choice([0, 0.001, 0.01, 0.03, 0.07]))
            received = [ws.recv(timeout=TIMEOUT) for _ in range(size)]
            assert received == [f"{size}.{i}" for i in range(size)], n
            if rng.random() < 0.2:
                assert ws.ping().wait(TIMEOUT)
            if time.monotonic() > deadline:
                break
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.01)


def served_one(
    start_server: ServerFactory, handler: Callable[[ServerConnection], None]
) -> tuple[ServerConnection, RawPeer]:
    """Serve ``handler`` (after it records its connection) to a raw client; no keepalive."""
    connections: list[ServerConnection] = []

    def record(ws: ServerConnection) -> None:
        connections.append(ws)
        handler(ws)

    server = start_server(record, ping_interval=None, close_timeout=0.1)
    peer = raw_client(server)
    assert wait_until(lambda: bool(connections))
    return connections[0], peer


def test_a_handler_waiting_in_recv_reads_its_socket_alone(start_server: ServerFactory) -> None:
    def echo_until_closed(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    ws, peer = served_one(start_server, echo_until_closed)
    for i in range(3):
        # The handler's thread waits for data in recv: the watcher does not
        # wait for the same socket, and no reader thread starts for it.
        assert wait_until(lambda: ws._reading)
        assert ws._watch != WATCH_SOCKET
        assert ws.socket.fileno() not in watcher
        assert not reader_of(ws)
        peer.engine.send_ping(f"ping {i}".encode())
        peer.flush()
        assert peer.next_event() == Pong(f"ping {i}".encode())
        peer.engine.send_text(f"message {i}".encode())
        peer.flush()
        assert peer.next_event() == Message(f"message {i}")
    peer.engine.send_close(1000, "done")
    peer.flush()
    assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1000
    assert wait_until(lambda: ws.socket.fileno() == -1)


def test_a_handler_that_stops_reading_gives_its_socket_to_the_watcher(
    start_server: ServerFactory,
) -> None:
    release = threading.Event()

    def read_once(ws: ServerConnection) -> None:
        ws.recv()
        release.wait(TIMEOUT)

    ws, peer = served_one(start_server, read_once)
    try:
        assert wait_until(lambda: ws._reading)
        assert ws.socket.fileno() not in watcher
        peer.engine.send_text(b"first")
        peer.flush()
        # recv returned and the handler waits elsewhere: after the grace,
        # the watcher waits for the socket, and pings are still answered.
        assert wait_until(lambda: watched(ws))
        for i in range(3):
            peer.engine.send_ping(f"ping {i}".encode())
            peer.flush()
            assert peer.next_event() == Pong(f"ping {i}".encode())
            assert wait_until(lambda: watched(ws))
    finally:
        release.set()
    assert ws.wait_closed(TIMEOUT)
