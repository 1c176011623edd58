"""The watcher's selector lives as long as its thread: nothing is left once it ends."""

from __future__ import annotations

import socket
import threading

from tether.sync.watcher import LINGER, Watcher


def test_selector_closed_when_the_thread_ends_and_made_again_when_needed() -> None:
    watcher = Watcher("tether-test-watcher")
    left, right = socket.socketpair()
    with left, right:
        for turn in range(2):
            readable = threading.Event()
            watcher.watch(left.fileno(), readable.set)
            selector, thread = watcher._selector, watcher._thread
            assert selector is not None
            assert thread is not None
            right.send(b"x")
            assert readable.wait(5), f"turn {turn}: the callback never came"
            assert left.recv(1) == b"x"
            # Nothing more to watch: the thread lingers, then ends.
            thread.join(LINGER + 5)
            assert not thread.is_alive()
            assert watcher._selector is None
            # A closed selector has no map; its epoll, kqueue or poll object is closed.
            assert selector.get_map() is None
            poller = getattr(selector, "_selector", None)
            assert getattr(poller, "closed", True)
