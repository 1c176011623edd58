"""An idle threading server connection stays small: ``bench.thread_memory`` on 200 of them."""

from __future__ import annotations

from bench import thread_memory


def test_idle_threading_connection_keeps_its_thread_shallow_and_small() -> None:
    result = thread_memory.run_server(200, deflate=False, trace=False)
    # Each connection's thread touched two pages of C stack (glibc's thread
    # descriptor, the interpreter's frames): a third would mean a deeper C
    # recursion on the way through the handshake, kept resident for good.
    assert result["stacks"] < 9 * 1024
    # About 15.65 KiB in all (200 connections, from 15.60 to 15.70 over
    # runs), of which a thread's stack (8 KiB), its page of Python frames
    # (4 KiB) and what CPython and glibc keep per thread (about 2 KiB) are
    # the thread's own.
    assert 0 < result["total"] < 16.25 * 1024


def test_bare_threads_are_measured() -> None:
    result = thread_memory.run_threads("poll", 100)
    assert 4096 <= result["stacks"] < 16384
