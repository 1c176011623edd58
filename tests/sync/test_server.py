"""The threading server: serve_forever, shutdown, handshake hooks, handlers, timeouts."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.sync import ServerConnection, connect, serve

from .conftest import TIMEOUT, ServerFactory, bounded, run_server, stop_server, uri_of


def test_shutdown_closes_connections_with_1001(start_server: ServerFactory) -> None:
    server = start_server()
    uri = uri_of(server)
    ws = connect(uri, close_timeout=TIMEOUT)
    ws.send("hello")
    assert ws.recv(timeout=TIMEOUT) == "hello"
    assert len(bounded(lambda: server.connections)) == 1
    bounded(server.shutdown)
    with pytest.raises(ConnectionClosedOK):
        ws.recv(timeout=TIMEOUT)
    assert ws.close_code == 1001
    # A second shutdown does nothing; nobody can connect any more.
    bounded(server.shutdown)
    with pytest.raises(ConnectionRefusedError):
        connect(uri, open_timeout=TIMEOUT)


def test_serve_forever_and_context_manager() -> None:
    with serve(lambda ws: ws.send("hi"), "127.0.0.1", 0) as server:
        thread = run_server(server)
        with connect(uri_of(server)) as ws:
            assert ws.recv(timeout=TIMEOUT) == "hi"
        assert server.fileno() == server.socket.fileno()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_shutdown_before_serve_forever() -> None:
    server = serve(lambda ws: None, "127.0.0.1", 0)
    bounded(server.shutdown)
    bounded(server.serve_forever)


def test_handler_return_closes_1000(start_server: ServerFactory) -> None:
    server = start_server(lambda ws: ws.send("bye"))
    with connect(uri_of(server)) as ws:
        assert ws.recv(timeout=TIMEOUT) == "bye"
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1000


def test_handler_raise_closes_1011_and_logs(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ws: ServerConnection) -> None:
        raise ValueError("handler bug")

    server = start_server(broken)
    with caplog.at_level(logging.ERROR, logger="tether.server"), connect(uri_of(server)) as ws:
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
    records = [r for r in caplog.records if r.name == "tether.server" and r.exc_info]
    assert records
    assert isinstance(records[0].exc_info and records[0].exc_info[1], ValueError)


def test_client_leaving_during_the_handler_is_no_error(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # As with the asyncio server: a peer that vanishes is no bug of the handler.
    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    server = start_server(echo)
    caplog.set_level(logging.DEBUG, logger="tether.server")
    ws = connect(uri_of(server))
    ws.send("one")
    assert ws.recv(timeout=TIMEOUT) == "one"
    # Drop TCP without a close frame: the handler's iteration raises ConnectionClosedError.
    ws.socket.shutdown(socket.SHUT_RDWR)
    bounded(ws.close)
    deadline = time.monotonic() + TIMEOUT
    while server._connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server._connections
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("ended by the closure" in r.getMessage() for r in caplog.records)


def test_other_connection_closed_in_handler_is_an_error(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    other = start_server(lambda ws: None)
    peer = connect(uri_of(other))
    with pytest.raises(ConnectionClosedOK):
        peer.recv(timeout=TIMEOUT)

    def relay(ws: ServerConnection) -> None:
        peer.send("to a closed peer")  # Raises ConnectionClosed about *peer*.

    server = start_server(relay)
    with caplog.at_level(logging.ERROR, logger="tether.server"), connect(uri_of(server)) as ws:
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
    assert any("connection handler failed" in r.getMessage() for r in caplog.records)


def test_dual_stack(start_server: ServerFactory) -> None:
    server = start_server(host=None, port=0)
    port = server.socket.getsockname()[1]
    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("v4")
        assert ws.recv(timeout=TIMEOUT) == "v4"
    if socket.has_dualstack_ipv6():
        assert server.socket.family == socket.AF_INET6
        try:
            ws6 = connect(f"ws://[::1]:{port}/", open_timeout=TIMEOUT)
        except OSError:
            return  # Loopback IPv6 is not configured on this machine.
        with ws6:
            ws6.send("v6")
            assert ws6.recv(timeout=TIMEOUT) == "v6"
    else:
        assert server.socket.family == socket.AF_INET


def test_listening_socket_given(start_server: ServerFactory) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    server = start_server(sock=listener)
    assert server.socket is listener
    with connect(uri_of(server)) as ws:
        ws.send("given")
        assert ws.recv(timeout=TIMEOUT) == "given"


def test_shutdown_from_handler() -> None:
    server = serve(lambda ws: None, "127.0.0.1", 0)
    stopped = threading.Event()

    def stop(ws: ServerConnection) -> None:
        server.shutdown(close_connections=False)
        stopped.set()

    server.handler = stop
    thread = run_server(server)
    try:
        with connect(uri_of(server)) as ws:
            assert stopped.wait(TIMEOUT)
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=TIMEOUT)
    finally:
        stop_server(server, thread)


def test_a_limit_below_its_range_fails_serve_and_connect() -> None:
    # At once, not in every connection's handshake; connect does not even
    # try to reach the (closed) port.
    with pytest.raises(ValueError, match="max_size"):
        serve(lambda ws: None, "127.0.0.1", 0, max_size=-1)
    with pytest.raises(ValueError, match="max_size"):
        connect("ws://127.0.0.1:9/", max_size=-1)
