"""Filling a connection's write buffer: the helpers of the flow-control tests.

A test sends numbered messages of :data:`CHUNK` bytes until a ``send``
waits for the transport's buffer, then reads them back in order.
"""

from __future__ import annotations

import asyncio

from tether.asyncio.connection import Connection

__all__ = ["CHUNK", "MAX_MESSAGES", "blocks", "numbered", "send_until_blocked"]

CHUNK = 32 * 1024
"""Message size for the flooding tests; no compression, so it is the frame size too."""

MAX_MESSAGES = 2000
"""Upper bound on messages a test sends before the buffers must push back."""


def numbered(index: int, size: int = CHUNK) -> bytes:
    """A message of ``size`` bytes that starts with ``index``."""
    return index.to_bytes(4, "big") + bytes(size - 4)


async def blocks(task: asyncio.Task[None]) -> bool:
    """Whether ``task`` is still waiting after the loop had a moment to run it."""
    done, _ = await asyncio.wait({task}, timeout=0.05)
    return not done


async def send_until_blocked(ws: Connection) -> tuple[int, asyncio.Task[None]]:
    """Send numbered messages until one send() waits; return the count and that send."""
    for index in range(MAX_MESSAGES):
        sending = asyncio.create_task(ws.send(numbered(index)))
        if await blocks(sending):
            return index + 1, sending
    raise AssertionError(f"{MAX_MESSAGES} sends of {CHUNK} bytes never waited")
