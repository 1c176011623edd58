"""Keepalive on the shared scheduler: one thread for every connection, never held up by one."""

from __future__ import annotations

import gc
import socket
import threading
import time
import weakref
from collections.abc import Callable

from tether.exceptions import ConnectionClosedError
from tether.protocol.close import Close
from tether.protocol.events import Ping
from tether.sync import ClientConnection, Server, connect
from tether.sync.scheduler import Scheduler, scheduler

from .conftest import TIMEOUT, RawServer, ServerFactory, bounded, start_thread, uri_of


def open_client(server: Server, **kwargs: object) -> ClientConnection:
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return connect(uri_of(server), **kwargs)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` until it holds, for ``TIMEOUT`` seconds at most."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def thread_names(prefix: str) -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_scheduler_runs_timers_in_order_and_skips_cancelled() -> None:
    timers = Scheduler("tether-test-timers")
    ran: list[int] = []
    done = threading.Event()
    now = time.monotonic()
    timers.call_at(now + 0.03, lambda: ran.append(3))
    cancelled = timers.call_at(now + 0.01, lambda: ran.append(1))
    timers.call_at(now + 0.02, lambda: ran.append(2))
    timers.call_at(now + 0.04, done.set)
    timers.cancel(cancelled)
    assert not cancelled.active
    assert done.wait(TIMEOUT)
    assert ran == [2, 3]
    assert len(timers) == 0
    # With nothing left to do, its thread ends.
    assert wait_until(lambda: not thread_names("tether-test-timers"))


def test_scheduler_passes_the_argument_and_forgets_it() -> None:
    timers = Scheduler("tether-test-timers")
    ran: list[object] = []
    done = threading.Event()

    class Target:
        pass

    target, dropped = Target(), Target()
    now = time.monotonic()
    timer = timers.call_at(now + 0.02, ran.append, target)
    cancelled = timers.call_at(now + 0.01, ran.append, dropped)
    # A timer is its deadline: timers order themselves as floats do.
    assert cancelled < timer
    assert timer == now + 0.02
    timers.call_at(now + 0.03, done.set)
    timers.cancel(cancelled)
    # Cancelled, the timer holds nothing: its argument can go.
    reference = weakref.ref(dropped)
    del dropped
    gc.collect()
    assert reference() is None
    assert done.wait(TIMEOUT)
    assert ran == [target]
    # Run, likewise.
    assert timer.callback is None
    assert timer.argument is None


def test_scheduler_survives_a_failing_callback() -> None:
    timers = Scheduler("tether-test-timers")
    done = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    timers.call_later(0, fail)
    timers.call_later(0.01, done.set)
    assert done.wait(TIMEOUT)


def test_connections_share_one_keepalive_thread(start_server: ServerFactory) -> None:
    server = start_server(ping_interval=0.02, ping_timeout=TIMEOUT)
    clients = [open_client(server, ping_interval=0.02, ping_timeout=TIMEOUT) for _ in range(8)]
    try:
        # Every client saw the pong of a keepalive ping.
        assert wait_until(lambda: all(ws.latency > 0 for ws in clients))
        assert thread_names("tether-keepalive") == []
        assert thread_names(scheduler.name) == [scheduler.name]
        # Server connections too: 16 keepalives, one thread.
        assert len(scheduler) >= 16
    finally:
        for ws in clients:
            bounded(ws.close)


def test_closed_connection_leaves_the_schedule(echo_server: Server) -> None:
    ws = open_client(echo_server, ping_interval=20)
    timer = ws._keepalive
    assert timer is not None
    assert timer.active
    ws.close()
    assert not timer.active
    assert ws._keepalive is None
    # Nothing on the schedule keeps the connection alive (a reader thread
    # may need a moment to end).
    ref = weakref.ref(ws)
    del ws
    assert wait_until(lambda: gc.collect() >= 0 and ref() is None)


def test_stuck_writer_does_not_delay_other_keepalives(raw_server: RawServer) -> None:
    # A's peer never reads; its socket is filled until the kernel takes no
    # more, so A's keepalive ping cannot be written without blocking.
    stuck = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=0.02)
    raw_server.peer()
    chunk = bytes(65536)
    for _ in range(100_000):
        try:
            stuck.socket.send(chunk, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
    other_server = RawServer()
    try:
        live = connect(
            other_server.uri,
            open_timeout=TIMEOUT,
            close_timeout=0.1,
            ping_interval=0.02,
            ping_timeout=None,
        )
        peer = other_server.peer()
        try:
            # A thread of A's own waits for room to write its ping, holding
            # the write lock; the next pings of A don't wait for it.
            assert wait_until(lambda: bool(thread_names("tether-writer")))
            for _ in range(5):
                assert isinstance(peer.next_event(), Ping)
            assert thread_names("tether-writer")
            assert not stuck.wait_closed(0)
        finally:
            bounded(live.close)
    finally:
        other_server.close()
        # close_timeout shuts the socket down: the stuck write fails.
        bounded(stuck.close)
        assert wait_until(lambda: not thread_names("tether-writer"))


def test_keepalive_times_out_while_a_write_is_stuck(raw_server: RawServer) -> None:
    ws = connect(
        raw_server.uri,
        open_timeout=TIMEOUT,
        ping_interval=0.02,
        ping_timeout=0.05,
        close_timeout=0.1,
    )
    raw_server.peer()  # It never reads.
    errors: list[ConnectionClosedError] = []

    def send() -> None:
        try:
            ws.send(bytes(64 * 1024 * 1024))
        except ConnectionClosedError as exc:
            errors.append(exc)

    sender = start_thread(send)
    assert ws.wait_closed(TIMEOUT)
    sender.join(TIMEOUT)
    assert not sender.is_alive()
    assert [error.sent for error in errors] == [Close(1011, "keepalive ping timeout")]
    assert ws.close_code == 1006
