"""When and how soon to reconnect, shared by the asyncio and threading clients."""

from __future__ import annotations

import random
import ssl

from tether.exceptions import InvalidMessage, InvalidStatus

__all__ = ["backoff_delay", "retryable"]


def retryable(exc: Exception) -> bool:
    """Tell whether connecting again may heal ``exc``.

    Network errors, timeouts, 5xx and 429 answers, and a server that went
    away in the middle of the handshake are worth retrying. Anything else,
    such as an invalid URI, another 4xx answer, a TLS certificate that fails
    verification (although an :class:`OSError`) or a peer that is not a
    WebSocket server, would fail the same way again. These are the rules of
    the asyncio client's default ``process_exception``.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return 500 <= status <= 599 or status == 429
    if isinstance(exc, InvalidMessage):
        return isinstance(exc.__cause__, (EOFError, OSError))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    return isinstance(exc, (OSError, TimeoutError))


def backoff_delay(attempts: int, initial: float, factor: float, maximum: float) -> float:
    """The wait before attempt ``attempts + 1``: exponential, capped, with equal jitter.

    Equal jitter (half fixed, half random) keeps clients that lost their
    server together from all coming back at the same instant. The result lies
    between half and all of ``min(maximum, initial * factor**attempts)``.
    """
    try:
        delay = min(maximum, initial * factor**attempts)
    except OverflowError:
        # After a few thousand attempts the power exceeds a float.
        delay = maximum
    return delay / 2 + random.uniform(0, delay / 2)
