"""Sizes of the load tests: small enough for ``make test`` by default, large with ``--soak``.

``make soak`` runs ``pytest tests/load tests/faults --soak``: more
connections, more messages, and rounds of connect, exchange and close
repeated until ``--soak-seconds`` are spent, memory checked after each. The
options are registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvloop

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Scale:
    """How big one run of the load tests is."""

    connections: int
    """Concurrent connections to the asyncio server in each round."""
    messages: int
    """Messages each connection exchanges in a round."""
    seconds: float
    """Rounds repeat until this much time has passed (at least one round runs)."""
    max_rounds: int
    """A bound on the number of rounds, whatever the time."""
    shutdown_clients: int
    """Clients streaming when the asyncio server shuts down."""
    sync_connections: int
    """Concurrent connections to the threading server (a thread each)."""
    round_timeout: float
    """The bound on one round; a round that takes longer fails."""
    mixed_clients: int
    """Clients of each of the four servers in a round of the mixed soak."""
    mixed_messages: int
    """Messages each client of the mixed soak exchanges in a round."""
    mixed_seconds: float
    """How long the mixed soak repeats its rounds."""
    mixed_rounds: int
    """The fewest measured rounds of the mixed soak, whatever the time."""


DEFAULT = Scale(
    connections=2000,
    messages=4,
    seconds=0.0,
    max_rounds=1,
    shutdown_clients=500,
    sync_connections=500,
    round_timeout=90.0,
    mixed_clients=16,
    mixed_messages=6,
    mixed_seconds=0.0,
    mixed_rounds=8,
)

MIXED_SHARE = 0.6
"""The share of ``--soak-seconds`` that the mixed soak takes; the asyncio soak
takes the rest, half on each event loop."""


@pytest.fixture
def scale(request: pytest.FixtureRequest) -> Scale:
    """The size of this run: the default, or the soak's with ``--soak``."""
    if not request.config.getoption("soak", False):
        return DEFAULT
    seconds = request.config.getoption("soak_seconds")
    return Scale(
        connections=request.config.getoption("soak_connections"),
        messages=24,
        seconds=seconds * (1 - MIXED_SHARE) / 2,
        max_rounds=10_000,
        shutdown_clients=2000,
        sync_connections=1500,
        round_timeout=600.0,
        mixed_clients=250,
        mixed_messages=24,
        mixed_seconds=seconds * MIXED_SHARE,
        mixed_rounds=8,
    )


@pytest.fixture(autouse=True)
def quiet_tether(caplog: pytest.LogCaptureFixture) -> None:
    """Keep tether's INFO and DEBUG records from being made during load tests.

    A record carries its connection (``record.websocket``), and pytest keeps
    the records of a test for its report: with ``--log-level=INFO`` every
    connection would stay alive until the test ends, and the test would
    take that for a leak. caplog puts the level back after the test.
    """
    caplog.set_level(logging.WARNING, logger="tether")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give soak runs the time they need: the suite's timeout is for the default size."""
    if not config.getoption("soak", False):
        return
    timeout = config.getoption("soak_seconds") + 1200
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.timeout(timeout))


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each load test on the default loop and on uvloop, unless it picks one."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
