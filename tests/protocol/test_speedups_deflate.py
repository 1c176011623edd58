"""The accelerator's own zlib objects (Deflater, Inflater) answer as zlib's do.

permessage-deflate makes them instead of :func:`zlib.compressobj` and
:func:`zlib.decompressobj` when the accelerator is in use, and
``deflate_frame`` / ``inflate_frame`` drive them without Python calls. Each
test runs the same input through them and through zlib's objects with the
pure-Python twins, and compares bytes, stream state and errors.
"""

from __future__ import annotations

import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.protocol.connection_helpers import deflated
from tests.protocol.test_speedups import assert_inflates_alike
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.extensions.permessage_deflate import (
    PerMessageDeflate,
    deflate_frame_python,
    inflate_frame_python,
    new_compressor,
    new_decompressor,
)
from tether.protocol.events import Event, Message
from tether.protocol.frames import build_frame_python, encode_whole_python, read_messages_python
from tether.protocol.masking import apply_mask_python
from tether.protocol.speedups import speedups as in_use

# The C fast paths take this class only once registered, which importing the
# extension does when the accelerator is in use: also here without it.
speedups.register_deflate(PerMessageDeflate)

KEY = b"\x8a\x01\x5c\xf3"
JSON = b'{"seq": 1, "rows": [' + b'{"id": 7, "symbol": "TTHR", "bid": 101.25}, ' * 40 + b"{}]}"

messages_strategy = st.lists(
    st.binary(max_size=3000) | st.just(JSON) | st.just(b"ab" * 700), min_size=1, max_size=5
)


def _pair(
    level: int = 6, wbits: int = -15, mem_level: int = 8, strategy: int = 0
) -> tuple[speedups.Deflater, zlib._Compress]:
    return (
        speedups.Deflater(level, wbits, mem_level, strategy),
        zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy),
    )


@given(
    messages=messages_strategy,
    level=st.integers(min_value=-1, max_value=9),
    wbits=st.integers(min_value=9, max_value=15),
    mem_level=st.integers(min_value=1, max_value=9),
    strategy=st.sampled_from(
        [zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED]
    ),
    key=st.none() | st.binary(min_size=4, max_size=4),
    first=st.integers(min_value=0, max_value=0xFF),
)
@settings(max_examples=200)
def test_deflate_frame_on_a_deflater_matches_zlib(  # noqa: PLR0917 (hypothesis fills them)
    messages: list[bytes],
    level: int,
    wbits: int,
    mem_level: int,
    strategy: int,
    key: bytes | None,
    first: int,
) -> None:
    ours, theirs = _pair(level, -wbits, mem_level, strategy)
    for message in messages:
        expected = deflate_frame_python(theirs, first, message, key)
        assert speedups.deflate_frame(ours, first, message, key) == expected


@given(messages=messages_strategy, cut=st.integers(min_value=0, max_value=3000))
@settings(max_examples=100)
def test_deflater_methods_match_zlib(messages: list[bytes], cut: int) -> None:
    ours, theirs = _pair(wbits=-12, mem_level=5)
    for message in messages:
        # In two pieces, then flushed, with both kinds of flush.
        outputs = [
            (
                compressor.compress(message[:cut]),
                compressor.compress(memoryview(message)[cut:]),
                compressor.flush(zlib.Z_SYNC_FLUSH),
                compressor.flush(zlib.Z_FULL_FLUSH),
            )
            for compressor in (ours, theirs)
        ]
        assert outputs[0] == outputs[1]


def test_deflater_output_beyond_the_static_area() -> None:
    # Random data stays about as long compressed: these sizes cross every
    # frame length encoding and the 64 KiB static area.
    for size in (0, 1, 125, 126, 0xFFFF, 0x10000, 200_000):
        data = os.urandom(size)
        for key in (None, KEY):
            ours, theirs = _pair(level=1)
            frame = speedups.deflate_frame(ours, 0xC2, bytearray(data), key)
            assert frame == deflate_frame_python(theirs, 0xC2, data, key)
    ours, theirs = _pair(level=1)
    data = os.urandom(150_000)
    assert ours.compress(data) == theirs.compress(data)
    assert ours.flush(zlib.Z_SYNC_FLUSH) == theirs.flush(zlib.Z_SYNC_FLUSH)


