"""Assertions on what a connection received and how it closed, with messages that explain."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tether.exceptions import ConnectionClosed
from tether.protocol.close import Close

__all__ = [
    "assert_closed",
    "assert_closes",
    "assert_closes_sync",
    "assert_receives",
    "assert_receives_sync",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds the waiting assertions wait before failing."""


def _describe(connection: Any) -> str:
    """Both close frames, or what is missing, to explain a failure."""

    def side(close: Close | None) -> str:
        return "none" if close is None else str(close)

    protocol = connection.protocol
    return (
        f"state {protocol.state.name}; close frame received: {side(protocol.close_rcvd)}; "
        f"sent: {side(protocol.close_sent)}"
    )


def assert_closed(connection: Any, code: int, reason: str | None = None) -> None:
    """Assert that ``connection`` (of either API) is closed with ``code`` (and ``reason``).

    The code is the one of the close frame received, as ``close_code`` gives
    it: 1006 when the connection broke without one.
    """
    from tether.protocol.connection import State  # noqa: PLC0415

    if connection.protocol.state is not State.CLOSED:
        raise AssertionError(f"the connection is not closed ({_describe(connection)})")
    if connection.close_code != code or (reason is not None and connection.close_reason != reason):
        expected = f"{code}" if reason is None else f"{code} {reason!r}"
        got = f"{connection.close_code} {connection.close_reason!r}"
        raise AssertionError(f"expected close {expected}, got {got} ({_describe(connection)})")


async def assert_closes(
    connection: Any, code: int, reason: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Wait until an asyncio connection is closed, then :func:`assert_closed`.

    Messages still waiting to be read are left alone. Fail if it is not
    closed within ``timeout`` seconds.
    """
    try:
        async with asyncio.timeout(timeout):
            await connection.wait_closed()
    except TimeoutError:
        raise AssertionError(
            f"the connection did not close within {timeout:g} s ({_describe(connection)})"
        ) from None
    assert_closed(connection, code, reason)


def assert_closes_sync(
    connection: Any, code: int, reason: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Wait until a threading connection is closed, then :func:`assert_closed`."""
    if not connection.wait_closed(timeout):
        raise AssertionError(
            f"the connection did not close within {timeout:g} s ({_describe(connection)})"
        )
    assert_closed(connection, code, reason)


def _mismatch(expected: Sequence[str | bytes], received: list[str | bytes], why: str) -> str:
    return f"expected messages {list(expected)!r}, received {received!r}: {why}"


async def assert_receives(
    connection: Any, *expected: str | bytes, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Assert that the next messages of an asyncio connection are ``expected``, in order.

    ``str`` expects a text message, ``bytes`` a binary one. Fail at the first
    difference, when the connection closes first, or after ``timeout``
    seconds in all.
    """
    received: list[str | bytes] = []
    try:
        async with asyncio.timeout(timeout):
            for message in expected:
                received.append(await connection.recv())
                if received[-1] != message:
                    raise AssertionError(_mismatch(expected, received, "they differ"))
    except TimeoutError:
        why = f"nothing more within {timeout:g} s"
        raise AssertionError(_mismatch(expected, received, why)) from None
    except ConnectionClosed:
        why = f"the connection closed ({_describe(connection)})"
        raise AssertionError(_mismatch(expected, received, why)) from None


def assert_receives_sync(
    connection: Any, *expected: str | bytes, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Assert that the next messages of a threading connection are ``expected``, in order.

    ``timeout`` bounds the wait for each message.
    """
    received: list[str | bytes] = []
    for message in expected:
        try:
            received.append(connection.recv(timeout=timeout))
        except TimeoutError:
            why = f"nothing more within {timeout:g} s"
            raise AssertionError(_mismatch(expected, received, why)) from None
        except ConnectionClosed:
            why = f"the connection closed ({_describe(connection)})"
            raise AssertionError(_mismatch(expected, received, why)) from None
        if received[-1] != message:
            raise AssertionError(_mismatch(expected, received, "they differ"))
