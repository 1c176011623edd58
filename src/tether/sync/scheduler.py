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
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["LINGER", "Scheduler", "Timer", "scheduler"]

logger = logging.getLogger("tether")

LINGER = 1.0
"""Seconds the shared thread waits for a new timer before it ends."""

COMPACT_MIN = 64
"""Heaps smaller than this keep their cancelled entries until they come due."""


class Timer:
    """A callback due at some time; :meth:`Scheduler.cancel` drops it."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], object]) -> None:
        # None once run or cancelled: the heap entry then holds nothing else.
        self.callback: Callable[[], object] | None = callback

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
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()
        # Timers still to run; the heap also holds cancelled ones.
        self._live = 0
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """The number of timers still to run."""
        return self._live

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` on the shared thread ``delay`` seconds from now."""
        return self.call_at(time.monotonic() + delay, callback)

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` on the shared thread at ``when`` (:func:`time.monotonic`)."""
        timer = Timer(callback)
        with self._lock:
            heap = self._heap
            heapq.heappush(heap, (when, next(self._counter), timer))
            self._live += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            elif heap[0][2] is timer:
                # The thread sleeps until a later deadline.
                self._wakeup.notify()
        return timer

    def cancel(self, timer: Timer) -> None:
        """Forget ``timer`` unless it ran already; it holds no reference to its callback then."""
        with self._lock:
            if timer.callback is None:
                return
            timer.callback = None
            self._live -= 1
            heap = self._heap
            if not self._live:
                # The thread may sleep until a cancelled deadline: it can
                # clear the heap and start lingering now.
                self._wakeup.notify()
            elif len(heap) >= COMPACT_MIN and self._live < len(heap) // 2:
                # Mostly cancelled entries: rebuild rather than carry them.
                heap[:] = [entry for entry in heap if entry[2].callback is not None]
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
                    when, _, timer = heap[0]
                    callback = timer.callback
                    if callback is None:
                        heapq.heappop(heap)
                        continue
                    delay = when - time.monotonic()
                    if delay > 0:
                        # Holding no reference to a callback while asleep:
                        # cancelling one must free what it refers to.
                        del timer, callback
                        self._wakeup.wait(delay)
                        continue
                    heapq.heappop(heap)
                    timer.callback = None
                    self._live -= 1
                    break
            try:
                callback()
            except Exception:
                logger.exception("error in a timer callback")
            # Drop the references before sleeping: they may hold a connection.
            del callback, timer

    def _after_fork(self) -> None:
        # The child has no thread and the lock may have been held at fork.
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._thread = None
        # Timers of the parent's connections do not run here: as before
        # fork, a connection's threads do not exist in the child.
        for _, _, timer in self._heap:
            timer.callback = None
        self._heap.clear()
        self._live = 0


scheduler = Scheduler()
"""The process's scheduler, shared by every threading connection."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=scheduler._after_fork)
