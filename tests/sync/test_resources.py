"""No thread or file descriptor outlives the connections that used it."""

from __future__ import annotations

import os
import socket
import threading
import time

from tests.behaviour import raw
from tether.sync import ServerConnection, connect, serve

from .conftest import TIMEOUT, echo, run_server, stop_server, uri_of


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def settle(expected_threads: int) -> int:
    """Wait, bounded, for background threads to end; return how many threads are left."""
    deadline = time.monotonic() + TIMEOUT
    while threading.active_count() > expected_threads and time.monotonic() < deadline:
        time.sleep(0.01)
    return threading.active_count()


def test_no_thread_or_socket_left_behind() -> None:
    threads_before = threading.active_count()
    fds_before = open_fds()
    server = serve(echo, "127.0.0.1", 0)
    thread = run_server(server)
    uri = uri_of(server)
    for i in range(500):
        # Keepalive threads too, on every other connection.
        with connect(uri, ping_interval=None if i % 2 else 20) as ws:
            ws.send(str(i))
            assert ws.recv(timeout=TIMEOUT) == str(i)
    stop_server(server, thread)
    # Threads and sockets of earlier tests may end meanwhile: none may be added.
    assert settle(threads_before) <= threads_before
    assert open_fds() <= fds_before


ENDINGS = ("close, TCP kept", "close, then FIN", "close, then RST", "FIN", "RST", "deaf")
"""How the peers end: after their close frame, or without one; "deaf" never
answers the server's close frame nor ends TCP."""


def test_peers_that_end_badly_leave_nothing_behind() -> None:
    # Each wait of the closing handshake, the half-close included, ends by
    # close_timeout at the latest: the server lets go of every connection,
    # its thread and its socket, before shutdown() is asked to.
    threads_before = threading.active_count()
    fds_before = open_fds()

    def handler(ws: ServerConnection) -> None:
        for message in ws:
            if message == "bye":
                return  # The server closes.

    server = serve(handler, "127.0.0.1", 0, close_timeout=0.3, compression=None)
    thread = run_server(server)
    port = server.socket.getsockname()[1]
    peers = []
    try:
        for ending in ENDINGS * 5:
            peer = raw.raw_client(port)
            peers.append(peer)
            if ending.startswith("close"):
                peer.engine.send_close(1000)
                peer.flush()
            elif ending == "deaf":
                peer.engine.send_text(b"bye")
                peer.flush()
            if ending.endswith("FIN"):
                peer.sock.shutdown(socket.SHUT_WR)
            elif ending.endswith("RST"):
                peer.abort()
        deadline = time.monotonic() + TIMEOUT
        while server._threads or server._connections:
            assert time.monotonic() < deadline, "a connection outlived close_timeout"
            time.sleep(0.01)
    finally:
        for peer in peers:
            peer.close()
        stop_server(server, thread)
    assert settle(threads_before) <= threads_before
    assert open_fds() <= fds_before
