"""An idle threading server connection stays small: ``bench.thread_memory`` on 200 of them."""

from __future__ import annotations

from bench import thread_memory


def test_idle_threading_connection_keeps_its_thread_shallow_and_small() -> None:
    result = thread_memory.run_server(200, deflate=False, trace=False)
    # Each connection's thread touched two pages of C stack (glibc's thread
    # descriptor, the interpreter's frames): a third would mean a deeper C
    # recursion on the way through the handshake, kept resident for good.
    assert result["stacks"] < 9 * 1024
    # About 22 KiB in all, of which a bare thread blocked in a poll is 16.5.
    assert 0 < result["total"] < 26 * 1024


def test_bare_threads_are_measured() -> None:
    result = thread_memory.run_threads("poll", 100)
    assert 4096 <= result["stacks"] < 16384
