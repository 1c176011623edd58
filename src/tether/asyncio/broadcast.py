"""Send one message to many connections at once: :func:`broadcast`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tether.asyncio._direct import write_direct
from tether.asyncio.connection import Connection, Data
from tether.broadcasting import broadcast_message

__all__ = ["broadcast"]


def broadcast(
    connections: Iterable[Connection],
    message: Data,
    *,
    text: bool | None = None,
    raise_exceptions: bool = False,
) -> int:
    """Send ``message`` to every open connection of ``connections`` without waiting.

    A ``str`` goes as text, bytes-like as binary; ``text=True`` sends bytes
    (UTF-8 already) as text, ``text=False`` a ``str`` as binary. Unlike
    :meth:`~tether.asyncio.connection.Connection.send`, nothing waits for a
    slow connection: one whose write buffer is over its ``write_limit`` is
    skipped, and so is one in the middle of sending a fragmented message
    (another frame there would corrupt it). Connections that are not open
    are skipped silently.

    The frame is built once and shared by every server connection, even
    those that negotiated permessage-deflate: a broadcast goes uncompressed,
    as RFC 7692 allows. Client connections mask each frame with their own
    key, so each gets its own frame.

    Return the number of connections the message was written to. A skipped
    connection is logged, at WARNING the first time it is too slow and at
    DEBUG after that. With ``raise_exceptions=True``, an
    :class:`ExceptionGroup` then reports every connection skipped or failed
    (:class:`~tether.exceptions.ConcurrencyError` for a fragmented message
    in progress, :class:`BlockingIOError` for a full buffer, or the error
    the write raised), each with a note naming the connection.
    """
    return broadcast_message(connections, message, raise_exceptions, text, _direct)


def _direct(
    connections: Iterable[Connection], make_frame: Callable[[], bytes]
) -> tuple[int, Iterable[Connection], bytes | None]:
    # Every server engine taking a shared frame gets the plain one, compressed or not.
    return write_direct(connections, make_frame, plain_only=False)
