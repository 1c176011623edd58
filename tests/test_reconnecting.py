"""When the reconnecting clients retry, and how long they wait."""

from __future__ import annotations

import random
import ssl

import pytest

from tether.exceptions import InvalidHeader, InvalidMessage, InvalidStatus, InvalidURI
from tether.protocol.headers import Headers
from tether.protocol.http11 import Response
from tether.reconnecting import backoff_delay, process_exception


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
