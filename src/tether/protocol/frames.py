"""The frame codec of RFC 6455 section 5.

:func:`parse_header` reads a frame header from a buffer and checks every rule
that can be checked from the header alone; :func:`serialize_frame` builds a
frame's bytes. :class:`Frame` is the value passed to extensions and used by
tests and test peers; the engine's hot path works on header tuples instead.
"""

from __future__ import annotations

import enum
import functools
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from tether.exceptions import PayloadTooBig, ProtocolError
from tether.protocol.events import Event, Message
from tether.protocol.masking import apply_mask
from tether.protocol.speedups import speedups

if TYPE_CHECKING:
    # Only for annotations: the extensions import this module.
    from tether.extensions.base import Extension

__all__ = [
    "CONTROL_OPCODES",
    "DATA_OPCODES",
    "Frame",
    "FrameHeader",
    "Opcode",
    "build_frame",
    "build_frame_python",
    "compressed_frame_limit",
    "encode_whole",
    "encode_whole_python",
    "frame_header",
    "masking_key",
    "masking_key_python",
    "parse_frame",
    "parse_header",
    "read_header",
    "read_header_python",
    "read_messages",
    "read_messages_python",
    "serialize_frame",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({Opcode.CONT, Opcode.TEXT, Opcode.BINARY})
CONTROL_OPCODES = frozenset({Opcode.CLOSE, Opcode.PING, Opcode.PONG})
_KNOWN_OPCODES = frozenset(int(op) for op in Opcode)
_FIRST_CONTROL = int(Opcode.CLOSE)  # Control opcodes are 0x8 and above.

MAX_CONTROL_PAYLOAD = 125

FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10
RSV_BITS = RSV1 | RSV2 | RSV3


@dataclass(frozen=True, slots=True)
class Frame:
    """One WebSocket frame, unmasked.

    ``rsv1``, ``rsv2`` and ``rsv3`` are the reserved bits that extensions
    such as permessage-deflate give a meaning to.
    """

    opcode: Opcode
    data: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False

    @property
    def rsv(self) -> int:
        """The three reserved bits as they stand in the first header byte."""
        return (RSV1 if self.rsv1 else 0) | (RSV2 if self.rsv2 else 0) | (RSV3 if self.rsv3 else 0)

    def serialize(self, *, mask: bool) -> bytes:
        """Build this frame's bytes, masked with a fresh random key when ``mask``."""
        return serialize_frame(self.opcode, self.data, fin=self.fin, rsv=self.rsv, mask=mask)


NewFrame = Callable[[Opcode, bytes, bool, bool, bool, bool], Frame]

new_frame: NewFrame = Frame if speedups is None else functools.partial(speedups.new_frame, Frame)
"""``Frame(opcode, data, fin, rsv1, rsv2, rsv3)``, made in C when the accelerator is built.

Extensions see a frame or two per message: the dataclass's frozen
``__init__`` sets each field through ``object.__setattr__``, which costs more
than the rest of handling a small frame.
"""

new_message: Callable[[str | bytes], Message] = (
    Message if speedups is None else speedups.make_message
)
"""``Message(data)``, made in C when the accelerator is built, for the same reason."""

OPCODES: dict[int, Opcode] = {int(op): op for op in Opcode}
"""Each :class:`Opcode` by its number: a lookup, where ``Opcode(n)`` is an enum call."""


class FrameHeader(NamedTuple):
    """A parsed frame header: everything but the payload."""

    fin: bool
    rsv: int
    opcode: int
    length: int
    mask: bytes | None
    size: int
    """Bytes taken by the header itself, masking key included."""


_new_tuple = tuple.__new__


def read_header_python(
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    allowed_rsv: int,
) -> FrameHeader | None:
    """Read the frame header at ``buf[pos:]``, or return ``None`` if it is incomplete.

    Raise :class:`ProtocolError` (close code 1002) for every violation the
    header shows: an unknown opcode, RSV bits not in ``allowed_rsv``, a
    fragmented or oversized control frame, a mask where none belongs or no
    mask where one must be (``expect_mask`` is true at a server), and a 64-bit
    length with its top bit set. Each rule is checked as soon as the bytes
    that carry it have arrived.
    """
    available = len(buf) - pos
    if available < 1:
        return None
    first = buf[pos]
    opcode = first & 0x0F
    if opcode not in _KNOWN_OPCODES:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    rsv = first & RSV_BITS
    if rsv & ~allowed_rsv:
        raise ProtocolError(f"reserved bits {rsv >> 4:03b} set with no extension to use them")
    fin = bool(first & FIN)
    control = opcode >= _FIRST_CONTROL
    if control and not fin:
        raise ProtocolError("fragmented control frame")
    if available < 2:
        return None
    second = buf[pos + 1]
    masked = bool(second & 0x80)
    if masked != expect_mask:
        raise ProtocolError("incorrect masking" if masked else "unmasked frame from client")
    length = second & 0x7F
    if control and length > MAX_CONTROL_PAYLOAD:
        raise ProtocolError("control frame payload over 125 bytes")
    size = 2
    if length == 126:
        if available < 4:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
        size = 4
    elif length == 127:
        if available < 3:
            return None
        if buf[pos + 2] & 0x80:
            raise ProtocolError("64-bit payload length with its most significant bit set")
        if available < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        size = 10
    key = None
    if masked:
        if available < size + 4:
            return None
        key = bytes(buf[pos + size : pos + size + 4])
        size += 4
    # tuple.__new__ skips the Python-level __new__ of NamedTuple: this runs per frame.
    return _new_tuple(FrameHeader, (fin, rsv, opcode, length, key, size))


Reader = Callable[[bytes | bytearray | memoryview, int, bool, int], FrameHeader | None]

read_header: Reader = (
    read_header_python
    if speedups is None
    else functools.partial(speedups.parse_header, FrameHeader)
)
""":func:`parse_header` with positional arguments, in C when the accelerator is built."""


def compressed_frame_limit(max_size: int) -> int:
    """Bound a compressed frame on the wire: deflate may grow incompressible data a little."""
    return max_size + (max_size >> 10) + 64


def read_messages_python(  # noqa: PLR0917 - positional, as its C twin, which runs per read
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    max_size: int | None,
    limit: int | None,
    events: list[Event],
    whole: Extension | None,
) -> int:
    """Read the messages at ``buf[pos:]`` that each came whole in one plain frame.

    The engine's fast path: a frame qualifies when it is complete, has FIN
    set, no RSV bit, the text or binary opcode, the masking ``expect_mask``
    asks for, a payload of at most ``max_size`` bytes (``None``: no bound)
    and, for text, valid UTF-8. Each one becomes a :class:`Message` event,
    appended to ``events``, until ``limit`` messages (``None``: no bound) are
    read. Reading stops at the first frame that does not qualify, without
    judging it: the caller's general path reads it and raises any error.
    Return where reading stopped.

    With ``whole``, the connection's only extension, which takes whole
    messages (:attr:`~tether.extensions.base.Extension.whole_messages`), a
    frame with RSV1 qualifies too when its payload is within
    :func:`compressed_frame_limit`: ``whole.decode_message`` gets the
    payload, unmasked. Such a frame is consumed whatever comes of it, so its
    errors are raised here: those of ``decode_message``,
    :class:`~tether.exceptions.PayloadTooBig` for a message over
    ``max_size`` and :class:`~tether.exceptions.ProtocolError` (1007) for
    text that is not UTF-8.
    """
    end = len(buf)
    count = 0
    while pos < end and count != limit:
        available = end - pos
        if available < 2:
            break
        first = buf[pos]
        compressed = first == 0xC1 or first == 0xC2  # noqa: PLR1714 - ints
        if first != 0x81 and first != 0x82 and not (compressed and whole is not None):  # noqa: PLR1714
            break
        second = buf[pos + 1]
        if bool(second & 0x80) != expect_mask:
            break
        length = second & 0x7F
        size = 2
        if length == 126:
            if available < 4:
                break
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            size = 4
        elif length == 127:
            if available < 10 or buf[pos + 2] & 0x80:
                break
            length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            size = 10
        key = None
        if expect_mask:
            key = bytes(buf[pos + size : pos + size + 4])
            size += 4
        start = pos + size
        stop = start + length
        if stop > end:
            break
        if compressed:
            if max_size is not None and length > compressed_frame_limit(max_size):
                break
            packed = bytes(buf[start:stop]) if key is None else apply_mask(buf[start:stop], key)
            data = whole.decode_message(packed, None, max_size)  # type: ignore[union-attr]
            if not isinstance(data, bytes):
                # As the C twin refuses it: a message is str or bytes.
                raise TypeError("decode_message did not return bytes")
            if max_size is not None and len(data) > max_size:
                raise PayloadTooBig(len(data), max_size)
            if first == 0xC1:
                try:
                    events.append(Message(data.decode()))
                except UnicodeDecodeError as exc:
                    raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
            else:
                events.append(Message(data))
            pos = stop
            count += 1
            continue
        if max_size is not None and length > max_size:
            break
        if key is None:
            payload = bytes(buf[start:stop])
        else:
            # A view of a large payload, not a slice: unmasking copies it once.
            raw = buf[start:stop] if length < 4096 else memoryview(buf)[start:stop]
            payload = apply_mask(raw, key)
        if first == 0x81:
            try:
                events.append(Message(payload.decode()))
            except UnicodeDecodeError:
                break
        else:
            events.append(Message(payload))
        pos = stop
        count += 1
    return pos


ReadMessages = Callable[
    [
        bytes | bytearray | memoryview,
        int,
        bool,
        int | None,
        int | None,
        list[Event],
        "Extension | None",
    ],
    int,
]

read_messages: ReadMessages = read_messages_python if speedups is None else speedups.read_messages
""":func:`read_messages_python`, in C when the accelerator is built."""


def encode_whole_python(
    whole: Extension, first: int, data: bytes | bytearray | memoryview, key: bytes | None
) -> bytes:
    """The frame of a whole message sent through ``whole``: its ``encode_message``.

    The C twin builds the frame of permessage-deflate itself (not of a
    subclass) without a Python call when its compressor is the
    accelerator's, with the same bytes.
    """
    return whole.encode_message(first, data, key)  # type: ignore[arg-type]


EncodeWhole = Callable[["Extension", int, bytes | bytearray | memoryview, bytes | None], bytes]

encode_whole: EncodeWhole = encode_whole_python if speedups is None else speedups.encode_whole
""":func:`encode_whole_python`, in C when the accelerator is built."""


def parse_header(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    *,
    expect_mask: bool,
    allowed_rsv: int = 0,
) -> FrameHeader | None:
    """Read the frame header at ``buf[pos:]``, or return ``None`` if it is incomplete.

    See :func:`read_header_python` for the rules checked.
    """
    return read_header(buf, pos, expect_mask, allowed_rsv)


def parse_frame(
    buf: bytes | bytearray | memoryview,
    pos: int = 0,
    *,
    expect_mask: bool,
    allowed_rsv: int = 0,
) -> tuple[Frame, int] | None:
    """Read one whole frame at ``buf[pos:]`` and return it with the bytes it took.

    Return ``None`` while the frame is incomplete. The rules checked are those
    of :func:`parse_header`.
    """
    header = read_header(buf, pos, expect_mask, allowed_rsv)
    if header is None:
        return None
    start = pos + header.size
    end = start + header.length
    if len(buf) < end:
        return None
    payload = bytes(buf[start:end])
    if header.mask is not None:
        payload = apply_mask(payload, header.mask)
    rsv = header.rsv
    frame = new_frame(
        OPCODES[header.opcode],
        payload,
        header.fin,
        bool(rsv & RSV1),
        bool(rsv & RSV2),
        bool(rsv & RSV3),
    )
    return frame, end - pos


def frame_header(first: int, length: int, *, masked: bool = False) -> bytes:
    """Build a frame header, without its masking key, from its first byte and payload length."""
    second = 0x80 if masked else 0
    if length < 126:
        return bytes((first, second | length))
    if length < 0x10000:
        return bytes((first, second | 126)) + length.to_bytes(2, "big")
    return bytes((first, second | 127)) + length.to_bytes(8, "big")


def build_frame_python(
    first: int, data: bytes | bytearray | memoryview, key: bytes | None
) -> bytes:
    """Build a frame from its first header byte, its payload and its masking key or ``None``.

    The pure-Python twin of the C accelerator's ``build_frame``.
    """
    length = memoryview(data).nbytes
    if key is not None:
        return frame_header(first, length, masked=True) + key + apply_mask(data, key)
    return frame_header(first, length) + data


build_frame: Callable[[int, bytes | bytearray | memoryview, bytes | None], bytes] = (
    build_frame_python if speedups is None else speedups.build_frame
)
""":func:`build_frame_python`, in C when the accelerator is built: one allocation, one pass."""


# Masking keys come from os.urandom, 1,024 at a time: a system call per frame
# cost more than building the frame. next() on the C iterator is atomic, so
# threads sending at once never share a key.
_KEY_BATCH = 1024


def _key_batch() -> Iterator[tuple[bytes]]:
    return struct.iter_unpack("4s", os.urandom(4 * _KEY_BATCH))


_keys = _key_batch()


def masking_key_python() -> bytes:
    """Return a fresh random 4-byte masking key (RFC 6455 section 5.3).

    The pure-Python twin of the C accelerator's ``masking_key``.
    """
    global _keys  # noqa: PLW0603
    try:
        return next(_keys)[0]
    except StopIteration:
        _keys = _key_batch()
        return next(_keys)[0]


masking_key: Callable[[], bytes] = masking_key_python if speedups is None else speedups.masking_key
""":func:`masking_key_python`, in C when the accelerator is built: no Python call per frame."""


def _forget_keys() -> None:
    """Drop the keys drawn but unused, in a forked child: it must not repeat its parent's."""
    global _keys  # noqa: PLW0603
    _keys = iter(())  # the next key draws a new batch
    if speedups is not None:
        speedups.forget_keys()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_forget_keys)


def serialize_frame(
    opcode: int,
    data: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool,
) -> bytes:
    """Build one frame: header and payload in a single ``bytes``.

    ``rsv`` holds the reserved bits as they stand in the first header byte.
    With ``mask`` the payload is masked with a fresh random 4-byte key, as a
    client must do for every frame.
    """
    first = (FIN if fin else 0) | rsv | opcode
    return build_frame(first, data, masking_key() if mask else None)
