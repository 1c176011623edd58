"""When and how soon to reconnect, shared by the asyncio and threading clients."""

from __future__ import annotations

import random

from tether.exceptions import InvalidMessage, InvalidStatus

__all__ = ["backoff_delay", "retryable"]


def retryable(exc: Exception) -> bool:
    """Tell whether connecting again may heal ``exc``.

    Network errors, timeouts, 5xx and 429 answers, and a server that went
    away in the middle of the handshake are worth retrying. Anything else,
    such as an invalid URI, another 4xx answer or a peer that is not a
    WebSocket server, would fail the same way again.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status >= 500 or status == 429
    if isinstance(exc, InvalidMessage):
        return isinstance(exc.__cause__, (EOFError, OSError))
    return isinstance(exc, (OSError, TimeoutError))


def backoff_delay(attempts: int, initial: float, factor: float, maximum: float) -> float:
    """The wait before attempt ``attempts + 1``: exponential, capped, with equal jitter.

    Equal jitter (half fixed, half random) keeps clients that lost their
    server together from all coming back at the same instant.
    """
    delay = min(maximum, initial * factor**attempts)
    return delay / 2 + random.uniform(0, delay / 2)
