"""The keepalive scheduler: coarse buckets, one loop timer per bucket, nothing kept once removed.

Most tests drive a fake loop whose clock only moves when told, so due times
are checked exactly, without sleeping. The last ones run real connections and
real loops.
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

import tether
from tether.asyncio import keepalive
from tether.asyncio.keepalive import MIN_GRANULARITY, Bucket, granularity
from tether.asyncio.server import ServerConnection
from tether.protocol.connection import State

from .conftest import ServerFactory, uri_of
from .pairs import until


class FakeHandle:
    """A timer of :class:`FakeLoop`."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just what the scheduler uses of a loop, with a clock moved by :meth:`advance`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.handles: list[FakeHandle] = []
        self.errors: list[dict[str, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> FakeHandle:
        handle = FakeHandle(when, callback, args)
        self.handles.append(handle)
        return handle

    def call_soon(self, callback: Callable[..., object], *args: Any) -> FakeHandle:
        return self.call_at(self.now, callback, *args)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    @property
    def timers(self) -> list[FakeHandle]:
        """The timers neither run nor cancelled."""
        return [handle for handle in self.handles if not handle.cancelled]

    def run_one(self, deadline: float) -> bool:
        """Run the first timer due by ``deadline``, if any; say whether one ran."""
        due = [handle for handle in self.timers if handle.when <= deadline]
        if not due:
            return False
        handle = min(due, key=lambda handle: handle.when)
        self.now = max(self.now, handle.when)
        handle.cancelled = True  # Run: no longer pending.
        handle.callback(*handle.args)
        return True

    def advance(self, seconds: float) -> None:
        """Move the clock, running each timer due by then, in order of due time."""
        deadline = self.now + seconds
        while self.run_one(deadline):
            pass
        self.now = deadline

    def schedule(self, target: Target, delay: float) -> None:
        keepalive.schedule(cast(asyncio.AbstractEventLoop, self), target, delay)


class Target:
    """A stand-in for a connection: records when it was due."""

    def __init__(self, loop: FakeLoop, action: Callable[[Target], None] | None = None) -> None:
        self._keepalive: Bucket | None = None
        self.loop = loop
        self.action = action
        self.due: list[float] = []

    def _keepalive_due(self) -> None:
        self.due.append(self.loop.now)
        if self.action is not None:
            self.action(self)


@pytest.fixture
def loop() -> Iterator[FakeLoop]:
    fake = FakeLoop()
    yield fake
    # Whatever a test left scheduled is dropped, not shared with the next one.
    keepalive._schedulers.pop(cast(asyncio.AbstractEventLoop, fake), None)


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.05, 0.0625, 0.1, 1.0, 20.0, 21.5, 3600.0])
def test_granularity_is_a_power_of_two_at_most_a_sixteenth(delay: float) -> None:
    step = granularity(delay)
    mantissa, _ = math.frexp(step)
    assert mantissa == 0.5
    if delay < 16 * MIN_GRANULARITY:
        assert step == MIN_GRANULARITY
    else:
        assert delay / 32 < step <= delay / 16


def test_granularity_of_odd_delays() -> None:
    assert granularity(-1.0) == MIN_GRANULARITY
    assert granularity(math.nan) == MIN_GRANULARITY
    assert granularity(20.0) == 1.0
    assert round(MIN_GRANULARITY, 4) == 0.0039


def test_due_at_most_one_granularity_late(loop: FakeLoop) -> None:
    loop.now = 1000.3
    target = Target(loop)
    loop.schedule(target, 20.0)
    loop.advance(19.99)
    assert target.due == []
    loop.advance(1.0)
    # 1020.3 rounded up to the second.
    assert target.due == [1021.0]
    assert target._keepalive is None
    assert not loop.timers


