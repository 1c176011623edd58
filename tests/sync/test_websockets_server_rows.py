"""The threading server and connection rows of the websockets 17 checklist, end to end."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
from werkzeug.routing import Map, Rule

import tether.sync
import tether.sync.server as server_module
from tether.exceptions import InvalidStatus
from tether.protocol.events import CloseReceived, Ping
from tether.sync import (
    ServerConnection,
    connect,
    serve,
    unix_connect,
    unix_reconnect,
    unix_route,
    unix_serve,
)

from .conftest import TIMEOUT, RawServer, bounded, run_server, stop_server, uri_of


def hold(ws: ServerConnection) -> None:
    ws.wait_closed(TIMEOUT)


def test_create_server_keywords() -> None:
    # Keywords tether does not know go to socket.create_server.
    server = serve(hold, "::1", 0, family=socket.AF_INET6)
    thread = run_server(server)
    try:
        assert server.socket.family == socket.AF_INET6
        with connect(uri_of(server)) as ws:
            assert ws.state is tether.protocol.State.OPEN
    finally:
        stop_server(server, thread)


def test_shutdown_waits_for_handlers() -> None:
    finished = threading.Event()
    started = threading.Event()

    def handler(ws: ServerConnection) -> None:
        started.set()
        with contextlib.suppress(tether.ConnectionClosed):
            ws.recv()
        # Work after the connection closed: shutdown waits for it.
        time.sleep(0.2)
        finished.set()

    server = serve(handler, "127.0.0.1", 0)
    thread = run_server(server)
    client = connect(uri_of(server))
    assert started.wait(TIMEOUT)
    bounded(lambda: server.shutdown(code=1012, reason="restart"))
    assert finished.is_set()
    thread.join(TIMEOUT)
    client.wait_closed(TIMEOUT)
    assert (client.close_code, client.close_reason) == (1012, "restart")


def test_unix_reconnect(tmp_path: Path) -> None:
    # unix_serve and unix_connect are tested on every API in tests/behaviour/test_unix.py.
    path = str(tmp_path / "ws.sock")
    server = unix_serve(lambda ws: ws.send(ws.request.path if ws.request else ""), path)
    thread = run_server(server)
    try:
        for ws in unix_reconnect(path):
            with ws:
                assert ws.recv(timeout=TIMEOUT) == "/"
            break
    finally:
        stop_server(server, thread)


@pytest.mark.parametrize("name", ["basic_auth", "broadcast"])
def test_server_module_exports(name: str) -> None:
    assert getattr(server_module, name) is getattr(tether.sync, name)
    with pytest.raises(AttributeError):
        server_module.no_such_name  # noqa: B018


def test_route_with_a_werkzeug_map_and_unix_route(tmp_path: Path) -> None:
    def channel(ws: ServerConnection, number: int) -> None:
        ws.send(f"{number + 1}")

    url_map = Map([Rule("/c/<int:number>", endpoint=channel), Rule("/old", redirect_to="/c/1")])
    path = str(tmp_path / "ws.sock")
    server = unix_route(url_map, path, server_name="example", ssl=True)
    thread = run_server(server)
    try:
        with unix_connect(path, "ws://localhost/c/41") as ws:
            assert ws.recv(timeout=TIMEOUT) == "42"
        # The client follows redirects, but not to another origin over a
        # Unix socket: it says so, with the server's answer as the cause.
        with pytest.raises(ValueError, match="Unix socket") as refused:
            unix_connect(path, "ws://localhost/old")
        redirect = refused.value.__cause__
        assert isinstance(redirect, InvalidStatus)
        assert redirect.response.status_code == 302
        assert redirect.response.headers["Location"] == "wss://example/c/1"
        with pytest.raises(InvalidStatus) as info:
            unix_connect(path, "ws://localhost/c/x")
        assert info.value.response.status_code == 404
    finally:
        stop_server(server, thread)


@pytest.mark.parametrize("ack_on_close", [False, True])
def test_ping_ack_on_close(raw_server: RawServer, ack_on_close: bool) -> None:
    with connect(raw_server.uri, ping_interval=None, close_timeout=0.5) as ws:
        peer = raw_server.peer()
        pong = ws.ping(b"unanswered", ack_on_close=ack_on_close)
        assert isinstance(peer.next_event(), Ping)
        peer.close()  # Closes TCP without a pong.
        assert ws.wait_closed(TIMEOUT)
    # As websockets: the closure sets the event only when asked to.
    assert pong.is_set() is ack_on_close


def test_a_ping_refused_while_closing_leaves_the_earlier_ones(raw_server: RawServer) -> None:
    # A ping refused because the connection is closing takes only its own
    # record back: an earlier one still hears of the closure.
    with connect(raw_server.uri, ping_interval=None, close_timeout=TIMEOUT) as ws:
        peer = raw_server.peer()
        first = ws.ping(b"first", ack_on_close=True)
        assert isinstance(peer.next_event(), Ping)
        peer.engine.send_close(1000)
        peer.flush()
        assert isinstance(peer.next_event(), CloseReceived)  # ws answered: it is closing
        with pytest.raises(tether.ConnectionClosed):
            ws.ping(b"second", ack_on_close=True)
        peer.close()
        assert ws.wait_closed(TIMEOUT)
    assert first.is_set()
