"""One task per trio run reads idle connections and keeps their deadlines.

A trio connection over a plain socket has no task of its own: the task that
waits in ``recv`` (or ``recv_streaming``, ``wait_closed``, ``async for``)
reads the socket itself. While no task does, something must still notice
the peer's pings and close frames, and keepalive pings, their pongs and the
closing timeout have deadlines. Rather than a reader task per connection,
the :class:`Watcher` of the run does both for every connection:

* Sockets of connections that nobody reads wait in an epoll object of its
  own, armed once (``EPOLLONESHOT``); the watcher waits for that epoll's file
  descriptor to become readable, which trio's own epoll reports, then asks
  which sockets are readable and has their connections read them without
  waiting.
* A connection's next deadline waits in a heap; the watcher's wait ends at
  the earliest one.
* A connection whose receiving task just left ``recv`` is likely to call it
  again soon: it waits in a queue for ``GRACE`` seconds before its
  socket is armed, so that a request/response exchange never wakes two
  tasks per message.
* A task waiting in ``recv`` waits with trio's ``wait_readable``, which
  holds a chain of coroutines and trio's registration for as long as it
  waits. After ``IDLE`` seconds with nothing read, the watcher wakes it
  (:func:`trio.lowlevel.notify_closing`, the only way to end another
  task's wait on a file descriptor without a cancel scope around every
  wait, which would cost each message more than it saves); the task then
  waits for the watcher instead, holding a single coroutine, and the
  watcher reads for it until a message comes.

The watcher runs as a trio system task, started with the first connection
and ended with the last one, so no task outlives the connections. When
``trio.run`` ends (system tasks are cancelled), it closes the connections
still open with 1001 (going away) first, within their ``close_timeout``.

Connections only use it on platforms with :func:`select.epoll` (Linux);
elsewhere, and over TLS, each connection keeps a reader task of its own.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import select
from collections import deque
from typing import Any, Protocol

import trio

__all__ = ["AVAILABLE", "GRACE", "Watched", "Watcher", "watcher"]

logger = logging.getLogger("tether")

AVAILABLE = hasattr(select, "epoll")
"""Whether connections can be watched here (epoll): otherwise each has a reader task."""

GRACE = 0.05
"""Seconds after a task left ``recv`` before the watcher reads for it."""

IDLE = 0.25
"""Seconds a task waits in ``recv`` with nothing read before the watcher waits for it."""

GOING_AWAY_LIMIT = 10.0
"""How long the watcher waits for closing handshakes when cancelled, without close_timeout."""

_EVENTS = select.EPOLLIN | select.EPOLLONESHOT if AVAILABLE else 0

Timer = list[Any]
"""A deadline in the heap: ``[when, sequence, connection or None once cancelled]``."""


class Watched(Protocol):
    """What the watcher asks of a connection (:class:`tether.trio.connection.Connection`)."""

    close_timeout: float | None
    _lost: bool
    _timer: Timer | None

    def _on_readable(self) -> None: ...
    def _on_grace(self, reads: int) -> None: ...
    def _on_deadline(self, now: float) -> None: ...
    def _on_idle(self, reads: int) -> None: ...
    def _go_away_nowait(self) -> None: ...
    def _close_now(self) -> None: ...


class Watcher:
    """The reads and deadlines of one trio run's idle connections; see the module."""

    def __init__(self) -> None:
        self._members = 0
        self._running = False
        self._epoll: Any = None
        # The sockets registered in the epoll object, armed or not.
        self._registered: dict[int, Watched] = {}
        self._timers: list[Timer] = []
        self._sequence = 0
        # (when, connection, its recv count then): connections that left recv.
        self._grace: deque[tuple[float, Watched, int]] = deque()
        # (when, connection, its read count then): tasks waiting in recv.
        self._idle: deque[tuple[float, Watched, int]] = deque()
        self._scope: trio.CancelScope | None = None
        # Connections to call back at once: their socket could not be armed.
        self._ready: list[Watched] = []

    def __len__(self) -> int:
        """The number of connections using this watcher."""
        return self._members

    # Connections join and leave

    def add(self, connection: Watched) -> None:
        """Take ``connection`` in; start the task if it is the first."""
        self._members += 1
        if self._epoll is None:
            self._epoll = select.epoll()
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="tether watcher")

    def remove(self, connection: Watched, fd: int) -> None:
        """Let ``connection`` go, before its socket ``fd`` is closed."""
        if self._registered.get(fd) is connection:
            del self._registered[fd]
            with contextlib.suppress(OSError, ValueError):
                # Closed already, behind the connection's back.
                self._epoll.unregister(fd)
        timer = connection._timer
        if timer is not None:
            timer[2] = None
            connection._timer = None
        self._members -= 1
        if not self._members:
            self._wake()

    # What connections ask for

    def arm(self, connection: Watched, fd: int) -> None:
        """Have ``connection`` read once ``fd`` is readable (once)."""
        try:
            if self._registered.get(fd) is connection:
                self._epoll.modify(fd, _EVENTS)
            else:
                self._registered[fd] = connection
                self._epoll.register(fd, _EVENTS)
        except OSError:
            # Closed behind the connection's back: reading it tells so.
            self._ready.append(connection)
            self._wake()

    def schedule(self, when: float, connection: Watched) -> Timer:
        """Call ``connection._on_deadline`` at ``when`` (trio's clock); cancel by clearing [2]."""
        self._sequence += 1
        timer = [when, self._sequence, connection]
        heapq.heappush(self._timers, timer)
        scope = self._scope
        if scope is not None and when < scope.deadline:
            scope.deadline = when
        return timer

    def after_recv(self, connection: Watched, reads: int) -> None:
        """``connection``'s receiver left recv: arm its socket unless it reads again soon."""
        when = trio.current_time() + GRACE
        grace = self._grace
        grace.append((when, connection, reads))
        scope = self._scope
        if len(grace) == 1 and scope is not None and when < scope.deadline:
            scope.deadline = when

    def cool_later(self, connection: Watched, reads: int) -> None:
        """A task of ``connection`` waits to read: wait for it instead if nothing comes soon."""
        when = trio.current_time() + IDLE
        idle = self._idle
        idle.append((when, connection, reads))
        scope = self._scope
        if len(idle) == 1 and scope is not None and when < scope.deadline:
            scope.deadline = when

    # The task

    def _wake(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _run(self) -> None:
        try:
            await self._serve()
        except trio.Cancelled:
            # trio.run is ending: close what is still open with 1001.
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._going_away()
                await self._serve()
            for connection in self._connections():
                connection._close_now()
            raise
        finally:
            self._running = False
            self._scope = None
            if not self._members:
                # Entries of connections gone already: they would keep them
                # alive until the run's next connection.
                self._timers.clear()
                self._grace.clear()
                self._idle.clear()
                self._ready.clear()
                if self._epoll is not None:
                    self._epoll.close()
                    self._epoll = None

    def _going_away(self) -> float:
        """Start closing every connection with 1001; return how long to wait for them."""
        limit = 0.0
        for connection in self._connections():
            timeout = connection.close_timeout
            limit = max(limit, GOING_AWAY_LIMIT if timeout is None else timeout)
            try:
                connection._go_away_nowait()
            except Exception:  # pragma: no cover - defensive
                logger.exception("error while closing a connection")
        return limit

    def _connections(self) -> set[Watched]:
        found = set(self._registered.values())
        found.update(timer[2] for timer in self._timers if timer[2] is not None)
        found.update(item[1] for item in self._grace)
        found.update(item[1] for item in self._idle)
        return {connection for connection in found if not connection._lost}

    async def _serve(self) -> None:
        epoll = self._epoll
        fileno = epoll.fileno()
        while self._members:
            deadline = math.inf
            if self._timers:
                deadline = self._timers[0][0]
            if self._grace:
                deadline = min(deadline, self._grace[0][0])
            if self._idle:
                deadline = min(deadline, self._idle[0][0])
            if self._ready:
                deadline = -math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                await trio.lowlevel.wait_readable(fileno)
            self._scope = None
            self._tick(epoll)

    def _tick(self, epoll: Any) -> None:
        # What came first: a pong that arrived counts before its deadline.
        ready, self._ready = self._ready, []
        for connection in ready:
            _call(connection._on_readable)
        registered = self._registered
        for fd, _ in epoll.poll(0):
            watched = registered.get(fd)
            if watched is not None:
                _call(watched._on_readable)
        now = trio.current_time()
        timers = self._timers
        while timers and timers[0][0] <= now:
            connection = heapq.heappop(timers)[2]
            if connection is not None:
                connection._timer = None
                _call(connection._on_deadline, now)
        grace = self._grace
        while grace and grace[0][0] <= now:
            _, connection, reads = grace.popleft()
            _call(connection._on_grace, reads)
        idle = self._idle
        while idle and idle[0][0] <= now:
            _, connection, reads = idle.popleft()
            _call(connection._on_idle, reads)


def _call(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        logger.exception("error in a connection's watcher callback")


_WATCHER: trio.lowlevel.RunVar[Watcher] = trio.lowlevel.RunVar("tether_watcher")


def watcher() -> Watcher:
    """The watcher of the current trio run."""
    try:
        return _WATCHER.get()
    except LookupError:
        found = Watcher()
        _WATCHER.set(found)
        return found