def test_many_targets_share_few_timers(loop: FakeLoop) -> None:
    targets = []
    # A thousand connections opened over 2 seconds, each with 20 s; the
    # step is a power of two so that the clock adds up exactly.
    step = 2.0**-9
    for _ in range(1000):
        target = Target(loop)
        loop.schedule(target, 20.0)
        targets.append(target)
        loop.advance(step)
    assert len(loop.timers) <= 4
    scheduler = keepalive._schedulers[cast(asyncio.AbstractEventLoop, loop)]
    assert sum(len(bucket.members) for bucket in scheduler.buckets.values()) == 1000
    loop.advance(25.0)
    assert all(len(target.due) == 1 for target in targets)
    # Each one came no earlier than asked and at most a second later.
    for index, target in enumerate(targets):
        asked = 1000.0 + index * step + 20.0
        assert asked <= target.due[0] < asked + 1.0
    assert cast(asyncio.AbstractEventLoop, loop) not in keepalive._schedulers


def test_different_delays_meet_in_the_same_bucket(loop: FakeLoop) -> None:
    loop.now = 1000.0
    first, second = Target(loop), Target(loop)
    loop.schedule(first, 20.0)
    loop.schedule(second, 10.0)
    loop.advance(10.0)
    loop.schedule(second, 10.0)
    # Both are due at 1020: one rounded to 1 s, the other to 0.5 s.
    assert first._keepalive is second._keepalive
    assert len(loop.timers) == 1


def test_cancel_drops_the_target_and_the_empty_bucket(loop: FakeLoop) -> None:
    target = Target(loop)
    loop.schedule(target, 20.0)
    assert len(loop.timers) == 1
    keepalive.cancel(target)
    assert target._keepalive is None
    assert not loop.timers
    # No reference to the loop or the target is left behind.
    assert cast(asyncio.AbstractEventLoop, loop) not in keepalive._schedulers
    keepalive.cancel(target)  # Cancelling twice does nothing.
    loop.advance(30.0)
    assert target.due == []


def test_cancel_keeps_the_bucket_for_the_others(loop: FakeLoop) -> None:
    gone, staying = Target(loop), Target(loop)
    loop.schedule(gone, 20.0)
    loop.schedule(staying, 20.0)
    keepalive.cancel(gone)
    assert len(loop.timers) == 1
    loop.advance(30.0)
    assert gone.due == []
    assert len(staying.due) == 1


def test_a_closed_target_is_not_kept_alive() -> None:
    loop = FakeLoop()
    target = Target(loop)
    loop.schedule(target, 20.0)
    keepalive.cancel(target)
    ref = weakref.ref(target)
    del target
    gc.collect()
    assert ref() is None


def test_schedule_replaces_a_pending_call(loop: FakeLoop) -> None:
    target = Target(loop)
    loop.schedule(target, 20.0)
    loop.schedule(target, 5.0)
    assert len(loop.timers) == 1
    loop.advance(30.0)
    assert target.due == [1005.0]


def test_infinite_delay_schedules_nothing(loop: FakeLoop) -> None:
    target = Target(loop)
    loop.schedule(target, math.inf)
    assert target._keepalive is None
    assert not loop.handles


def test_a_target_may_schedule_itself_again(loop: FakeLoop) -> None:
    target = Target(loop, action=lambda target: loop.schedule(target, 1.0))
    loop.schedule(target, 1.0)
    loop.advance(3.5)
    assert target.due == [1001.0, 1002.0, 1003.0]
    assert target._keepalive is not None
    assert len(loop.timers) == 1


def test_a_target_may_cancel_another_of_its_bucket(loop: FakeLoop) -> None:
    second = Target(loop)
    first = Target(loop, action=lambda _: keepalive.cancel(second))
    third = Target(loop)
    for target in (first, second, third):
        loop.schedule(target, 20.0)
    loop.advance(30.0)
    assert len(first.due) == 1
    assert second.due == []
    assert len(third.due) == 1
    assert cast(asyncio.AbstractEventLoop, loop) not in keepalive._schedulers


def test_a_large_bucket_is_called_in_batches(loop: FakeLoop) -> None:
    targets = [Target(loop) for _ in range(2 * keepalive.BATCH + 10)]
    for target in targets:
        loop.schedule(target, 20.0)
    late = targets[-1]
    called: list[int] = []
    deadline = loop.now + 25.0
    while loop.run_one(deadline):
        called.append(sum(len(target.due) for target in targets))
        if len(called) == 1:
            # Removed between two batches: not called.
            keepalive.cancel(late)
    # One batch per loop callback, with I/O free to run in between.
    assert called == [keepalive.BATCH, 2 * keepalive.BATCH, 2 * keepalive.BATCH + 9]
    assert late.due == []
    assert cast(asyncio.AbstractEventLoop, loop) not in keepalive._schedulers


