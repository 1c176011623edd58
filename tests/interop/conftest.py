"""Fixtures of the interoperability tests: both event loops, as in tests/asyncio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each interop test once per event loop implementation; asyncio peers share it."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
