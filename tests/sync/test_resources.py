"""No thread or file descriptor outlives the connections that used it."""

from __future__ import annotations

import os
import threading
import time

from tether.sync import connect, serve

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
