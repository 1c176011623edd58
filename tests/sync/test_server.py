"""The threading server: serve_forever, shutdown, handshake hooks, handlers, timeouts."""

from __future__ import annotations

import socket
import threading

import pytest

from tether.exceptions import ConnectionClosedOK
from tether.sync import ServerConnection, connect, serve

from .conftest import TIMEOUT, ServerFactory, bounded, run_server, stop_server, uri_of


def test_serve_forever_and_context_manager() -> None:
    with serve(lambda ws: ws.send("hi"), "127.0.0.1", 0) as server:
        thread = run_server(server)
        with connect(uri_of(server)) as ws:
            assert ws.recv(timeout=TIMEOUT) == "hi"
        assert server.fileno() == server.socket.fileno()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_shutdown_before_serve_forever_and_twice() -> None:
    server = serve(lambda ws: None, "127.0.0.1", 0)
    bounded(server.shutdown)
    bounded(server.serve_forever)
    # A second shutdown does nothing.
    bounded(server.shutdown)


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
