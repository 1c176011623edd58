"""Helpers shared by the tests of the protocol engine (tether.protocol.connection).

A :class:`Peer` builds the frames the other end would send; :func:`feed`
delivers bytes to an engine in a chosen chunking; :func:`sent_frames` parses
what an engine wrote, checking that a client masks and a server does not;
:func:`deflated` compresses messages as permessage-deflate sends them.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator
from typing import Literal

from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role, State, truncate_reason
from tether.protocol.events import Event, Fragment, Message
from tether.protocol.frames import RSV_BITS, Frame, Opcode, parse_frame, serialize_frame
from tether.protocol.masking import apply_mask, apply_mask_python

Chunking = Literal["whole", "bytewise", "random"]
CHUNKINGS: tuple[Chunking, ...] = ("whole", "bytewise", "random")

Buffer = Callable[[bytes], bytes | bytearray | memoryview]
"""Makes a kind of buffer the engine takes (bytes, bytearray, memoryview) from bytes."""


def other(role: Role) -> Role:
    """The role of the peer of a ``role`` engine."""
    return Role.SERVER if role is Role.CLIENT else Role.CLIENT


class Peer:
    """The other end of an engine under test: builds the frames it would send.

    A peer of a server engine is a client and masks its frames; a peer of a
    client engine is a server and does not.
    """

    def __init__(self, role: Role) -> None:
        self.masks = role is Role.SERVER

    def frame(self, opcode: int, data: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
        return serialize_frame(opcode, data, fin=fin, rsv=rsv, mask=self.masks)

    def text(self, data: str | bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
        payload = data.encode() if isinstance(data, str) else data
        return self.frame(Opcode.TEXT, payload, fin=fin, rsv=rsv)

    def binary(self, data: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
        return self.frame(Opcode.BINARY, data, fin=fin, rsv=rsv)

    def cont(self, data: str | bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
        payload = data.encode() if isinstance(data, str) else data
        return self.frame(Opcode.CONT, payload, fin=fin, rsv=rsv)

    def ping(self, data: bytes = b"") -> bytes:
        return self.frame(Opcode.PING, data)

    def pong(self, data: bytes = b"") -> bytes:
        return self.frame(Opcode.PONG, data)

    def close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """A close frame; ``code=None`` gives an empty payload."""
        payload = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
        return self.frame(Opcode.CLOSE, payload)

    def close_raw(self, payload: bytes) -> bytes:
        return self.frame(Opcode.CLOSE, payload)


def header_size(frame: bytes) -> int:
    """The size of the header (masking key included) of the frame ``frame`` starts with."""
    length = frame[1] & 0x7F
    size = 2 + {126: 2, 127: 8}.get(length, 0)
    return size + (4 if frame[1] & 0x80 else 0)


def build_frame(
    opcode: int,
    data: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    key: bytes | None = None,
) -> bytes:
    """Build a frame deterministically: masked with ``key`` when given."""
    plain = serialize_frame(opcode, data, fin=fin, rsv=rsv, mask=False)
    if key is None:
        return plain
    size = header_size(plain)
    header = bytes([plain[0], plain[1] | 0x80]) + plain[2:size]
    return header + key + apply_mask(data, key)


def chunks(data: bytes, chunking: Chunking, rng: random.Random | None = None) -> Iterator[bytes]:
    """Split ``data`` as ``chunking`` says; random splits mix 1-byte and larger pieces."""
    if chunking == "whole":
        yield data
    elif chunking == "bytewise":
        for index in range(len(data)):
            yield data[index : index + 1]
    else:
        rng = rng or random.Random(len(data))
        pos = 0
        while pos < len(data):
            size = rng.choice((1, 2, 3, rng.randint(1, 16), rng.randint(1, 300)))
            yield data[pos : pos + size]
            pos += size


def feed(
    conn: Connection,
    data: bytes,
    chunking: Chunking = "whole",
    rng: random.Random | None = None,
) -> None:
    for chunk in chunks(data, chunking, rng):
        conn.receive_data(chunk)


def parse_all(data: bytes, *, expect_mask: bool) -> list[Frame]:
    """Parse every frame of ``data``, which must hold whole frames only."""
    frames: list[Frame] = []
    pos = 0
    while pos < len(data):
        parsed = parse_frame(data, pos, expect_mask=expect_mask, allowed_rsv=RSV_BITS)
        assert parsed is not None, f"incomplete frame at {pos}"
        frame, size = parsed
        frames.append(frame)
        pos += size
    return frames


def sent_frames(conn: Connection) -> list[Frame]:
    """Drain and parse the engine's output; a client's frames must all be masked."""
    return parse_all(b"".join(conn.data_to_send()), expect_mask=conn.role is Role.CLIENT)


def close_frame(code: int, reason: str = "") -> Frame:
    return Frame(Opcode.CLOSE, Close(code, reason).serialize())


def assert_failed(conn: Connection, code: int) -> None:
    """Check that the engine failed the connection with ``code`` and said so once."""
    assert conn.error is not None
    assert conn.error.code == code
    reason = truncate_reason(str(conn.error))
    assert sent_frames(conn) == [close_frame(code, reason)]
    assert conn.close_sent == Close(code, reason)
    assert conn.state is State.CLOSING
    assert conn.close_transport
    assert conn.close_rcvd is None


def reassemble(events: list[Event]) -> list[Event]:
    """Join streamed :class:`Fragment` events into the :class:`Message` they make up."""
    result: list[Event] = []
    text: list[str] = []
    binary: list[bytes] = []
    started = False
    for event in events:
        if not isinstance(event, Fragment):
            result.append(event)
            continue
        assert event.first == (not started)
        started = True
        if isinstance(event.data, str):
            assert not binary
            text.append(event.data)
        else:
            assert not text
            binary.append(event.data)
        if event.last:
            result.append(Message("".join(text) if text else b"".join(binary)))
            text, binary = [], []
            started = False
    assert not started, "message left open"
    return result


def deflated(encoder: zlib._Compress, messages: list[bytes], key: bytes | None) -> list[bytes]:
    """Each message compressed on ``encoder``'s stream, sync-flushed, tail removed, masked.

    As permessage-deflate puts them in frames: the payloads to inflate, in order.
    """
    payloads = []
    for message in messages:
        payload = (encoder.compress(message) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]
        payloads.append(payload if key is None else apply_mask_python(payload, key))
    return payloads
