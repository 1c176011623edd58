"""The fault tests run on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvloop


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each test on the default loop and on uvloop, unless it picks one."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
