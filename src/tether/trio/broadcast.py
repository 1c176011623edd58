"""Send one message to many connections at once: :func:`broadcast`."""

from __future__ import annotations

from collections.abc import Iterable

import trio

from tether.broadcasting import broadcast_message
from tether.trio.connection import Connection, Data

__all__ = ["broadcast"]


async def broadcast(
    connections: Iterable[Connection],
    message: Data,
    *,
    text: bool | None = None,
    raise_exceptions: bool = False,
) -> int:
    """Send ``message`` to every open connection of ``connections`` without waiting for any.

    It behaves as :func:`tether.broadcast` does (a slow connection, one over
    its ``write_limit``, is skipped, and so is one in the middle of a
    fragmented message; the frame is built once and goes uncompressed) and
    returns the number of connections the message was written to; ``text``
    forces the opcode as in ``send``. Frames
    that cannot be written at once are written by a task of the connection.
    It is a coroutine function, as websockets.trio's ``broadcast`` is; it
    only checkpoints.
    """
    sent = broadcast_message(connections, message, raise_exceptions, text)
    await trio.lowlevel.checkpoint()
    return sent
