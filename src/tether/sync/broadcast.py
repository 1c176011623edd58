"""Send one message to many connections of the threading API: :func:`broadcast`."""

from __future__ import annotations

from collections.abc import Iterable

from tether.exceptions import ConcurrencyError
from tether.protocol.connection import _OPEN
from tether.sending import Data, broadcast_payload
from tether.sync.connection import Connection

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
    (UTF-8 already) as text, ``text=False`` a ``str`` as binary. The
    message goes uncompressed, as RFC 7692 allows.

    Nothing waits for a slow connection: what its socket does not take at
    once is left to a thread that writes it, so that one stuck client does
    not hold up the others. A connection in the middle of sending a
    fragmented message is skipped (another frame there would corrupt it),
    and so are connections that are not open.

    Return the number of connections the message was written to. With
    ``raise_exceptions=True``, an :class:`ExceptionGroup` then reports every
    connection skipped or failed (:class:`~tether.exceptions.ConcurrencyError`
    for a fragmented message in progress, or the error the write raised),
    each with a note naming the connection; otherwise they are logged at
    WARNING.
    """
    is_text, payload = broadcast_payload(message, text)
    sent = 0
    errors: list[Exception] = []
    for connection in connections:
        protocol = connection.protocol
        error: Exception | None = None
        with connection._mutex:
            if protocol.state is not _OPEN:
                continue
            send_mutex = connection._send_mutex
            if send_mutex is not None and send_mutex.locked():
                error = ConcurrencyError("sending a fragmented message")
            elif is_text:
                protocol.send_text(payload, compress=False)
            else:
                protocol.send_binary(payload, compress=False)
        if error is None:
            try:
                connection._flush(nowait=True)
            except Exception as exc:
                error = exc
            else:
                sent += 1
        if error is not None:
            connection.logger.warning("skipped broadcast: %s", error)
            if raise_exceptions:
                error.add_note(f"connection {connection.id}")
                errors.append(error)
    if errors:
        raise ExceptionGroup("skipped broadcast", errors)
    return sent
