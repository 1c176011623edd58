"""One message written to many connections without waiting, shared by the async APIs.

Each API's connection tells whether it can take a frame now
(``_write_room()``) and writes what its engine has to send
without waiting (``_flush_nowait()``); building the frame
once, skipping, logging and reporting happen here.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from tether.exceptions import ConcurrencyError, InvalidState
from tether.log import ConnectionLogger
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import _OPEN
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.server import ServerProtocol
from tether.sending import broadcast_payload

__all__ = ["CLOSED", "FULL", "READY", "Broadcastable", "broadcast_message"]

READY = 0
"""What ``_write_room()`` answers when a frame may be written now."""
FULL = 1
"""What it answers when the write buffer is over ``write_limit``: the connection is skipped."""
CLOSED = 2
"""What it answers when the transport is closing: the connection is skipped silently."""

# A module name, read per connection: on Python 3.11 an Enum class attribute
# is a slow lookup.
_TEXT = Opcode.TEXT


class Broadcastable(Protocol):
    """What :func:`broadcast_message` needs of a connection."""

    @property
    def protocol(self) -> ClientProtocol | ServerProtocol: ...

    @property
    def logger(self) -> ConnectionLogger: ...

    @property
    def id(self) -> uuid.UUID: ...

    def _write_room(self) -> int:
        """:data:`READY`, :data:`FULL` or :data:`CLOSED`."""
        ...

    def _flush_nowait(self) -> object:
        """Write what the engine has to send without waiting."""
        ...


B = TypeVar("B", bound=Broadcastable)

Direct = Callable[[Iterable[B], Callable[[], bytes]], tuple[int, Iterable[B], bytes | None]]
"""Writes a shared frame, built on demand, to the connections it can: how many,
the others, and the frame if built (see ``tether.asyncio._direct``)."""


# Connections already warned about being too slow: one warning each, then DEBUG.
_warned: weakref.WeakSet[Broadcastable] = weakref.WeakSet()


def broadcast_message(
    connections: Iterable[B],
    message: str | bytes | bytearray | memoryview,
    raise_exceptions: bool,
    text: bool | None = None,
    direct: Direct[B] | None = None,
) -> int:
    """Write ``message`` to every open connection that has room; return how many got it.

    See the ``broadcast`` functions of the APIs for what is skipped and
    reported; ``text`` forces the opcode as in ``send``. ``direct``, if
    given, first writes the shared frame to the connections it can, and
    the loop here handles the others. Raise :class:`TypeError` for a
    message that is neither ``str`` nor bytes-like.
    """
    is_text, payload = broadcast_payload(message, text)
    opcode = Opcode.TEXT if is_text else Opcode.BINARY
    shared: bytes | None = None
    sent = 0
    if direct is not None:
        sent, connections, shared = direct(
            connections, lambda: serialize_frame(opcode, payload, mask=False)
        )
    errors: list[Exception] = []
    for connection in connections:
        protocol = connection.protocol
        if protocol.state is not _OPEN:
            continue
        room = connection._write_room()
        if room == CLOSED:
            continue
        error: Exception | None = None
        if room == FULL:
            if connection in _warned:
                connection.logger.debug("skipped broadcast: write buffer full")
            else:
                _warned.add(connection)
                connection.logger.warning("skipped broadcast: write buffer full")
            error = BlockingIOError("write buffer full")
        else:
            try:
                if protocol.shares_frames:
                    if shared is None:
                        shared = serialize_frame(opcode, payload, mask=False)
                    protocol.send_prepared(shared)
                elif opcode is _TEXT:
                    protocol.send_text(payload, compress=False)
                else:
                    protocol.send_binary(payload, compress=False)
                connection._flush_nowait()
            except InvalidState:
                # OPEN was checked: the only other refusal is a fragmented message.
                connection.logger.warning("skipped broadcast: sending a fragmented message")
                error = ConcurrencyError("sending a fragmented message")
            except Exception as exc:
                connection.logger.warning("skipped broadcast: %s", exc, exc_info=True)
                error = exc
            else:
                sent += 1
        if error is not None and raise_exceptions:
            error.add_note(f"connection {connection.id}")
            errors.append(error)
    if errors:
        raise ExceptionGroup("skipped broadcast", errors)
    return sent
