"""Fixtures and helpers of the threading API tests.

Servers run ``serve_forever`` in a background thread on 127.0.0.1 and a free
port, and are shut down at teardown. Every wait is bounded, so a bug fails a
test instead of hanging it.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tether.protocol.connection import Connection, Role
from tether.protocol.events import Event
from tether.protocol.handshake import accept_key
from tether.sync import Server, ServerConnection, serve

T = TypeVar("T")

TIMEOUT = 10.0
"""How long any wait in these tests lasts before the test is declared stuck."""


def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    for message in ws:
        ws.send(message)


def uri_of(server: Server, path: str = "/", scheme: str = "ws") -> str:
    """The URI of a server listening on loopback."""
    host, port = server.socket.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def bounded(call: Callable[[], T], timeout: float = TIMEOUT) -> T:
    """Run ``call`` in a thread; fail the test if it does not return within ``timeout``."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{call} did not return within {timeout} seconds"
    if error:
        raise error[0]
    return result[0]


def start_thread(target: Callable[[], object]) -> threading.Thread:
    """Start a daemon thread running ``target``."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


ServerFactory = Callable[..., Server]


def run_server(server: Server) -> threading.Thread:
    """Run ``serve_forever`` in a background thread."""
    return start_thread(server.serve_forever)


def stop_server(server: Server, thread: threading.Thread) -> None:
    """Shut the server down and check that ``serve_forever`` returned, both bounded."""
    bounded(server.shutdown)
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "serve_forever did not return after shutdown"


@pytest.fixture
def start_server() -> Iterator[ServerFactory]:
    """Start servers with any handler and options; all are shut down after the test."""
    running: list[tuple[Server, threading.Thread]] = []

    def start(handler: Callable[[ServerConnection], None] = echo, **kwargs: Any) -> Server:
        if not kwargs.get("unix") and "sock" not in kwargs:
            kwargs.setdefault("host", "127.0.0.1")
            kwargs.setdefault("port", 0)
        server = serve(handler, **kwargs)
        running.append((server, run_server(server)))
        return server

    yield start
    for server, thread in running:
        stop_server(server, thread)


@pytest.fixture
def echo_server(start_server: ServerFactory) -> Server:
    """An echo server on 127.0.0.1 and a free port."""
    return start_server()


# A hand-driven peer, for behaviour no real library shows on demand.


class RawPeer:
    """One end of a WebSocket connection that does only what the test tells it.

    Frames are encoded and decoded with a bare engine whose automatic answers
    (pongs, the echo of a close frame) are never written unless the test
    calls :meth:`flush`: the peer can stay silent and read nothing.
    """

    def __init__(self, sock: socket.socket, role: Role, leftover: bytes = b"") -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)
        self.engine = Connection(role, streaming=True, max_size=None)
        self._pending: list[Event] = []
        if leftover:
            self._feed(leftover)

    def _feed(self, data: bytes) -> None:
        self.engine.receive_data(data)
        self._pending.extend(self.engine.events())
        self.engine.data_to_send()

    def flush(self) -> None:
        """Write the frames the test put into the engine with its send methods."""
        self.sock.sendall(b"".join(self.engine.data_to_send()))

    def next_event(self) -> Event:
        """Return the next event the other side sent; raise EOFError if it closed TCP."""
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the other side closed the connection")
            self._feed(data)
        return self._pending.pop(0)

    def wait_eof(self) -> None:
        """Read until the other side closes TCP."""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return
            if not data:
                return

    def close(self) -> None:
        """Close TCP."""
        self.sock.close()


def _read_head(sock: socket.socket) -> tuple[list[str], bytes]:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(4096)
        if not data:
            raise EOFError("connection closed during the handshake")
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), rest


def header(lines: list[str], name: str) -> str:
    """The value of header ``name`` in an HTTP head split into lines."""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    raise KeyError(name)


def raw_client(server: Server, path: str = "/") -> RawPeer:
    """Connect to ``server`` and do the client's handshake by hand."""
    host, port = server.socket.getsockname()[:2]
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    lines, rest = _read_head(sock)
    assert lines[0].startswith("HTTP/1.1 101 "), lines[0]
    assert header(lines, "Sec-WebSocket-Accept") == accept_key(key)
    return RawPeer(sock, Role.CLIENT, rest)


class RawServer:
    """A listening socket that answers WebSocket handshakes by hand, in a thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.peers: list[RawPeer] = []
        self._ready = threading.Semaphore(0)
        self._thread = start_thread(self._accept_one)

    @property
    def uri(self) -> str:
        """The ``ws://`` URI to connect to."""
        host, port = self.listener.getsockname()[:2]
        return f"ws://{host}:{port}/"

    def _accept_one(self) -> None:
        sock, _ = self.listener.accept()
        sock.settimeout(TIMEOUT)
        lines, rest = _read_head(sock)
        key = header(lines, "Sec-WebSocket-Key")
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        self.peers.append(RawPeer(sock, Role.SERVER, rest))
        self._ready.release()

    def peer(self) -> RawPeer:
        """The peer of the client that connected, once its handshake is done."""
        assert self._ready.acquire(timeout=TIMEOUT), "no client connected"
        self._ready.release()
        return self.peers[0]

    def close(self) -> None:
        """Close the listener and every connection."""
        self._thread.join(TIMEOUT)
        self.listener.close()
        for peer in self.peers:
            peer.close()


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    """A server that completes one handshake by hand and then does what the test says."""
    server = RawServer()
    yield server
    server.close()
