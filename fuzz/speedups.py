"""Fuzz the C accelerator against the pure-Python code it replaces.

Each function of ``tether._speedups`` that reads or writes bytes must give what its
pure-Python twin gives, for every buffer type (``bytes``, ``bytearray``, a
``memoryview``, a ``memoryview`` that starts inside a larger buffer):

- ``apply_mask`` equals :func:`~tether.protocol.masking.apply_mask_python`,
  also past the 16 KiB blocks the Python version works in;
- ``new_payload`` and ``fill_payload`` write the same bytes, unmasked in two
  pieces cut anywhere, as :func:`~tether.protocol.masking.fill_payload_python`;
- ``parse_header`` equals :func:`~tether.protocol.frames.read_header_python`:
  the same header, the same ``None`` or the same
  :class:`~tether.exceptions.ProtocolError`, at every position and setting,
  and on every prefix of the buffer, as the engine sees a header that
  arrives a byte at a time;
- ``build_frame`` equals :func:`~tether.protocol.frames.build_frame_python`
  with and without a masking key, across the 126 and 65,536 byte length
  boundaries, and what it builds reads back as the frame it was given;
- ``read_messages`` equals :func:`~tether.protocol.frames.read_messages_python`:
  the same messages and the same stopping point, for any limits, and every
  frame it takes is one the general path would take as a whole message; with
  permessage-deflate, the same messages or the same error;
- ``deliver_messages`` equals
  :func:`~tether.asyncio.listener.deliver_messages_python`: the same
  messages handed to the callback, the same stopping point (that of
  ``read_messages``) and, when the callback raises, the same bytes taken;
  with permessage-deflate and a limit, the same messages, stopping point and
  failure of the engine (its error and close frame) on corrupt data;
- ``receive_messages`` equals
  :func:`~tether.messages.receive_messages_python` with the engine reading
  in Python (:func:`~tether.protocol.frames.read_messages_python`) on a
  compressed connection whose queue may have little room: the same bytes
  taken, messages queued, reader woken, and failure of the engine;
- ``deflate_frame`` and ``inflate_frame`` equal the twins in
  :mod:`tether.extensions.permessage_deflate`: the same frames from two
  messages compressed in one stream, which inflate back to the messages, and
  the same output, decompressor state or zlib error on any compressed data;
  and so do they on the accelerator's own ``Deflater`` and ``Inflater``.

UTF-8 validation has no C version to compare: text messages go through
CPython's incremental decoder (:mod:`tether.protocol.utf8`) either way.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any
from unittest import mock

from fuzz._common import Input, run
from tether import _speedups
from tether.asyncio.listener import deliver_messages_python
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.extensions.permessage_deflate import (
    PerMessageDeflate,
    deflate_frame_python,
    inflate_frame_python,
)
from tether.messages import MessageQueue, receive_messages_python
from tether.protocol import connection as engine_module
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Event, Message
from tether.protocol.frames import (
    RSV_BITS,
    FrameHeader,
    build_frame_python,
    read_header_python,
    read_messages_python,
)
from tether.protocol.masking import apply_mask_python, fill_payload_python, new_payload_python

__all__ = ["TestOneInput"]

# The largest frame header: 2 bytes, an 8-byte length and a masking key.
_MAX_HEADER = 14
# The block size of apply_mask_python, whose last block and tail are the
# Python version's edge cases.
_MASK_BLOCK = 1 << 14


def _read(c: bool, buf: bytes | bytearray | memoryview, pos: int, mask: bool, rsv: int) -> object:
    """The header read by one implementation, or the error it raised."""
    try:
        if c:
            return _speedups.parse_header(FrameHeader, buf, pos, mask, rsv)
        return read_header_python(buf, pos, mask, rsv)
    except ProtocolError as exc:
        return (type(exc), str(exc), exc.code)


def _views(data: bytes, kind: int) -> bytes | bytearray | memoryview:
    if kind == 1:
        return bytearray(data)
    if kind == 2:
        return memoryview(data)
    if kind == 3 and data:
        # A view that starts inside a larger buffer, as the engine passes.
        return memoryview(b"\xff" + data)[1:]
    return data


def _stretch(data: bytes, size: int) -> bytes:
    """``data`` repeated to ``size`` bytes: long inputs from a short one."""
    if not data:
        return b""
    return (data * (size // len(data) + 1))[:size]


def _check_mask(source: Input, flags: int) -> None:
    mask = source.take(4).ljust(4, b"\x00")
    # Flag 0x02 stretches the payload past one or two whole blocks.
    size = _MASK_BLOCK + source.uint16() % (2 * _MASK_BLOCK) if flags & 0x02 else 0
    data = source.rest()
    payload = _views(_stretch(data, size) if size else data, flags >> 6)
    expected = apply_mask_python(payload, mask)
    assert len(expected) == len(payload)
    assert _speedups.apply_mask(payload, mask) == expected
    assert apply_mask_python(expected, mask) == bytes(payload)
    # The engine writes a large message into one payload piece by piece,
    # with the key in step with where each piece starts.
    size = len(payload)
    cut = size * ((flags >> 2) & 0x0F) // 15
    rotated = mask[cut % 4 :] + mask[: cut % 4]
    view = memoryview(payload)
    target = _speedups.new_payload(size)
    twin = new_payload_python(size)
    for fill, into in ((_speedups.fill_payload, target), (fill_payload_python, twin)):
        fill(into, 0, view[:cut], mask)
        fill(into, cut, view[cut:], rotated)
    assert target == twin == expected


def _check_header(source: Input, flags: int) -> None:
    pos = source.byte() % 16
    buf = _views(source.rest(), flags >> 6)
    pos = min(pos, len(buf))
    expect_mask = bool(flags & 0x02)
    allowed_rsv = flags & RSV_BITS
    python = _read(False, buf, pos, expect_mask, allowed_rsv)
    c = _read(True, buf, pos, expect_mask, allowed_rsv)
    assert python == c, (python, c)
    if isinstance(python, FrameHeader):
        assert isinstance(c, FrameHeader)
        assert python.size <= len(buf) - pos
    # Every prefix, as a header that arrives a byte at a time: both agree,
    # and once a prefix gives a header or an error, every longer one does too.
    settled: object = None
    for end in range(pos, min(len(buf), pos + _MAX_HEADER) + 1):
        piece = buf[:end]
        python_piece = _read(False, piece, pos, expect_mask, allowed_rsv)
        assert _read(True, piece, pos, expect_mask, allowed_rsv) == python_piece
        if settled is not None:
            assert python_piece == settled
        elif python_piece is not None:
            settled = python_piece
    assert settled == python


def _check_build(source: Input, flags: int) -> None:
    first = source.byte()
    key = source.take(4).ljust(4, b"\x00") if flags & 0x08 else None
    # Flag 0x10 stretches the payload to just around the 64 KiB length boundary.
    size = 0xFFFC + source.byte() % 8 if flags & 0x10 else 0
    data = source.rest()
    payload = _views(_stretch(data, size) if size else data, flags >> 6)
    expected = build_frame_python(first, payload, key)
    assert _speedups.build_frame(first, payload, key) == expected
    try:
        header = read_header_python(expected, 0, key is not None, RSV_BITS)
    except ProtocolError:
        # A first byte with a reserved opcode, or a control frame that is
        # fragmented or too long: the frame is built as asked, but no
        # reader accepts it.
        return
    assert header is not None
    assert header.fin == bool(first & 0x80)
    assert header.rsv == first & RSV_BITS
    assert header.opcode == first & 0x0F
    assert header.length == len(payload)
    assert header.mask == key
    assert header.size + header.length == len(expected)
    body = expected[header.size :]
    assert (body if key is None else apply_mask_python(body, key)) == bytes(payload)


def _read_compressed(
    c: bool,
    buf: bytes | bytearray | memoryview,
    expect_mask: bool,
    max_size: int | None,
    limit: int | None,
) -> tuple[object, ...]:
    """What one read_messages reads with a fresh permessage-deflate, or the error it raised."""
    events: list[Event] = []
    whole = PerMessageDeflate(False, False, 15, 15)
    read = _speedups.read_messages if c else read_messages_python
    try:
        stop = read(buf, 0, expect_mask, max_size, limit, events, whole)
    except (ProtocolError, PayloadTooBig) as exc:
        return ("error", type(exc), str(exc), exc.code, events)
    return (stop, events)


def _check_messages(source: Input, flags: int) -> None:
    expect_mask = bool(flags & 0x02)
    size_byte = source.byte()
    max_size = None if flags & 0x10 else size_byte
    limit = source.byte() % 4 if flags & 0x20 else None
    buf = _views(source.rest(), flags >> 6)
    python: list[Event] = []
    c: list[Event] = []
    stop = read_messages_python(buf, 0, expect_mask, max_size, limit, python, None)
    assert _speedups.read_messages(buf, 0, expect_mask, max_size, limit, c, None) == stop
    assert c == python
    # The same with permessage-deflate, whose frames with RSV1 are read too.
    assert _read_compressed(True, buf, expect_mask, max_size, limit) == _read_compressed(
        False, buf, expect_mask, max_size, limit
    )
    # Each frame taken is a final text or binary frame with no RSV bit, as
    # masked as asked, within max_size, whose payload is the message.
    pos = 0
    for event in python:
        assert type(event) is Message
        header = read_header_python(buf, pos, expect_mask, 0)
        assert header is not None
        assert header.fin
        assert header.opcode in {1, 2}
        assert max_size is None or header.length <= max_size
        start = pos + header.size
        pos = start + header.length
        payload = bytes(buf[start:pos])
        if header.mask is not None:
            payload = apply_mask_python(payload, header.mask)
        assert event.data == (payload.decode() if header.opcode == 1 else payload)
    assert pos == stop
    _check_deliver(buf, expect_mask=expect_mask, max_size=max_size, fail_at=size_byte % 4)
    # The queue's room bounds the compressed messages a read may take.
    max_queue = None if limit is None else limit + 1
    assert _received(True, buf, expect_mask, max_size, max_queue) == _received(
        False, buf, expect_mask, max_size, max_queue
    )


class _Waiter:
    """The reader's future, as ``receive_messages`` sees it: woken at most once."""

    def __init__(self) -> None:
        self.woken = 0

    def done(self) -> bool:
        return self.woken > 0

    def set_result(self, result: None) -> None:
        self.woken += 1


