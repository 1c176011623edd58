"""Fixtures and helpers of the threading API tests.

Servers run ``serve_forever`` in a background thread on 127.0.0.1 and a free
port, and are shut down at teardown. Every wait is bounded, so a bug fails a
test instead of hanging it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.behaviour import raw
from tests.behaviour.raw import RawPeer
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


# A hand-driven peer, for behaviour no real library shows on demand: see
# tests/behaviour/raw.py.


def raw_client(server: Server, path: str = "/") -> RawPeer:
    """Connect to ``server`` and do the client's handshake by hand."""
    host, port = server.socket.getsockname()[:2]
    return raw.raw_client(port, path, host)


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
        self.peers.append(raw.accept_raw(self.listener))
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