def test_a_failing_target_does_not_starve_the_others(loop: FakeLoop) -> None:
    def fail(_: Target) -> None:
        raise RuntimeError("boom")

    failing, fine = Target(loop, action=fail), Target(loop)
    loop.schedule(failing, 20.0)
    loop.schedule(fine, 20.0)
    loop.advance(30.0)
    assert len(fine.due) == 1
    (error,) = loop.errors
    assert isinstance(error["exception"], RuntimeError)
    assert error["message"] == "keepalive callback failed"


def test_loops_in_threads_have_their_own_scheduler() -> None:
    seen: dict[int, tuple[asyncio.AbstractEventLoop, keepalive.Scheduler]] = {}
    errors: list[BaseException] = []

    class Waiter:
        def __init__(self) -> None:
            self._keepalive: Bucket | None = None
            self.event = asyncio.Event()

        def _keepalive_due(self) -> None:
            self.event.set()

    async def main(index: int) -> None:
        loop = asyncio.get_running_loop()
        waiters = [Waiter() for _ in range(10)]
        for waiter in waiters:
            keepalive.schedule(loop, waiter, 0.01)
        seen[index] = (loop, keepalive._schedulers[loop])
        async with asyncio.timeout(5):
            for waiter in waiters:
                await waiter.event.wait()

    def run(index: int) -> None:
        try:
            asyncio.run(main(index))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert seen[0][0] is not seen[1][0]
    assert seen[0][1] is not seen[1][1]
    # Each scheduler left once its last target was called.
    assert all(loop not in keepalive._schedulers for loop, _ in seen.values())


async def test_idle_server_connections_share_a_timer(start_server: ServerFactory) -> None:
    handed_over: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        handed_over.append(ws)
        await ws.wait_closed()

    server = await start_server(handler, ping_interval=60, ping_timeout=60)
    clients = [await tether.connect(uri_of(server), ping_interval=None) for _ in range(40)]
    try:
        await until(lambda: len(handed_over) == 40)
        loop = asyncio.get_running_loop()
        scheduler = keepalive._schedulers[loop]
        # 60 s is rounded to 2 s: the 40 connections fit in one or two buckets.
        assert len(scheduler.buckets) <= 2
        members = {id(ws) for bucket in scheduler.buckets.values() for ws in bucket.members}
        assert members == {id(ws) for ws in handed_over}
        if isinstance(loop, asyncio.BaseEventLoop):
            # The default loop shows its timers: one per bucket, not 40.
            live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
            assert len(live) <= 5
            assert all(bucket.timer in live for bucket in scheduler.buckets.values())
    finally:
        for client in clients:
            await client.close()
    async with asyncio.timeout(5):
        await asyncio.gather(*(ws.wait_closed() for ws in handed_over))
    # Every connection left its bucket on closing: the scheduler is gone.
    assert asyncio.get_running_loop() not in keepalive._schedulers
    refs = [weakref.ref(ws) for ws in handed_over]
    handed_over.clear()
    # Once the handlers have returned, nothing holds a closed connection.
    await until(lambda: gc.collect() >= 0 and all(ref() is None for ref in refs))


async def test_many_connections_keep_alive_through_shared_buckets(
    start_server: ServerFactory,
) -> None:
    handed_over: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        handed_over.append(ws)
        await ws.wait_closed()

    server = await start_server(handler, ping_interval=0.05, ping_timeout=5.0)
    clients = [
        await tether.connect(uri_of(server), ping_interval=0.05, ping_timeout=5.0)
        for _ in range(30)
    ]
    try:
        await until(lambda: len(handed_over) == 30)
        # Every connection, on both sides, pings and gets its pongs.
        await until(lambda: all(ws.latency > 0 for ws in [*clients, *handed_over]))
        scheduler = keepalive._schedulers[asyncio.get_running_loop()]
        assert len(scheduler.buckets) < 30
        for ws in [*clients, *handed_over]:
            assert ws.state is State.OPEN
    finally:
        for client in clients:
            await client.close()
