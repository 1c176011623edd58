"""The reconnecting loop of every client: which refusals it retries, and how long it waits.

The waits are read from the loop's log record ("retrying in N seconds"),
which every API writes with the delay it is about to sleep, so that no test
depends on how long anything took.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends import Backend, echo_until_closed
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response


def refusing(answers: dict[int, tuple[int, str | None]]) -> Any:
    """A ``process_request`` refusing the attempts in ``answers``: (status, Retry-After)."""
    attempts = 0

    def process_request(connection: Any, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        if attempts not in answers:
            return None
        status, retry_after = answers[attempts]
        response: Response = connection.respond(status, "Later.\n")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    return process_request


def waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the loop announced, in order."""
    found = []
    for record in caplog.records:
        match = re.search(r"retrying in ([0-9.]+) seconds", record.getMessage())
        if match:
            found.append(float(match.group(1)))
    return found


async def connect_times(backend: Backend, port: int, count: int, **options: Any) -> None:
    """Go round the reconnecting loop until ``count`` connections echoed a message."""
    seen = 0
    loop = backend.reconnect(f"ws://127.0.0.1:{port}/", **options)
    try:
        async for ws in loop:
            await ws.send(f"hello {seen}")
            assert await ws.recv() == f"hello {seen}"
            seen += 1
            if seen == count:
                break
    finally:
        await loop.aclose()


def test_reconnect_delays_replace_the_backoff_and_start_over_after_a_success(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether")
    made = 0

    def delays() -> Iterator[float]:
        nonlocal made
        made += 1
        yield from (0.001, 0.002, 0.004, 0.008)

    # Attempts 1, 2, 4 and 5 are refused with 503; 3 and 6 succeed.
    busy = (503, None)
    refuse = refusing({1: busy, 2: busy, 4: busy, 5: busy})

    async def body() -> None:
        async with backend.serve(echo_until_closed, process_request=refuse) as port:
            await connect_times(backend, port, 2, reconnect_delays=delays)

    backend.run(body)
    assert waits(caplog) == [0.001, 0.002, 0.001, 0.002]
    # A new iterator of delays after the first connection succeeded.
    assert made == 2


def test_429_is_retried_and_retry_after_waits_at_least_as_asked_up_to_the_maximum(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tether")
    # The backoff alone would wait 2 ms at most; the server asks for 30 s the
    # second time, and the client's maximum caps that at 50 ms.
    refuse = refusing({1: (429, None), 2: (429, "30"), 3: (503, None)})

    async def body() -> None:
        async with backend.serve(echo_until_closed, process_request=refuse) as port:
            await connect_times(
                backend, port, 1, backoff_initial_delay=0.001, backoff_max_delay=0.05
            )

    backend.run(body)
    first, second, third = waits(caplog)
    assert first <= 0.002
    assert second == 0.05
    # Retry-After counts for its own refusal only.
    assert third <= 0.05


def test_other_4xx_ends_the_loop(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tether")
    refuse = refusing({1: (503, None), 2: (403, None)})

    async def body() -> None:
        async with backend.serve(echo_until_closed, process_request=refuse) as port:
            with pytest.raises(InvalidStatus) as caught:
                await connect_times(backend, port, 1, backoff_initial_delay=0.001)
            assert caught.value.response.status_code == 403

    backend.run(body)
    assert len(waits(caplog)) == 1
