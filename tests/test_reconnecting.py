"""When the reconnecting clients retry, and how long they wait."""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator

import pytest

from tether.exceptions import InvalidHeader, InvalidMessage, InvalidStatus, InvalidURI
from tether.protocol.headers import Headers
from tether.protocol.http11 import Response
from tether.reconnecting import (
    Backoff,
    backoff_delay,
    process_exception,
    reconnect_delay,
    retry_after,
)


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "Reason", Headers()))


def message_caused_by(cause: BaseException | None) -> InvalidMessage:
    exc = InvalidMessage("connection closed during the opening handshake")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (OSError("network unreachable"), True),
        (TimeoutError(), True),
        (status(500), True),
        (status(503), True),
        (status(599), True),
        (status(429), True),
        (status(400), False),
        (status(403), False),
        (status(404), False),
        (status(600), False),
        (status(301), False),
        (message_caused_by(EOFError()), True),
        (message_caused_by(ConnectionResetError()), True),
        (message_caused_by(None), False),
        (message_caused_by(ValueError()), False),
        (ssl.SSLCertVerificationError("certificate verify failed"), False),
        (ssl.SSLError("handshake failure"), True),
        (InvalidURI("http://x", "scheme isn't ws or wss"), False),
        (InvalidHeader("Upgrade"), False),
        (ValueError(), False),
    ],
)
def test_retryable(exc: Exception, expected: bool) -> None:
    assert (process_exception(exc) is None) is expected


def test_backoff_grows_exponentially_within_jitter() -> None:
    rng = random.Random(1)
    state = random.getstate()
    random.setstate(rng.getstate())
    try:
        for attempts in range(12):
            full = min(60.0, 1.0 * 1.618**attempts)
            for _ in range(20):
                delay = backoff_delay(attempts, 1.0, 1.618, 60.0)
                assert full / 2 <= delay <= full
    finally:
        random.setstate(state)


def test_backoff_jitter_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert backoff_delay(3, 2.0, 2.0, 100.0) == 8.0
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert backoff_delay(3, 2.0, 2.0, 100.0) == 16.0
    assert backoff_delay(10, 2.0, 2.0, 100.0) == 100.0


def test_backoff_capped_after_overflow() -> None:
    # 1.618 ** 5000 does not fit a float: the cap still applies.
    delay = backoff_delay(5000, 1.0, 1.618, 60.0)
    assert 30.0 <= delay <= 60.0


# Retry-After


def refused(code: int, *values: str) -> InvalidStatus:
    return InvalidStatus(Response(code, "Reason", Headers([("Retry-After", v) for v in values])))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (refused(503, "120"), 120.0),
        (refused(429, " 0 "), 0.0),
        (refused(503, "99999999999999999999"), 86_400.0),
        (refused(503, "Sun, 06 Nov 1994 08:49:37 GMT"), 0.0),  # Past: no wait.
        (refused(503), None),
        (refused(503, "1", "2"), None),
        (refused(503, "-5"), None),
        (refused(503, "1.5"), None),
        (refused(503, "soon"), None),
        (refused(503, "\u00b2"), None),  # A digit to isdigit(), but not ASCII.
        (ConnectionRefusedError(), None),
    ],
)
def test_retry_after(exc: Exception, expected: float | None) -> None:
    assert retry_after(exc) == expected


def test_retry_after_future_date(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 784_111_777.0)  # 08:49:37 that day.
    assert retry_after(refused(503, "Sun, 06 Nov 1994 08:50:07 GMT")) == 30.0


def test_reconnect_delay_honours_retry_after_within_the_maximum() -> None:
    for _ in range(20):
        assert reconnect_delay(refused(503, "7"), 0, 0.1, 2.0, 60.0) == 7.0
        assert reconnect_delay(refused(503, "700"), 0, 0.1, 2.0, 60.0) == 60.0
        # A backoff already longer than asked stands.
        assert 30.0 <= reconnect_delay(refused(503, "1"), 20, 1.0, 2.0, 60.0) <= 60.0
        assert 0.05 <= reconnect_delay(status(503), 0, 0.1, 2.0, 60.0) <= 0.1


def test_backoff_with_reconnect_delays_and_retry_after() -> None:
    made: list[int] = []

    def delays() -> Iterator[float]:
        made.append(1)
        yield from (0.5, 1.5, 2.5)

    waits = Backoff(delays, initial=1.0, factor=2.0, maximum=60.0)
    plain = OSError("down")
    assert [waits.next(plain), waits.next(plain)] == [0.5, 1.5]
    later = InvalidStatus(Response(503, "Later", Headers([("Retry-After", "30")])))
    assert waits.next(later) == 30
    waits.reset()
    assert waits.next(plain) == 0.5
    assert len(made) == 2
    # Without reconnect_delays: tether's exponential backoff, capped.
    own = Backoff(None, initial=1.0, factor=2.0, maximum=3.0)
    assert 0.5 <= own.next(plain) <= 1.0
    assert 1.0 <= own.next(plain) <= 2.0
    assert own.next(InvalidStatus(Response(503, "Later", Headers([("Retry-After", "99")])))) == 3.0
