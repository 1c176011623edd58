"""Condition variables and flags that cost nothing until a thread waits on them.

A threading server holds thousands of idle connections, and each needs a few
things to wait on (its reader's wake-up, a message, its end) that nobody
waits on most of the time. :class:`threading.Condition` and
:class:`threading.Event` cost about 1.3 KiB each even then (an instance
dictionary, a deque, bound methods, and a lock of its own for the event).
These keep two slots per object, and make the list of waiters on first wait.
Their semantics are those of the standard library's, for what tether uses:
``wait`` with an optional timeout, ``notify``, ``notify_all``; ``is_set``,
``set`` and ``wait``.
"""

from __future__ import annotations

import _thread

__all__ = ["Condition", "Flag"]


class Condition:
    """A condition variable over a lock that the caller holds when it calls any method."""

    __slots__ = ("_lock", "_waiters")

    def __init__(self, lock: _thread.LockType) -> None:
        self._lock = lock
        # One lock per waiting thread, each held until it is notified.
        self._waiters: list[_thread.LockType] | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Let go of the lock until notified or ``timeout`` seconds passed; return whether notified.

        The lock is held again on return, whatever happened.
        """
        waiter = _thread.allocate_lock()
        waiter.acquire()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(waiter)
        self._lock.release()
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            elif timeout > 0:
                notified = waiter.acquire(True, timeout)
            else:
                notified = waiter.acquire(False)
            return notified
        finally:
            self._lock.acquire()
            # Timed out (or interrupted): leave the list, unless a notify
            # took this waiter meanwhile.
            if not notified and waiter in waiters:
                waiters.remove(waiter)

    def notify(self) -> None:
        """Wake the thread that has waited longest, if any."""
        waiters = self._waiters
        if waiters:
            waiters.pop(0).release()

    def notify_all(self) -> None:
        """Wake every waiting thread."""
        waiters = self._waiters
        if waiters:
            self._waiters = None
            for waiter in waiters:
                waiter.release()


# Guards every flag's list of waiters: they change only when a thread starts
# or stops waiting, or the flag is set, which is rare and quick.
_flags_lock = _thread.allocate_lock()


class Flag:
    """A flag that is set once and never cleared, and that threads can wait for."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[_thread.LockType] | None = None

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._set

    def set(self) -> None:
        """Set the flag and wake every thread waiting for it."""
        with _flags_lock:
            self._set = True
            waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                waiter.release()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the flag is set, at most ``timeout`` seconds; return whether it is."""
        if self._set:
            return True
        waiter = _thread.allocate_lock()
        waiter.acquire()
        with _flags_lock:
            if self._set:
                return True
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
        try:
            if timeout is None:
                waiter.acquire()
            elif timeout > 0:
                waiter.acquire(True, timeout)
        finally:
            with _flags_lock:
                waiters = self._waiters
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
        return self._set
