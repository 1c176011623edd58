"""Keepalive due times of the connections of an event loop, grouped in coarse buckets.

A timer handle per idle connection costs more than the rest of what an idle
connection's keepalive needs. Due times are rounded up to a granularity that
grows with the delay (1/16 of it, as a power of two, at least
:data:`MIN_GRANULARITY`), so connections that were scheduled at about the same
time with about the same delay share a bucket, and each bucket that holds a
connection has one loop timer. A connection is due at most one granularity
later than asked, and a few loop iterations more in a bucket of thousands
(see :data:`BATCH`).

Each event loop has its own scheduler, which exists while it holds a
connection: several loops in several threads never share one, and a closed
loop is not kept alive by it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Protocol

__all__ = [
    "BATCH",
    "MIN_GRANULARITY",
    "Bucket",
    "Scheduler",
    "Target",
    "cancel",
    "granularity",
    "schedule",
]

MIN_GRANULARITY = 2.0**-8
"""The finest rounding of due times, in seconds (about 4 ms)."""

# Buckets cover this fraction of the delay at most: a 20 s ping interval is
# rounded to the second, so connections opened within a second share a timer.
_FRACTION = 16

BATCH = 256
"""How many targets a bucket calls per loop iteration.

Connections opened over a second are due at once: thousands of pings in one
callback would stall the loop for as long. The rest of a bucket comes in the
next iterations, with I/O in between.
"""


class Target(Protocol):
    """What the scheduler calls: a connection, as far as keepalive goes."""

    _keepalive: Bucket | None
    """The bucket the target waits in; the scheduler alone sets it."""

    def _keepalive_due(self) -> None:
        """Called once the delay given to :func:`schedule` has passed."""


class Bucket:
    """The targets due at the same rounded time, and the loop timer that calls them."""

    __slots__ = ("members", "scheduler", "timer", "when")

    def __init__(self, scheduler: Scheduler, when: float) -> None:
        self.scheduler = scheduler
        self.when = when
        """The loop time the bucket is due at."""
        # A dict rather than a set: targets are called in the order they came.
        self.members: dict[Target, None] = {}
        self.timer: asyncio.TimerHandle | None = None


class Scheduler:
    """The keepalive buckets of one event loop, by due time."""

    __slots__ = ("buckets", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buckets: dict[float, Bucket] = {}

    def add(self, target: Target, delay: float) -> None:
        """Put ``target`` in the bucket due at ``delay`` from now, rounded up."""
        step = granularity(delay)
        when = math.ceil((self.loop.time() + delay) / step) * step
        bucket = self.buckets.get(when)
        if bucket is None:
            bucket = self.buckets[when] = Bucket(self, when)
            bucket.timer = self.loop.call_at(when, self._fire, bucket)
        bucket.members[target] = None
        target._keepalive = bucket

    def remove(self, target: Target, bucket: Bucket) -> None:
        """Take ``target`` out of ``bucket``; stop the bucket's timer if it was the last."""
        del bucket.members[target]
        if bucket.members or bucket.timer is None:
            # A firing bucket has no timer any more and cleans up after itself.
            return
        bucket.timer.cancel()
        bucket.timer = None
        del self.buckets[bucket.when]
        self._release()

    def _fire(self, bucket: Bucket) -> None:
        if bucket.timer is not None:
            # The timer ran: this is the first batch. A bucket without a
            # timer takes no new targets; those it holds leave on their own.
            bucket.timer = None
            del self.buckets[bucket.when]
        # Each target may close others, or add itself to a later bucket.
        for target in list(itertools.islice(bucket.members, BATCH)):
            if target._keepalive is not bucket:
                continue  # Removed by a target called before it.
            del bucket.members[target]
            target._keepalive = None
            try:
                target._keepalive_due()
            except Exception as exc:
                # One target's bug must not starve the others of their pings.
                self.loop.call_exception_handler(
                    {"message": "keepalive callback failed", "exception": exc}
                )
        if bucket.members:
            self.loop.call_soon(self._fire, bucket)
        else:
            self._release()

    def _release(self) -> None:
        if not self.buckets and _schedulers.get(self.loop) is self:
            del _schedulers[self.loop]


# One scheduler per event loop with something scheduled. Each loop touches
# only its own key, and the dictionary's operations are atomic.
_schedulers: dict[asyncio.AbstractEventLoop, Scheduler] = {}


def granularity(delay: float) -> float:
    """How far a due time ``delay`` from now may be rounded up: a power of two."""
    if not delay >= _FRACTION * MIN_GRANULARITY:
        return MIN_GRANULARITY
    # frexp gives delay = m * 2**e with 0.5 <= m < 1: 2**(e - 1) <= delay.
    return math.ldexp(1.0, math.frexp(delay / _FRACTION)[1] - 1)


def schedule(loop: asyncio.AbstractEventLoop, target: Target, delay: float) -> None:
    """Call ``target._keepalive_due()`` ``delay`` seconds from now, or up to a granularity later.

    A call already pending for ``target`` is replaced. An infinite delay
    never comes: nothing is scheduled.
    """
    cancel(target)
    if not math.isfinite(delay):
        return
    scheduler = _schedulers.get(loop)
    if scheduler is None:
        scheduler = _schedulers[loop] = Scheduler(loop)
    scheduler.add(target, delay)


def cancel(target: Target) -> None:
    """Forget ``target``'s pending call, if any, and drop the scheduler's reference to it."""
    bucket = target._keepalive
    if bucket is not None:
        target._keepalive = None
        bucket.scheduler.remove(target, bucket)
