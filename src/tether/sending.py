"""Turning what an application sends into engine calls, shared by both APIs.

Each function writes to the engine only; the caller then sends the engine's
bytes its own way. A send on a closing connection raises the
:class:`~tether.exceptions.ConnectionClosed` that describes the closure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tether.exceptions import InvalidState
from tether.protocol.connection import Connection

__all__ = ["BYTES_LIKE", "Data", "check_piece", "end_fragments", "send_data", "send_piece"]

Data = str | bytes | bytearray | memoryview
"""One message, or one piece of a fragmented message."""

BYTES_LIKE = (bytes, bytearray, memoryview)

T = TypeVar("T")


def _guarded(protocol: Connection, call: Callable[[], T]) -> T:
    try:
        return call()
    except InvalidState:
        raise protocol.close_exc() from None


def send_data(protocol: Connection, data: Data, text: bool | None, *, fin: bool = True) -> None:
    """Send a message, or the first frame of one when ``fin`` is false.

    ``text=None`` picks the opcode from the type: ``str`` is text, bytes-like
    is binary. ``True`` sends bytes (UTF-8 already) as text; ``False`` sends
    ``str`` as binary.
    """
    if text is None:
        text = isinstance(data, str)
    try:
        if text:
            protocol.send_text(data if isinstance(data, str) else bytes(data), fin=fin)
        else:
            protocol.send_binary(data.encode() if isinstance(data, str) else data, fin=fin)
    except InvalidState:
        raise protocol.close_exc() from None


def check_piece(piece: object, first: object) -> None:
    """Check that a piece of a fragmented message has the kind of the first piece."""
    if isinstance(first, str):
        if not isinstance(piece, str):
            raise TypeError("all pieces of a fragmented message must be str, or all bytes-like")
    elif not isinstance(piece, BYTES_LIKE):
        raise TypeError("all pieces of a fragmented message must be str, or all bytes-like")


def send_piece(
    protocol: Connection, piece: Data, first: Data, index: int, text: bool | None
) -> None:
    """Send piece number ``index`` of a fragmented message whose first piece is ``first``."""
    check_piece(piece, first)
    if index == 0:
        send_data(protocol, piece, text, fin=False)
    else:
        _guarded(protocol, lambda: protocol.send_continuation(piece, fin=False))


def end_fragments(protocol: Connection) -> None:
    """End a fragmented message with an empty final frame."""
    _guarded(protocol, lambda: protocol.send_continuation(b"", fin=True))
