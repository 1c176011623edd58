"""One thread per process watches the sockets of idle threading connections.

While the application does not call ``recv``, something must notice the
peer's pings, pongs and close frames. Rather than a thread per connection
blocked in ``poll``, the sockets of idle connections wait in one selector,
served by one daemon thread. When a socket becomes readable, the watcher
forgets it and calls the connection back, once; the connection then reads on
a thread of its own (see :mod:`tether.sync.connection`), and gives the socket
back when nothing came for a while.

A callback runs on the shared thread: it must not block. The thread starts
with the first socket and ends after :data:`LINGER` seconds without any.
The selector lives exactly as long as the thread: made by the first
:meth:`Watcher.watch` after a quiet spell, closed by the thread as it ends,
so a process with no threading connection left holds no selector either.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable

__all__ = ["LINGER", "Watcher", "watcher"]

logger = logging.getLogger("tether")

LINGER = 1.0
"""Seconds the shared thread waits with no socket to watch before it ends."""


class Watcher:
    """Sockets waited on by one lazily started daemon thread, each until readable once."""

    def __init__(self, name: str = "tether-watcher") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        # What to call when each file descriptor becomes readable.
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        """The number of sockets watched."""
        return len(self._callbacks)

    def __contains__(self, fd: int) -> bool:
        return fd in self._callbacks

    def watch(self, fd: int, callback: Callable[[], object]) -> None:
        """Call ``callback`` on the shared thread once ``fd`` is readable (or at EOF or error).

        The file descriptor is forgotten before the call; the caller must
        :meth:`forget` it before closing it.
        """
        with self._lock:
            if self._selector is None:
                self._selector = selectors.DefaultSelector()
            self._selector.register(fd, selectors.EVENT_READ)
            self._callbacks[fd] = callback
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, args=(self._selector,), name=self.name, daemon=True
                )
                self._thread.start()

    def forget(self, fd: int) -> None:
        """Stop watching ``fd``, if it still is; its callback is not called after this returns."""
        with self._lock:
            if self._callbacks.pop(fd, None) is not None and self._selector is not None:
                self._selector.unregister(fd)

    def _run(self, selector: selectors.BaseSelector) -> None:
        callbacks = self._callbacks
        while True:
            # Registering from another thread while this one waits is safe:
            # epoll, kqueue and poll see it at once, select on the next turn.
            events = selector.select(LINGER)
            ready: list[Callable[[], object]] = []
            with self._lock:
                for key, _ in events:
                    if key.fd in callbacks:
                        selector.unregister(key.fd)
                        ready.append(callbacks.pop(key.fd))
                if not events and not callbacks:
                    # A later watch makes a new selector and starts a new thread.
                    self._thread = None
                    self._selector = None
                    selector.close()
                    return
            # In a function of its own: no reference to a connection is left
            # in this frame while it waits.
            _call_all(ready)
            del ready, events

    def _after_fork(self) -> None:
        # The child has no thread, and must not share the parent's epoll or
        # kqueue: as before fork, a connection's reader does not exist here.
        self._lock = threading.Lock()
        if self._selector is not None:
            # Closes the child's copy of the file descriptor only.
            self._selector.close()
        self._selector = None
        self._callbacks.clear()
        self._thread = None


def _call_all(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("error in a socket watcher callback")


watcher = Watcher()
"""The process's watcher, shared by every threading connection."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=watcher._after_fork)
