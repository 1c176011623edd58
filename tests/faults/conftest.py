"""The fault tests run on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import uvloop

IMPAIRMENTS = [(0.05, 0.1, 3.0)]
"""Packet loss, latency each way (seconds) and how long to stream, for ``make test``."""

SOAK_IMPAIRMENTS = [(0.01, 0.5, 20.0), (0.10, 0.1, 20.0), (0.10, 0.5, 20.0)]
"""The long variants that ``--soak`` adds: the edges of 1-10 % and 100-500 ms."""


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each test on the default loop and on uvloop, unless it picks one."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give the lossy-link test its impairments: the short one, and the long ones with --soak."""
    if "impairment" in metafunc.fixturenames:
        impairments = list(IMPAIRMENTS)
        if metafunc.config.getoption("soak", False):
            impairments += SOAK_IMPAIRMENTS
        ids = [f"loss{loss:.0%}-delay{delay * 1000:.0f}ms" for loss, delay, _ in impairments]
        metafunc.parametrize("impairment", impairments, ids=ids)
