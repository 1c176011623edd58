"""One message prepared once for many connections: :class:`Prepared`.

A message published to a topic goes to every subscriber as the same bytes
wherever their engines allow it. A server frame is never masked, so one
frame fits every connection that negotiated no extension. permessage-deflate
without context takeover on the server side (``server_no_context_takeover``)
compresses each message on its own: two connections with the same window
size and zlib settings compress it to the same bytes, so it is compressed
once for all of them. A connection whose compressor keeps its context
between messages gets the plain frame, uncompressed, as RFC 7692 allows:
compressing for it alone would cost a compression per subscriber and give
each an LZ77 window of its own, tens of KiB, on its first compressed message
(a broadcast, :func:`tether.broadcast`, does the same). A connection that
negotiated another extension, or is a client (whose frames are masked with a
key of their own), gets the message through its engine as usual.

This module does no I/O: the asyncio and threading topics both use it.
"""

from __future__ import annotations

from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection
from tether.protocol.frames import OPCODES, Opcode, new_frame, serialize_frame

__all__ = ["DeflateKey", "Prepared", "deflate_key"]

_TEXT = Opcode.TEXT.value
_BINARY = Opcode.BINARY.value

DeflateKey = tuple[int, int, int, int]
"""What decides the bytes of a message compressed alone: window bits, zlib settings."""


def deflate_key(extension: PerMessageDeflate) -> DeflateKey | None:
    """The settings that decide how ``extension`` compresses a message; ``None`` if they don't.

    With context takeover, the output depends on the messages sent before:
    nothing can be shared, and the answer is ``None``. See
    :attr:`~tether.extensions.permessage_deflate.PerMessageDeflate.sharing_key`.
    """
    return extension.sharing_key


class Prepared:
    """A message to send to many connections, framed and compressed on first need.

    ``message`` is ``str`` for text or bytes-like for binary; bytes-like
    input is copied once here, so that the caller may reuse its buffer.
    :meth:`frame_for` answers the bytes to write to one engine, the same
    object for every engine that can share them. The counters say how much
    work was done: :attr:`frames` plain frames built (0 or 1) and
    :attr:`compressions` messages compressed for sharing (one per set of
    deflate settings met).
    """

    __slots__ = ("_compressed", "_plain", "compressions", "frames", "opcode", "payload")

    def __init__(self, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            self.opcode = _TEXT
            self.payload = message.encode()
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self.opcode = _BINARY
            self.payload = bytes(message)
        else:
            raise TypeError(f"cannot publish {type(message).__name__}: expected str or bytes-like")
        self._plain: bytes | None = None
        self._compressed: dict[DeflateKey, bytes] | None = None
        self.frames = 0
        self.compressions = 0

    @property
    def text(self) -> bool:
        """Whether the message is text."""
        return self.opcode == _TEXT

    @property
    def plain(self) -> bytes:
        """The uncompressed, unmasked frame, built once."""
        frame = self._plain
        if frame is None:
            frame = self._plain = serialize_frame(self.opcode, self.payload, mask=False)
            self.frames += 1
        return frame

    def compressed(self, extension: PerMessageDeflate, key: DeflateKey) -> bytes:
        """The frame compressed as ``extension`` would, without context takeover; once per key."""
        cache = self._compressed
        if cache is None:
            cache = self._compressed = {}
        frame = cache.get(key)
        if frame is None:
            # A compressor of its own: the connection's extension keeps no
            # context between messages, so its output is this one's.
            alone = PerMessageDeflate(
                False,
                True,
                15,
                extension.local_max_window_bits,
                extension.compress_settings,
            )
            plain = new_frame(OPCODES[self.opcode], self.payload, True, False, False, False)
            frame = cache[key] = alone.encode(plain).serialize(mask=False)
            self.compressions += 1
        return frame

    def frame_for(self, protocol: Connection) -> bytes | None:
        """The shared bytes to write to ``protocol``, or ``None`` if it must encode its own.

        ``None`` means: send the payload through the engine, as
        :meth:`send_to` does.
        """
        if not protocol.shares_frames:
            return None
        extensions = protocol.extensions
        if not extensions:
            return self.plain
        if len(extensions) == 1:
            extension = extensions[0]
            if type(extension) is PerMessageDeflate:
                key = extension.sharing_key
                if key is None:
                    # Context takeover: uncompressed rather than a compressor per subscriber.
                    return self.plain
                return self.compressed(extension, key)
        return None

    def send_to(self, protocol: Connection) -> bool:
        """Hand the message to ``protocol``'s engine; return whether the bytes were shared.

        Raise what :meth:`~tether.protocol.connection.Connection.send_prepared`
        and :meth:`~tether.protocol.connection.Connection.send_message` raise.
        """
        frame = self.frame_for(protocol)
        if frame is None:
            protocol.send_message(self.payload, self.opcode == _TEXT)
            return False
        protocol.send_prepared(frame)
        return True
