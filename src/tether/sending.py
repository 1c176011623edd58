"""Turning what an application sends into engine calls, shared by both APIs.

Each function writes to the engine only; the caller then sends the engine's
bytes its own way. A send on a closing connection raises the
:class:`~tether.exceptions.ConnectionClosed` that describes the closure.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any, Protocol

from tether.exceptions import InvalidState
from tether.protocol.connection import Connection

__all__ = [
    "BYTES_LIKE",
    "Data",
    "Fragments",
    "broadcast_payload",
    "is_single",
    "run_closed_hooks",
    "send_data",
]

Data = str | bytes | bytearray | memoryview
"""One message, or one piece of a fragmented message."""

BYTES_LIKE = (bytes, bytearray, memoryview)
DATA_TYPES = (str, *BYTES_LIKE)


def send_data(protocol: Connection, data: Data, text: bool | None, *, fin: bool = True) -> None:
    """Send a message, or the first frame of one when ``fin`` is false.

    ``text=None`` picks the opcode from the type: ``str`` is text, bytes-like
    is binary. ``True`` sends bytes (UTF-8 already) as text; ``False`` sends
    ``str`` as binary.
    """
    try:
        if fin:
            protocol.send_message(data, text)
            return
        if text is None:
            text = isinstance(data, str)
        if text:
            protocol.send_text(data if isinstance(data, str) else bytes(data), fin=fin)
        else:
            protocol.send_binary(data.encode() if isinstance(data, str) else data, fin=fin)
    except InvalidState:
        raise protocol.close_exc() from None


def broadcast_payload(message: object, text: bool | None) -> tuple[bool, bytes]:
    """Whether a broadcast goes as text, and its payload, for both APIs' ``broadcast``.

    ``str`` goes as text and bytes-like as binary, unless ``text`` says
    otherwise: ``True`` sends bytes (UTF-8 already) as text, ``False``
    sends ``str`` as binary. Raise :class:`TypeError` for anything else.
    """
    if isinstance(message, str):
        return text is not False, message.encode()
    if isinstance(message, BYTES_LIKE):
        return text is True, bytes(message)
    raise TypeError(f"cannot broadcast {type(message).__name__}: expected str or bytes-like")


def is_single(message: object) -> bool:
    """Tell a single message (``True``) from an iterable of pieces (``False``).

    Raise :class:`TypeError` for anything else, dicts included: a dict is
    iterable, but sending its keys as fragments is never what was meant.
    """
    if isinstance(message, DATA_TYPES):
        return True
    if isinstance(message, Mapping) or not isinstance(message, (Iterable, AsyncIterable)):
        raise TypeError(f"cannot send {type(message).__name__}: expected str or bytes-like")
    return False


class Fragments:
    """One fragmented message on its way out, a frame per piece.

    ``started`` tells whether a frame went out: once one has, a failure
    cannot be undone and the caller fails the connection (1011).
    """

    __slots__ = ("_first", "protocol", "text")

    def __init__(self, protocol: Connection, text: bool | None) -> None:
        self.protocol = protocol
        self.text = text
        self._first: Data | None = None

    @property
    def started(self) -> bool:
        """Whether the first frame was sent."""
        return self._first is not None

    def send(self, piece: Data) -> None:
        """Send the next piece; it must be of the kind of the first (``str`` or bytes-like)."""
        first = self._first
        if first is None:
            if not isinstance(piece, DATA_TYPES):
                raise TypeError(
                    f"cannot send {type(piece).__name__} in a fragmented message: "
                    "expected str or bytes-like"
                )
            send_data(self.protocol, piece, self.text, fin=False)
            self._first = piece
            return
        if isinstance(first, str) != isinstance(piece, str) or not isinstance(piece, DATA_TYPES):
            raise TypeError("all pieces of a fragmented message must be str, or all bytes-like")
        try:
            self.protocol.send_continuation(piece, fin=False)
        except InvalidState:
            raise self.protocol.close_exc() from None

    def end(self) -> None:
        """End the message with an empty final frame, if it was started."""
        if self._first is None:
            return
        try:
            self.protocol.send_continuation(b"", fin=True)
        except InvalidState:
            raise self.protocol.close_exc() from None


class Closable(Protocol):
    """A connection that runs hooks when it closes."""

    _on_closed: list[Callable[[Any], None]] | None


def run_closed_hooks(connection: Closable) -> None:
    """Call the hooks waiting for ``connection`` to close (topics), once, then forget them."""
    hooks = connection._on_closed
    if hooks is None:
        return
    connection._on_closed = None
    for hook in hooks:
        try:
            hook(connection)
        except Exception:
            logging.getLogger("tether").exception("closed hook failed")
