"""Send one message to many connections at once: :func:`broadcast`."""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from tether.asyncio.connection import Connection, Data
from tether.exceptions import ConcurrencyError, InvalidState
from tether.protocol.connection import _OPEN
from tether.protocol.frames import Opcode, serialize_frame
from tether.sending import broadcast_payload

__all__ = ["broadcast"]

# Module names, read per connection: on Python 3.11 an Enum class attribute
# is a slow lookup.
_TEXT = Opcode.TEXT

# Connections already warned about being too slow: one warning each, then DEBUG.
_warned: weakref.WeakSet[Connection] = weakref.WeakSet()


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
    is_text, payload = broadcast_payload(message, text)
    opcode = Opcode.TEXT if is_text else Opcode.BINARY
    shared: bytes | None = None
    sent = 0
    errors: list[Exception] = []
    for connection in connections:
        protocol = connection.protocol
        transport = connection.transport
        if protocol.state is not _OPEN or transport is None or transport.is_closing():
            continue
        error: Exception | None = None
        if transport.get_write_buffer_size() > connection.write_limit:
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
                connection._flush()
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