def _received(
    c: bool,
    buf: bytes | bytearray | memoryview,
    expect_mask: bool,
    max_size: int | None,
    max_queue: int | None,
) -> tuple[object, ...]:
    """What one receive_messages takes into a fresh queue on a fresh compressed engine.

    The twin's engine reads with :func:`read_messages_python`, so that no C
    runs on its side.
    """
    engine = Connection(
        Role.SERVER if expect_mask else Role.CLIENT,
        max_size=max_size,
        extensions=[PerMessageDeflate(False, False, 15, 15)],
    )
    queue = MessageQueue(max_queue)
    waiter = _Waiter()
    if c:
        taken = _speedups.receive_messages(engine, buf, queue, waiter)
    else:
        with mock.patch.object(engine_module, "read_messages", read_messages_python):
            taken = receive_messages_python(engine, buf, queue, waiter)
    error = engine.error
    failure = None if error is None else (type(error), str(error), engine.close_sent)
    return (taken, list(queue._items or ()), queue.ready, waiter.woken, failure)


def _collector(messages: list[str | bytes]) -> Callable[[object, str | bytes], None]:
    """An on_message that keeps every message in ``messages``."""

    def on_message(connection: object, message: str | bytes) -> None:
        messages.append(message)

    return on_message


def _check_deliver(
    buf: bytes | bytearray | memoryview,
    *,
    expect_mask: bool,
    max_size: int | None,
    fail_at: int,
) -> None:
    """deliver_messages and its twin, on a fresh engine, with a callback raising at ``fail_at``.

    Both read what ``read_messages`` reads with no limit.
    """
    messages: list[Event] = []
    stop = read_messages_python(buf, 0, expect_mask, max_size, None, messages, None)
    outcomes = []
    for deliver in (_speedups.deliver_messages, deliver_messages_python):
        engine = Connection(Role.SERVER if expect_mask else Role.CLIENT, max_size=max_size)
        got: list[str | bytes] = []

        def on_message(connection: object, message: str | bytes, got: list[Any] = got) -> None:
            got.append(message)
            if len(got) > fail_at:
                raise ValueError(len(got))

        result = deliver(engine, buf, on_message, None)
        failed = isinstance(result, tuple)
        outcomes.append((result[0] if isinstance(result, tuple) else result, failed, got))
    assert outcomes[0] == outcomes[1]
    taken, failed, got = outcomes[0]
    # Up to the failing message, the messages read_messages reads.
    assert got == [message.data for message in messages[: len(got)]]  # type: ignore[union-attr]
    assert failed or (taken == stop and len(got) == len(messages))
    # With permessage-deflate, frames with RSV1 are inflated and delivered
    # too, at most `limit` of them, and bad ones fail the engine.
    limit = None if fail_at == 3 else fail_at + 1
    compressed = []
    for deliver in (_speedups.deliver_messages, deliver_messages_python):
        engine = Connection(
            Role.SERVER if expect_mask else Role.CLIENT,
            max_size=max_size,
            extensions=[PerMessageDeflate(False, False, 15, 15)],
        )
        inflated: list[str | bytes] = []
        result = deliver(engine, buf, _collector(inflated), None, limit)
        assert type(result) is int
        error = engine.error
        failure = None if error is None else (type(error), str(error), engine.close_sent)
        compressed.append((result, inflated, failure))
    assert compressed[0] == compressed[1]
    assert limit is None or len(compressed[0][1]) <= limit


