"""Fuzz the frame parser and the engine that consumes frames.

The input's first bytes pick a configuration (role, size limit, streaming,
permessage-deflate); the rest is the byte stream from the peer. It goes to
:func:`~tether.protocol.frames.parse_frame`, then to two engines of the same
configuration, one fed all of it at once and one fed a byte at a time. The
engines must not raise, must agree on every outcome, and must keep their
buffer and their messages within the limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzz._common import Input, run
from tether.exceptions import ProtocolError
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Event, Fragment, Message
from tether.protocol.frames import (
    MAX_CONTROL_PAYLOAD,
    RSV_BITS,
    compressed_frame_limit,
    parse_frame,
)

__all__ = ["TestOneInput"]

# The largest frame header: 2 bytes, an 8-byte length and a masking key.
_MAX_HEADER = 14


@dataclass(frozen=True)
class _Config:
    role: Role
    max_size: int
    streaming: bool
    deflate: bool
    no_context_takeover: bool

    def engine(self) -> Connection:
        extensions = []
        if self.deflate:
            extensions.append(
                PerMessageDeflate(
                    remote_no_context_takeover=self.no_context_takeover,
                    local_no_context_takeover=self.no_context_takeover,
                    remote_max_window_bits=15,
                    local_max_window_bits=15,
                )
            )
        return Connection(
            self.role, max_size=self.max_size, streaming=self.streaming, extensions=extensions
        )


def _config(flags: int, size: int) -> _Config:
    return _Config(
        role=Role.SERVER if flags & 1 else Role.CLIENT,
        # Small limits make the size checks reachable with small inputs.
        max_size=size,
        streaming=bool(flags & 2),
        deflate=bool(flags & 4),
        no_context_takeover=bool(flags & 8),
    )


def _check_parse_frame(data: bytes, expect_mask: bool, allowed_rsv: int) -> None:
    try:
        parsed = parse_frame(data, expect_mask=expect_mask, allowed_rsv=allowed_rsv)
    except ProtocolError:
        return
    if parsed is None:
        return
    frame, used = parsed
    assert 2 <= used <= len(data)
    assert used - len(frame.data) in (2, 4, 6, 8, 10, 14)
    # The frame needs exactly its bytes: one fewer is incomplete.
    assert parse_frame(data[:used], expect_mask=expect_mask, allowed_rsv=allowed_rsv) == parsed
    assert parse_frame(data[: used - 1], expect_mask=expect_mask, allowed_rsv=allowed_rsv) is None


def _outcome(engine: Connection) -> tuple[object, ...]:
    error = engine.error
    return (
        engine.state,
        engine.close_transport,
        engine.close_rcvd,
        None if engine.close_sent is None else engine.close_sent.code,
        None if error is None else (type(error), error.code),
    )


def _merge(events: list[Event], failed: bool) -> list[object]:
    """Join each streamed message's fragments: where they are cut depends on how bytes came.

    When the connection ``failed``, the streamed message it failed in is
    left out: how much of it came out before the error depends on the cuts.
    """
    merged: list[object] = []
    current: list[str | bytes] = []
    done = True
    for event in events:
        if isinstance(event, Fragment):
            if event.first:
                current = []
                # Control frames may come between fragments: the message
                # keeps the place of its first fragment.
                merged.append(current)
            current.append(event.data)
            done = event.last
        else:
            merged.append(event)
    if failed and not done:
        merged = [part for part in merged if part is not current]
    return [
        ("".join(part) if isinstance(part[0], str) else b"".join(part))
        if isinstance(part, list)
        else part
        for part in merged
    ]


def _message_size(data: str | bytes) -> int:
    return len(data.encode()) if isinstance(data, str) else len(data)


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    config = _config(source.byte(), source.uint16())
    stream = source.rest()

    expect_mask = config.role is Role.SERVER
    allowed_rsv = RSV_BITS if config.deflate else 0
    _check_parse_frame(stream, expect_mask, allowed_rsv)

    whole = config.engine()
    whole.receive_data(stream)
    whole_events = whole.events()

    trickle = config.engine()
    trickle_events: list[Event] = []
    # The engine holds back at most one whole frame: a compressed data frame,
    # or a control frame, whose 125 bytes may exceed a small max_size.
    frame_limit = _MAX_HEADER + max(compressed_frame_limit(config.max_size), MAX_CONTROL_PAYLOAD)
    for i in range(len(stream)):
        trickle.receive_data(stream[i : i + 1])
        trickle_events.extend(trickle.events())
        # Bytes already parsed stay at the front of the buffer until they are
        # half of it, so the buffer is at most twice what is still unparsed.
        unparsed = len(trickle._buffer) - trickle._start
        assert unparsed <= frame_limit, (unparsed, frame_limit)
        assert len(trickle._buffer) <= 2 * frame_limit

    assert _outcome(whole) == _outcome(trickle), (_outcome(whole), _outcome(trickle))
    failed = whole.error is not None
    assert _merge(whole_events, failed) == _merge(trickle_events, failed)
    for event in whole_events:
        if isinstance(event, Message):
            assert _message_size(event.data) <= config.max_size
        if isinstance(event, Fragment) and event.first:
            assert config.streaming
    if whole.error is not None:
        assert whole.close_transport

    # The end of the stream always closes, with nothing left to raise.
    whole.receive_eof()
    assert whole.close_transport


if __name__ == "__main__":
    run(TestOneInput)
