"""One thread per process runs the timers of every threading connection.

Keepalive pings, their timeouts and closing timeouts wait in a heap of
deadlines; a single daemon thread sleeps until the earliest one and runs it.
A thread per connection for that would cost its stack and a context switch
per tick, for work that takes microseconds.

Callbacks run on the shared thread, one after the other: they must never block
(no waiting for a lock that a stuck writer holds, no blocking write), or every
other connection's timers would wait too. The thread starts with the first
timer and ends after :data:`LINGER` seconds without any, so that an idle
process keeps no thread.
"""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LINGER", "Scheduler", "Timer", "scheduler"]

logger = logging.getLogger("tether")

LINGER = 1.0
"""Seconds the shared thread waits for a new timer before it ends."""

COMPACT_MIN = 64
"""Heaps smaller than this keep their cancelled entries until they come due."""


# What a timer's argument is when its callback takes none.
_NO_ARGUMENT: Any = object()


class Timer(float):
    """A callback due at some time; :meth:`Scheduler.cancel` drops it.

    The timer is its deadline, a :func:`time.monotonic` time: as a
    :class:`float`, timers order themselves in the scheduler's heap, with no
    tuple, counter or float of their own. Every idle connection has a
    keepalive timer, so this is memory each one saves (about 170 bytes, with
    the argument that replaces a bound method).
    """

    __slots__ = ("argument", "callback")

    callback: Callable[..., object] | None
    argument: Any

    def __new__(
        cls, when: float, callback: Callable[..., object], argument: Any = _NO_ARGUMENT
    ) -> Timer:
        """A timer due at ``when`` that calls ``callback``, with ``argument`` if one is given."""
        timer = super().__new__(cls, when)
        # None once run or cancelled, with argument: the heap entry then
        # holds nothing else.
        timer.callback = callback
        timer.argument = argument
        return timer

    @property
    def active(self) -> bool:
        """Whether the callback is still to run."""
        return self.callback is not None


class Scheduler:
    """Timers run by one lazily started daemon thread."""

    def __init__(self, name: str = "tether-timers") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._heap: list[Timer] = []
        # Timers still to run; the heap also holds cancelled ones.
        self._live = 0
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """The number of timers still to run."""
        return self._live

    def call_later(
        self, delay: float, callback: Callable[..., object], argument: Any = _NO_ARGUMENT
    ) -> Timer:
        """Run ``callback`` on the shared thread ``delay`` seconds from now.

        It is called with ``argument`` when one is given: an unbound method
        and its instance cost less memory than a bound method.
        """
        return self.call_at(time.monotonic() + delay, callback, argument)

    def call_at(
        self, when: float, callback: Callable[..., object], argument: Any = _NO_ARGUMENT
    ) -> Timer:
        """Run ``callback`` (with ``argument``, if given) on the shared thread at ``when``.

        ``when`` is a :func:`time.monotonic` time.
        """
        timer = Timer(when, callback, argument)
        with self._lock:
            heap = self._heap
            heapq.heappush(heap, timer)
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            elif heap[0] is timer:
                # The thread sleeps until a later deadline.
                self._wakeup.notify()
        return timer

    def cancel(self, timer: Timer) -> None:
        """Forget ``timer`` unless it ran already; it holds no reference to its callback then."""
        with self._lock:
            if timer.callback is None:
                return
            timer.callback = timer.argument = None
            self._live -= 1
            heap = self._heap
            if not self._live:
                # The thread may sleep until a cancelled deadline: it can
                # clear the heap and start lingering now.
                self._wakeup.notify()
            elif len(heap) >= COMPACT_MIN and self._live < len(heap) // 2:
                # Mostly cancelled entries: rebuild rather than carry them.
                heap[:] = [entry for entry in heap if entry.callback is not None]
                heapq.heapify(heap)

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._lock:
                while True:
                    if not self._live:
                        heap.clear()
                        self._wakeup.wait(LINGER)
                        if not self._live:
                            # A later call_at starts a new thread.
                            self._thread = None
                            return
                        continue
                    timer = heap[0]
                    callback = timer.callback
                    if callback is None:
                        heapq.heappop(heap)
                        continue
                    delay = timer - time.monotonic()
                    if delay > 0:
                        # Holding no reference to a callback while asleep:
                        # cancelling one must free what it refers to.
                        del timer, callback
                        self._wakeup.wait(delay)
                        continue
                    heapq.heappop(heap)
                    argument = timer.argument
                    timer.callback = timer.argument = None
                    self._live -= 1
                    break
            try:
                if argument is _NO_ARGUMENT:
                    callback()
                else:
                    callback(argument)
            except Exception:
                logger.exception("error in a timer callback")
            # Drop the references before sleeping: they may hold a connection.
            del callback, timer, argument

    def _after_fork(self) -> None:
        # The child has no thread and the lock may have been held at fork.
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread = None
        # Timers of the parent's connections do not run here: as before
        # fork, a connection's threads do not exist in the child.
        for timer in self._heap:
            timer.callback = timer.argument = None
        self._heap.clear()
        self._live = 0


scheduler = Scheduler()
"""The process's scheduler, shared by every threading connection."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=scheduler._after_fork)