def test_deflater_stored_blocks_decompress_to_the_data() -> None:
    # At level 0 zlib sizes its stored blocks by the output room it is
    # given, which differs from the zlib module's: the bytes may differ, the
    # data may not.
    for size in (0, 100, 70_000, 200_000):
        data = os.urandom(size)
        ours = speedups.Deflater(0, -15, 8, 0)
        payload = ours.compress(data) + ours.flush(zlib.Z_SYNC_FLUSH)
        assert zlib.decompressobj(-15).decompress(payload) == data


def test_deflater_refuses_what_it_does_not_do() -> None:
    with pytest.raises(ValueError, match="initialization option"):
        speedups.Deflater(6, -15, 42, 0)
    with pytest.raises(ValueError, match="initialization option"):
        speedups.Inflater(99)
    ours, _ = _pair()
    with pytest.raises(ValueError, match="Z_SYNC_FLUSH"):
        ours.flush(zlib.Z_FINISH)
    with pytest.raises(TypeError):
        ours.compress("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ours.flush("sync")  # type: ignore[arg-type]
    decoder = speedups.Inflater(-15)
    with pytest.raises(ValueError, match="non-negative"):
        decoder.decompress(b"", -1)
    with pytest.raises(TypeError):
        decoder.decompress()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        decoder.decompress(b"", limit=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="non-negative"):
        speedups.inflate_frame(decoder, b"", None, True, -1)
    with pytest.raises(TypeError):
        speedups.inflate_frame(decoder, "text", None, True, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        speedups.deflate_frame(ours, 0xC1, "text", None)  # type: ignore[arg-type]


def _wire(messages: list[bytes], key: bytes | None) -> list[bytes]:
    """:func:`deflated` on one stream of 12 window bits, memory level 5."""
    return deflated(zlib.compressobj(6, zlib.DEFLATED, -12, 5), messages, key)


@given(
    messages=messages_strategy,
    key=st.none() | st.binary(min_size=4, max_size=4),
    cut=st.integers(min_value=0, max_value=3000),
    max_length=st.integers(min_value=0, max_value=5000),
)
@settings(max_examples=200)
def test_inflate_frame_on_an_inflater_matches_zlib(
    messages: list[bytes], key: bytes | None, cut: int, max_length: int
) -> None:
    wires = _wire(messages, key)
    assert_inflates_alike(speedups.Inflater(-12), -12, wires, key, cut=cut, max_length=max_length)


def test_inflater_output_beyond_the_static_area_and_large_masked_input() -> None:
    messages = [b"ab" * 100_000, os.urandom(20_000), JSON * 50]
    for key in (None, KEY):
        wires = _wire(messages, key)
        for limit in (0, 70_000):
            decoders = (speedups.Inflater(-12), zlib.decompressobj(-12))
            for wire in wires:
                ours = speedups.inflate_frame(decoders[0], wire, key, True, limit)
                theirs = inflate_frame_python(decoders[1], wire, key, True, limit)
                assert ours == theirs
                if len(theirs) == limit:
                    break
            else:
                assert limit == 0


@given(
    data=st.binary(max_size=64),
    tail=st.booleans(),
    key=st.none() | st.binary(min_size=4, max_size=4),
)
def test_inflater_reports_corrupt_data_as_zlib(data: bytes, tail: bool, key: bytes | None) -> None:
    outcomes: list[tuple[bytes | str, bool, bytes]] = []
    for decoder, inflate in (
        (speedups.Inflater(-15), speedups.inflate_frame),
        (zlib.decompressobj(-15), inflate_frame_python),
    ):
        try:
            output: bytes | str = inflate(decoder, data, key, tail, 0)
        except zlib.error as exc:
            output = str(exc)
        outcomes.append((output, decoder.eof, decoder.unused_data))
    assert outcomes[0] == outcomes[1]


@given(
    before=st.binary(max_size=2000),
    after=st.binary(max_size=100),
    key=st.none() | st.binary(min_size=4, max_size=4),
    tail=st.booleans(),
)
@settings(max_examples=100)
def test_inflater_ends_its_stream_as_zlib(
    before: bytes, after: bytes, key: bytes | None, tail: bool
) -> None:
    # A block with BFINAL set ends zlib's stream: what follows is unused_data,
    # tail included, and later input is added to it.
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = encoder.compress(before) + encoder.flush(zlib.Z_FINISH) + after
    wire = payload if key is None else apply_mask_python(payload, key)
    results = []
    for decoder, inflate in (
        (speedups.Inflater(-15), speedups.inflate_frame),
        (zlib.decompressobj(-15), inflate_frame_python),
    ):
        output = inflate(decoder, wire, key, tail, 0)
        first = (output, decoder.eof, decoder.unused_data)
        again = decoder.decompress(b"more")
        results.append((first, again, decoder.eof, decoder.unused_data))
    assert results[0] == results[1]
    assert results[0][0][0] == before


def test_inflater_decompress_takes_max_length_by_keyword() -> None:
    wire = _wire([JSON], None)[0] + b"\x00\x00\xff\xff"
    assert speedups.Inflater(-12).decompress(wire, max_length=10) == JSON[:10]
    assert speedups.Inflater(-12).decompress(memoryview(wire)) == JSON


def test_permessage_deflate_uses_them_with_the_accelerator() -> None:
    extension = PerMessageDeflate(False, False, 12, 12)
    frame = extension.encode_message(0x81, JSON, KEY)
    if in_use is None:
        assert type(extension._encoder) is type(zlib.compressobj())
        assert new_decompressor(-12).__class__ is type(zlib.decompressobj())
    else:
        assert type(extension._encoder) is speedups.Deflater
        assert type(new_decompressor(-12)) is speedups.Inflater
    assert isinstance(new_compressor(6, -12, 5, 0).compress(b""), bytes)
    receiver = PerMessageDeflate(False, False, 12, 12)
    assert receiver.decode_message(frame[6:], KEY, None) == JSON


# Whole compressed messages read by the C fast path (read_messages) without
# calling decode_message, against the Python twin, which calls it.


def _stream_frames(
    messages: list[bytes | str], key: bytes | None, *, reset: bool = False
) -> list[bytes]:
    """One frame per message from one compressor (a new one each time with ``reset``)."""
    sender = PerMessageDeflate(False, reset, 12, 12, {"memLevel": 5})
    frames = []
    for message in messages:
        text = isinstance(message, str)
        data = message.encode() if isinstance(message, str) else message
        frames.append(sender.encode_message(0x81 if text else 0x82, data, key))
    return frames


def _read_both(
    buf: bytes,
    key: bytes | None,
    max_size: int | None,
    reset: bool = False,
    limit: int | None = None,
) -> tuple[object, ...]:
    outcomes: list[tuple[object, ...]] = []
    for read in (speedups.read_messages, read_messages_python):
        events: list[Event] = []
        extension = PerMessageDeflate(reset, False, 12, 12)
        try:
            stop = read(buf, 0, key is not None, max_size, limit, events, extension)
        except (ProtocolError, PayloadTooBig) as exc:
            cause = exc.__cause__
            outcomes.append(
                ("error", type(exc), str(exc), exc.code, type(cause), str(cause), events)
            )
        else:
            state = extension._decoder is None
            outcomes.append((stop, events, state))
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


@given(
    messages=st.lists(
        st.binary(max_size=2000) | st.text(max_size=500) | st.just(JSON), min_size=1, max_size=6
    ),
    key=st.none() | st.binary(min_size=4, max_size=4),
    max_size=st.none() | st.integers(min_value=0, max_value=2500),
    reset=st.booleans(),
    limit=st.none() | st.integers(min_value=1, max_value=6),
    corrupt=st.none() | st.integers(min_value=0),
)
@settings(max_examples=300)
def test_read_messages_decompresses_as_decode_message(  # noqa: PLR0917 (hypothesis fills them)
    messages: list[bytes | str],
    key: bytes | None,
    max_size: int | None,
    reset: bool,
    limit: int | None,
    corrupt: int | None,
) -> None:
    buf = bytearray(b"".join(_stream_frames(messages, key, reset=reset)))
    if corrupt is not None:
        buf[corrupt % len(buf)] ^= 0x5A
    _read_both(bytes(buf), key, max_size, reset, limit)


def test_read_messages_decompresses_at_the_limit() -> None:
    frames = _stream_frames([JSON, JSON, b"\x00", b"x" * 3000], None)
    for max_size in (0, 1, len(JSON) - 1, len(JSON), 2999, 3000):
        _read_both(b"".join(frames), None, max_size)


def test_read_messages_goes_on_after_a_stream_ends() -> None:
    # A sender may end its stream (BFINAL) and start afresh: the C path hands
    # the rest to _restart as decode_message does.
    encoder = zlib.compressobj(6, zlib.DEFLATED, -12)
    first = encoder.compress(JSON) + encoder.flush(zlib.Z_FINISH)
    again = zlib.compressobj(6, zlib.DEFLATED, -12)
    second = (again.compress(b"more") + again.flush(zlib.Z_SYNC_FLUSH))[:-4]
    priming = _stream_frames([b"prime"], KEY)
    for payload in (first, first + second):
        frame = build_frame_python(0xC2, payload, KEY)
        outcome = _read_both(priming[0] + frame, KEY, None)
        assert outcome[0] == len(priming[0]) + len(frame)
    assert _read_both(priming[0] + frame, KEY, 100)[0] == "error"


class Counting(PerMessageDeflate):
    """A subclass: its decode_message is called for every message, C path or not."""

    calls = 0

    def decode_message(
        self, data: bytes | bytearray | memoryview, key: bytes | None, max_size: int | None
    ) -> bytes:
        Counting.calls += 1
        return super().decode_message(data, key, max_size)


def test_read_messages_calls_a_subclass_decode_message() -> None:
    buf = b"".join(_stream_frames([JSON, b"two", "three"], None))
    events: list[Event] = []
    Counting.calls = 0
    stop = speedups.read_messages(buf, 0, False, None, None, events, Counting(False, False, 12, 12))
    assert stop == len(buf)
    assert Counting.calls == 3
    assert events == [Message(JSON), Message(b"two"), Message("three")]


# Whole compressed messages sent in one C call (encode_whole), against the
# Python twin, which calls encode_message.


@given(
    messages=st.lists(st.binary(max_size=2000) | st.just(JSON), min_size=1, max_size=5),
    key=st.none() | st.binary(min_size=4, max_size=4),
    reset=st.booleans(),
    first=st.sampled_from([0x81, 0x82, 0x01, 0x02]),
)
@settings(max_examples=100)
def test_encode_whole_matches_encode_message(
    messages: list[bytes], key: bytes | None, reset: bool, first: int
) -> None:
    ours = PerMessageDeflate(False, reset, 12, 12, {"memLevel": 5})
    theirs = PerMessageDeflate(False, reset, 12, 12, {"memLevel": 5})
    for message in messages:
        frame = speedups.encode_whole(ours, first, message, key)
        assert frame == encode_whole_python(theirs, first, message, key)
        assert (ours._encoder is None) is reset


class CountingSends(PerMessageDeflate):
    """A subclass: its encode_message is called for every message."""

    calls = 0

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        CountingSends.calls += 1
        return super().encode_message(first, data, key)


def test_encode_whole_calls_a_subclass_encode_message() -> None:
    CountingSends.calls = 0
    extension = CountingSends(False, False, 12, 12)
    receiver = PerMessageDeflate(False, False, 12, 12)
    for message in (JSON, b"two"):
        frame = speedups.encode_whole(extension, 0x82, message, None)
        assert receiver.decode_message(frame[2 if len(frame) < 128 else 4 :], None, None) == message
    assert CountingSends.calls == 2


def test_encode_whole_refuses_bad_arguments() -> None:
    extension = PerMessageDeflate(False, False, 12, 12)
    # The accelerator's compressor, also when the suite runs without it.
    extension._encoder = speedups.Deflater(-1, -12, 8, 0)
    with pytest.raises(TypeError, match="4 arguments"):
        speedups.encode_whole(extension, 0x81, b"")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="out of range"):
        speedups.encode_whole(extension, 256, b"", None)
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.encode_whole(extension, 0x81, b"", b"abc")
    with pytest.raises(TypeError):
        speedups.encode_whole(extension, "x", b"", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        speedups.encode_whole(extension, 0x81, "text", None)  # type: ignore[arg-type]
