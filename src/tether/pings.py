"""Pings waiting for their pong, shared by the asyncio and threading APIs."""

from __future__ import annotations

import os
from typing import Generic, TypeVar

from tether.exceptions import ConcurrencyError

__all__ = ["PingTracker", "answer_pings", "ping_payload"]

W = TypeVar("W")


def ping_payload(data: str | bytes | bytearray | memoryview | None) -> bytes:
    """Turn the ``data`` given to ``ping()`` into the payload; ``None`` gives 4 random bytes."""
    if data is None:
        return os.urandom(4)
    return data.encode() if isinstance(data, str) else bytes(data)


def answer_pings(
    pending: dict[bytes, tuple[W, float]], payload: bytes, now: float
) -> list[tuple[W, float]]:
    """Take a pong: remove the pings it answers from ``pending``; return their waiters and RTTs.

    ``pending`` maps each ping's payload to its waiter and the time it left,
    in sending order. A pong answers its own ping and every ping sent before
    it (RFC 6455 section 5.5.3 lets an endpoint answer only the latest ping).
    A pong that matches no ping answers nothing.
    """
    if payload not in pending:
        return []
    answered = []
    # Insertion order is sending order: the pings up to this one.
    for key in list(pending):
        waiter, sent_at = pending.pop(key)
        answered.append((waiter, now - sent_at))
        if key == payload:
            break
    return answered


class PingTracker(Generic[W]):
    """The pings sent and not answered yet, each with its waiter and the time it left.

    ``W`` is whatever each API waits on: a future or an event.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        # None while no ping waits, which is most of the time: a dictionary
        # that held a ping keeps its table, 160 bytes, for every idle connection.
        self._pending: dict[bytes, tuple[W, float]] | None = None

    def __len__(self) -> int:
        pending = self._pending
        return 0 if pending is None else len(pending)

    def __contains__(self, payload: bytes) -> bool:
        pending = self._pending
        return pending is not None and payload in pending

    def add(self, payload: bytes, waiter: W, sent_at: float) -> None:
        """Record a ping; raise :class:`ConcurrencyError` if one with that payload is pending."""
        pending = self._pending
        if pending is None:
            pending = self._pending = {}
        elif payload in pending:
            raise ConcurrencyError("a ping with the same data is waiting for its pong")
        pending[payload] = (waiter, sent_at)

    def answer(self, payload: bytes, now: float) -> list[tuple[W, float]]:
        """Take a pong; return the waiters it answers with their round-trip times.

        A pong answers its own ping and every ping sent before it (RFC 6455
        section 5.5.3 lets an endpoint answer only the latest ping). A pong
        that matches no ping answers nothing.
        """
        pending = self._pending
        if pending is None:
            return []
        answered = answer_pings(pending, payload, now)
        if not pending:
            self._pending = None
        return answered

    def drain(self) -> list[W]:
        """Forget every pending ping and return their waiters, when the connection ends."""
        pending, self._pending = self._pending, None
        return [] if pending is None else [waiter for waiter, _ in pending.values()]