def _inflated(
    c: bool, data: bytes | bytearray | memoryview, key: bytes | None, tail: bool, max_length: int
) -> tuple[object, ...]:
    """What one implementation of inflate_frame gives on a fresh decompressor, and its state."""
    decoder = zlib.decompressobj(wbits=-15)
    inflate = _speedups.inflate_frame if c else inflate_frame_python
    try:
        output = inflate(decoder, data, key, tail, max_length)
    except zlib.error as exc:
        return ("error", str(exc))
    return (output, decoder.eof, decoder.unused_data, decoder.unconsumed_tail)


def _check_zlib(source: Input, flags: int) -> None:
    first = source.byte()
    key = source.take(4).ljust(4, b"\x00") if flags & 0x08 else None
    level = source.byte() % 10
    max_length = source.byte() if flags & 0x10 else 0
    data = source.rest()
    # The rest as compressed data, maybe corrupt: the same output or error,
    # from zlib's objects and from the accelerator's Inflater.
    for tail in (False, True):
        payload = _views(data, flags >> 6)
        expected = _inflated(False, payload, key, tail, max_length)
        assert _inflated(True, payload, key, tail, max_length) == expected
        inflater = _speedups.Inflater(-15)
        try:
            direct: tuple[object, ...] = (
                _speedups.inflate_frame(inflater, payload, key, tail, max_length),
                inflater.eof,
                inflater.unused_data,
            )
        except zlib.error as exc:
            direct = ("error", str(exc))
        # The Inflater keeps no unconsumed_tail: its callers fail beyond max_length.
        assert direct == expected[:3]
    # The rest as two messages, compressed in one stream by both: the same
    # frames, which read back as the messages.
    encoders = [zlib.compressobj(level, zlib.DEFLATED, -15) for _ in range(2)]
    deflater = _speedups.Deflater(level, -15, 8, zlib.Z_DEFAULT_STRATEGY)
    decoder = zlib.decompressobj(wbits=-15)
    inflater = _speedups.Inflater(-15)
    half = len(data) // 2
    for message in (data[:half], data[half:]):
        view = _views(message, flags >> 6)
        frame = _speedups.deflate_frame(encoders[0], first, view, key)
        assert frame == deflate_frame_python(encoders[1], first, view, key)
        own = _speedups.deflate_frame(deflater, first, view, key)
        # Level 0's stored blocks follow the output room zlib is given, which
        # the zlib module sizes its own way: there only the data must match.
        assert level == 0 or own == frame
        size = {126: 4, 127: 10}.get(frame[1] & 0x7F, 2) + (0 if key is None else 4)
        body = frame[size:]
        assert _speedups.inflate_frame(decoder, body, key, True, 0) == message
        size = {126: 4, 127: 10}.get(own[1] & 0x7F, 2) + (0 if key is None else 4)
        assert _speedups.inflate_frame(inflater, own[size:], key, True, 0) == message


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    flags = source.byte()
    # Odd: masking; 0x04 set: building a frame (with 0x20: compressed, and
    # inflating); 0x08 set: reading messages; otherwise a header at a position.
    if flags & 0x01:
        _check_mask(source, flags)
    elif flags & 0x04 and flags & 0x20:
        _check_zlib(source, flags)
    elif flags & 0x04:
        _check_build(source, flags)
    elif flags & 0x08:
        _check_messages(source, flags)
    else:
        _check_header(source, flags)


if __name__ == "__main__":
    run(TestOneInput)
