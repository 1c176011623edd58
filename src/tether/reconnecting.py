"""When and how soon to reconnect, shared by the asyncio and threading clients."""

from __future__ import annotations

import email.utils
import random
import ssl
import time
from collections.abc import Callable, Generator, Iterator

from tether.exceptions import InvalidMessage, InvalidStatus

__all__ = [
    "Backoff",
    "backoff",
    "backoff_delay",
    "process_exception",
    "raise_unless_retried",
    "reconnect_delay",
    "retry_after",
]


def process_exception(exc: Exception) -> Exception | None:
    """Tell whether a client should connect again after ``exc``: the default rules.

    Return ``None`` to retry after a backoff delay, or the exception to raise.
    Retried: network errors (:class:`OSError`, :class:`TimeoutError`), a
    server that closed TCP before its handshake response was complete
    (:class:`~tether.exceptions.InvalidMessage` caused by :class:`EOFError`
    or :class:`OSError`), and the statuses that say "later": 5xx and 429.
    Raised: everything else, among which a TLS certificate that fails
    verification (:class:`ssl.SSLCertVerificationError`, although an
    :class:`OSError`), an :class:`~tether.exceptions.InvalidURI`, a 4xx other
    than 429, and a peer that is not a WebSocket server.

    Both clients take a function of this shape as their ``process_exception``
    option; it may also return another exception, raised chained to ``exc``.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return None if 500 <= status <= 599 or status == 429 else exc
    if isinstance(exc, InvalidMessage):
        # The server went away mid-handshake, as a restarting server does.
        return None if isinstance(exc.__cause__, (EOFError, OSError)) else exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Trying again presents the same certificate to the same checks.
        return exc
    if isinstance(exc, (OSError, TimeoutError)):
        return None
    return exc


def raise_unless_retried(
    process_exception: Callable[[Exception], Exception | None], exc: Exception
) -> None:
    """Apply a ``process_exception`` hook: return to retry, raise to stop.

    A hook that raises stops the loop with what it raised.
    """
    try:
        fatal = process_exception(exc)
    except Exception as raised:
        fatal = raised
    if fatal is exc:
        raise exc
    if fatal is not None:
        raise fatal from exc


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


def retry_after(exc: Exception) -> float | None:
    """The wait, in seconds, that a refusal's ``Retry-After`` header asks for, if any.

    ``exc`` must be an :class:`~tether.exceptions.InvalidStatus` whose
    response has one ``Retry-After`` value: a number of seconds or an HTTP
    date (RFC 9110 section 10.2.3). A date in the past asks for no wait.
    Anything else gives ``None``.
    """
    if not isinstance(exc, InvalidStatus):
        return None
    values = exc.response.headers.get_all("Retry-After")
    if len(values) != 1:
        return None
    value = values[0].strip(" \t")
    if value.isascii() and value.isdigit():
        # Past a day, the figure only says "much later": keep int() cheap.
        return float(min(int(value[:12]), 86_400))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def reconnect_delay(
    exc: Exception, attempts: int, initial: float, factor: float, maximum: float
) -> float:
    """The wait before reconnecting after ``exc``: the backoff, or longer if the server asks.

    A server that refused with ``Retry-After`` gets at least that wait, up to
    ``maximum``: a client never waits longer than its own bound.
    """
    delay = backoff_delay(attempts, initial, factor, maximum)
    asked = retry_after(exc)
    if asked is not None:
        delay = max(delay, min(asked, maximum))
    return delay


def backoff(
    initial_delay: float = 5.0,
    min_delay: float = 3.1,
    max_delay: float = 90.0,
    factor: float = 1.618,
) -> Generator[float, None, None]:
    """Yield websockets' reconnection delays: its ``reconnect_delays`` default.

    First a random delay up to ``initial_delay`` (RFC 6455 section 7.2.3),
    then ``min_delay`` growing by ``factor`` up to ``max_delay``, then
    ``max_delay`` for ever. Pass ``reconnect_delays=backoff`` (or a
    :func:`functools.partial` of it) to a client for websockets' timing
    instead of tether's ``backoff_`` options.
    """
    yield random.random() * initial_delay
    delay = min_delay
    while delay < max_delay:
        yield delay
        delay *= factor
    while True:
        yield max_delay


class Backoff:
    """The waits between a client's consecutive failed attempts; both clients use it.

    With ``reconnect_delays`` (websockets' option: a function returning an
    iterator of delays), each failure takes the next delay, from a new
    iterator after a success. Without it, :func:`backoff_delay` computes the
    delay from ``initial``, ``factor`` and ``maximum``. Either way a
    ``Retry-After`` asks for at least its wait, up to ``maximum``.
    """

    def __init__(
        self,
        reconnect_delays: Callable[[], Iterator[float]] | None,
        initial: float,
        factor: float,
        maximum: float,
    ) -> None:
        self.reconnect_delays = reconnect_delays
        self.initial = initial
        self.factor = factor
        self.maximum = maximum
        self.attempts = 0
        self._delays: Iterator[float] | None = None

    def next(self, exc: Exception) -> float:
        """The wait before the next attempt, after the failure ``exc``."""
        if self.reconnect_delays is None:
            delay = backoff_delay(self.attempts, self.initial, self.factor, self.maximum)
        else:
            if self._delays is None:
                self._delays = iter(self.reconnect_delays())
            delay = next(self._delays)
        self.attempts += 1
        asked = retry_after(exc)
        if asked is not None:
            delay = max(delay, min(asked, self.maximum))
        return delay

    def reset(self) -> None:
        """Start over after a successful connection."""
        self.attempts = 0
        self._delays = None
