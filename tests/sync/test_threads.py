"""A lean thread is a :class:`threading.Thread` for everything public, and keeps less.

It appears in :func:`threading.enumerate` and is what
:func:`threading.current_thread` gives inside it; it has a name, an ident
and a native id, ``is_alive`` and ``join`` work before, during and after
its run, it starts once only, an exception in it goes to
:func:`threading.excepthook` and the trace hook of :func:`threading.settrace`
runs in it. For the same work, a lean thread's objects take at least 1.5 KiB
less than a :class:`threading.Thread`'s, from start to end. The threading
server runs each handler in a lean thread of its own.
"""

from __future__ import annotations

import logging
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from tether.sync import ServerConnection, connect
from tether.sync.threads import LeanThread

from .conftest import TIMEOUT, ServerFactory, uri_of


class Blocked(LeanThread):
    """A lean thread that records what threading says of it, then waits to be let go."""

    def __init__(self, go: threading.Event, name: str | None = None) -> None:
        super().__init__(name)
        self.go = go
        self.seen: dict[str, Any] = {}

    def run(self) -> None:
        current = threading.current_thread()
        self.seen = {
            "current": current,
            "listed": current in threading.enumerate(),
            "ident": threading.get_ident(),
            "native": threading.get_native_id(),
        }
        self.go.wait(TIMEOUT)


@pytest.fixture
def go() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_a_lean_thread_is_a_thread_to_threading(go: threading.Event) -> None:
    thread = Blocked(go, name="lean-test")
    assert thread.daemon
    assert not thread.is_alive()
    assert thread.ident is None
    thread.start()
    with pytest.raises(RuntimeError):
        thread.start()
    assert thread.is_alive()
    thread.join(0.01)
    assert thread.is_alive()
    assert thread.name == "lean-test"
    assert thread in threading.enumerate()
    assert "started daemon" in repr(thread)
    go.set()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert thread not in threading.enumerate()
    assert thread.seen == {
        "current": thread,
        "listed": True,
        "ident": thread.ident,
        "native": thread.native_id,
    }


def test_default_names_are_threading_s(go: threading.Event) -> None:
    thread = Blocked(go)
    assert thread.name.startswith("Thread-")


def test_an_exception_goes_to_threading_excepthook(monkeypatch: pytest.MonkeyPatch) -> None:
    hooked: list[tuple[type[BaseException] | None, threading.Thread | None]] = []

    def hook(args: Any) -> None:
        hooked.append((args.exc_type, args.thread))

    # Replaced after the module made its shared closure: it reads the hook
    # when an exception comes, as each thread's own closure does.
    monkeypatch.setattr(threading, "excepthook", hook)

    class Failing(LeanThread):
        def run(self) -> None:
            raise ValueError("from a lean thread")

    threads = [Failing() for _ in range(2)]
    for thread in threads:
        thread.start()
        thread.join(TIMEOUT)
    assert hooked == [(ValueError, threads[0]), (ValueError, threads[1])]


def test_the_trace_hook_runs_in_a_lean_thread(go: threading.Event) -> None:
    traced: list[str] = []

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., Any] | None:
        if event == "call" and frame.f_code.co_name == "run":
            traced.append(threading.current_thread().name)
        return None

    threading.settrace(trace)
    try:
        thread = Blocked(go, name="traced")
        thread.start()
    finally:
        threading.settrace(None)
    go.set()
    thread.join(TIMEOUT)
    assert traced == ["traced"]


def kept_per_thread(make: Callable[[threading.Event], threading.Thread], count: int) -> float:
    """Bytes of Python allocations per started thread still held while they run."""
    go = threading.Event()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        threads = [make(go) for _ in range(count)]
        for thread in threads:
            thread.start()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        go.set()
    for thread in threads:
        thread.join(TIMEOUT)
    return kept / count


def test_a_lean_thread_keeps_less_than_a_thread() -> None:
    def plain(go: threading.Event) -> threading.Thread:
        return threading.Thread(target=go.wait, args=(TIMEOUT,), daemon=True)

    lean = kept_per_thread(Blocked, 50)
    ordinary = kept_per_thread(plain, 50)
    # The start event (1.3 KiB), the exception hook's closure (0.4 KiB) and
    # the test suite's weak reference (0.2 KiB), less the Blocked attributes.
    assert lean < ordinary - 1536, (lean, ordinary)


def test_a_handler_runs_in_a_lean_thread_of_its_own(start_server: ServerFactory) -> None:
    seen: list[tuple[threading.Thread, bool, bool]] = []

    def handler(ws: ServerConnection) -> None:
        current = threading.current_thread()
        seen.append((current, current in threading.enumerate(), current.daemon))
        ws.send(current.name)

    server = start_server(handler)
    names = []
    for _ in range(2):
        with connect(uri_of(server), open_timeout=TIMEOUT) as ws:
            names.append(ws.recv(timeout=TIMEOUT))
    assert [
        (isinstance(thread, LeanThread), listed, daemon) for thread, listed, daemon in seen
    ] == [
        (True, True, True),
        (True, True, True),
    ]
    assert names == [thread.name for thread, _, _ in seen]
    assert seen[0][0] is not seen[1][0]
    for thread, _, _ in seen:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_a_default_name_is_made_once_when_first_asked_for(go: threading.Event) -> None:
    # A lean thread made without a name gets threading's default one, "Thread-N",
    # when it is first asked for: unique, the same at each later look, shown by
    # repr and by logging, and settable as any thread's.
    first, second = Blocked(go), Blocked(go)
    second.start()
    assert repr(second).startswith(f"<Blocked({second.name}, started daemon")
    assert first.name.startswith("Thread-")
    assert first.name != second.name
    assert first.name is first.name
    first.name = "renamed"
    assert first.name == "renamed"
    assert "renamed" in repr(first)
    records: list[str] = []

    class Named(LeanThread):
        def run(self) -> None:
            records.append(logging.makeLogRecord({}).threadName or "")

    named = Named()
    named.start()
    named.join(TIMEOUT)
    assert records == [named.name]
