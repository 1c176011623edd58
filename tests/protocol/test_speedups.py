"""The C accelerator gives exactly what the pure-Python code gives."""

from __future__ import annotations

import array
import os
import zlib
from typing import Any, ClassVar

import pytest
from fuzz.handshake import check_c_readers
from hypothesis import given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.protocol.connection_helpers import deflated
from tests.scripts import script_output
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.extensions.base import Extension
from tether.extensions.permessage_deflate import (
    PerMessageDeflate,
    deflate_frame_python,
    inflate_frame_python,
)
from tether.protocol.events import Event, Message
from tether.protocol.frames import (
    OPCODES,
    Frame,
    FrameHeader,
    Opcode,
    build_frame_python,
    read_header_python,
    read_messages_python,
)
from tether.protocol.headers import _pack_python
from tether.protocol.http11 import _SHARED, Limits
from tether.protocol.masking import apply_mask_python, fill_payload_python, new_payload_python

# The module is imported directly: these tests compare it with the fallback
# whichever of the two the rest of the suite runs on.


def _c_header(
    buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int
) -> FrameHeader | str | None:
    try:
        header: FrameHeader | None = speedups.parse_header(
            FrameHeader, buf, pos, expect_mask, allowed_rsv
        )
    except ProtocolError as exc:
        return f"{exc.code} {exc}"
    return header


def _python_header(
    buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int
) -> FrameHeader | str | None:
    try:
        return read_header_python(buf, pos, expect_mask, allowed_rsv)
    except ProtocolError as exc:
        return f"{exc.code} {exc}"


@given(data=st.binary(max_size=5000), mask=st.binary(min_size=4, max_size=4))
@settings(max_examples=300)
def test_apply_mask_matches(data: bytes, mask: bytes) -> None:
    assert speedups.apply_mask(data, mask) == apply_mask_python(data, mask)
    assert speedups.apply_mask(bytearray(data), mask) == apply_mask_python(data, mask)
    assert speedups.apply_mask(memoryview(data), mask) == apply_mask_python(data, mask)


def test_apply_mask_large_and_odd_sizes() -> None:
    mask = b"\x01\x02\x03\x04"
    for size in (1, 3, 7, 8, 9, 15, 16, 17, 65535, 1 << 20):
        data = os.urandom(size)
        assert speedups.apply_mask(data, mask) == apply_mask_python(data, mask)


def test_apply_mask_rejects_bad_key() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.apply_mask(b"abc", b"abc")


@given(
    first=st.integers(min_value=0, max_value=0xFF),
    data=st.binary(max_size=300),
    key=st.none() | st.binary(min_size=4, max_size=4),
)
@settings(max_examples=500)
def test_build_frame_matches(first: int, data: bytes, key: bytes | None) -> None:
    assert speedups.build_frame(first, data, key) == build_frame_python(first, data, key)
    assert speedups.build_frame(first, memoryview(data), key) == build_frame_python(
        first, bytearray(data), key
    )


def test_build_frame_at_every_length_encoding() -> None:
    for size in (0, 125, 126, 127, 0xFFFF, 0x10000, 0x10001, 1 << 20):
        data = os.urandom(size)
        for key in (None, b"\x01\x02\x03\x04"):
            assert speedups.build_frame(0x82, data, key) == build_frame_python(0x82, data, key)


def test_build_frame_counts_bytes_of_wide_items() -> None:
    # A memoryview of 16-bit items has 3 items but 6 bytes: the header says 6.
    data = memoryview(array.array("H", [1, 2, 3]))
    for build in (speedups.build_frame, build_frame_python):
        frame = build(0x82, data, None)
        assert frame == b"\x82\x06" + data.tobytes()


def test_build_frame_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.build_frame(0x82, b"abc", b"abc")
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.build_frame(0x82, b"abc", "abcd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="range"):
        speedups.build_frame(0x100, b"abc", None)
    with pytest.raises(ValueError, match="range"):
        speedups.build_frame(-1, b"abc", None)


@given(
    buf=st.binary(max_size=16),
    pos=st.integers(min_value=0, max_value=4),
    expect_mask=st.booleans(),
    allowed_rsv=st.sampled_from([0, 0x40, 0x70]),
)
@settings(max_examples=2000)
def test_parse_header_matches(buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int) -> None:
    c = _c_header(buf, pos, expect_mask, allowed_rsv)
    python = _python_header(buf, pos, expect_mask, allowed_rsv)
    assert c == python
    if isinstance(c, FrameHeader):
        assert type(c) is FrameHeader
        assert c.size == python.size  # type: ignore[union-attr]


def test_parse_header_every_first_two_bytes() -> None:
    for first in range(256):
        for second in range(256):
            buf = bytes((first, second)) + bytes(12)
            for expect_mask in (False, True):
                assert _c_header(buf, 0, expect_mask, 0x40) == _python_header(
                    buf, 0, expect_mask, 0x40
                )


def test_parse_header_rejects_negative_position() -> None:
    with pytest.raises(ValueError, match="negative"):
        speedups.parse_header(FrameHeader, b"\x81\x00", -1, False, 0)


def _both_read(
    buf: bytes | bytearray | memoryview,
    pos: int,
    expect_mask: bool,
    max_size: int | None,
    limit: int | None,
) -> tuple[int, list[Event]]:
    """Read messages with both versions; return what they agree on."""
    c_events: list[Event] = []
    python_events: list[Event] = []
    c_pos = speedups.read_messages(buf, pos, expect_mask, max_size, limit, c_events, None)
    python_pos = read_messages_python(buf, pos, expect_mask, max_size, limit, python_events, None)
    assert (c_pos, c_events) == (python_pos, python_events)
    assert all(type(event) is Message for event in c_events)
    return c_pos, c_events


_frames = st.tuples(
    st.sampled_from([0x81, 0x82, 0x01, 0x02, 0x80, 0x89, 0x8A, 0x88, 0xC1, 0x92, 0x83]),
    st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)),
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
)


@given(
    frames=st.lists(_frames, max_size=6),
    cut_pos=st.tuples(st.integers(min_value=0, max_value=2000), st.integers(0, 3)),
    expect_mask=st.booleans(),
    max_size=st.one_of(st.none(), st.integers(min_value=0, max_value=300)),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
)
@settings(max_examples=1000)
def test_read_messages_matches(
    frames: list[tuple[int, bytes, bytes | None]],
    cut_pos: tuple[int, int],
    expect_mask: bool,
    max_size: int | None,
    limit: int | None,
) -> None:
    cut, pos = cut_pos
    buf = bytes(pos) + b"".join(build_frame_python(*frame) for frame in frames)
    # Cut short at any point, as a read can end anywhere.
    buf = buf[: len(buf) - cut % (len(buf) + 1)]
    for view in (buf, bytearray(buf), memoryview(b"x" + buf)[1:]):
        _both_read(view, min(pos, len(buf)), expect_mask, max_size, limit)


def test_read_messages_reads_plain_whole_frames() -> None:
    key = b"\x01\x02\x03\x04"
    text = "é" * 200  # 400 bytes: over the C version's stack buffer when masked
    buf = (
        build_frame_python(0x81, text.encode(), key)
        + build_frame_python(0x82, b"\x00" * 70000, key)
        + build_frame_python(0x81, b"", key)
    )
    assert _both_read(buf, 0, True, None, None) == (
        len(buf),
        [Message(text), Message(b"\x00" * 70000), Message("")],
    )


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (build_frame_python(0x01, b"a", None), "not final"),
        (build_frame_python(0x80, b"a", None), "continuation"),
        (build_frame_python(0xC2, b"a", None), "RSV1"),
        (build_frame_python(0x89, b"a", None), "ping"),
        (build_frame_python(0x83, b"a", None), "reserved opcode"),
        (build_frame_python(0x82, b"a", b"abcd"), "masked at a client"),
        (build_frame_python(0x81, b"\xff", None), "invalid UTF-8"),
        (build_frame_python(0x81, b"\xed\xa0\x80", None), "encoded surrogate"),
        (build_frame_python(0x82, b"a" * 11, None), "over max_size"),
        (build_frame_python(0x82, b"a" * 300, None)[:-1], "incomplete"),
        (b"\x82\x7f\x80" + bytes(7), "64-bit length with its top bit"),
        (b"\x82", "one byte"),
    ],
)
def test_read_messages_stops_at_what_it_does_not_take(frame: bytes, reason: str) -> None:
    good = build_frame_python(0x82, b"ok", None)
    pos, events = _both_read(good + frame + good, 0, False, 10, None)
    assert (pos, events) == (len(good), [Message(b"ok")]), reason


def test_read_messages_stops_at_the_limit() -> None:
    frame = build_frame_python(0x81, b"hi", None)
    assert _both_read(frame * 3, 0, False, None, 2) == (2 * len(frame), [Message("hi")] * 2)
    assert _both_read(frame * 3, 0, False, None, 0) == (0, [])


@pytest.mark.parametrize("header_type", [int, dict, "not a type", None])
def test_parse_header_takes_only_a_tuple_type(header_type: Any) -> None:
    # It fills six items of what header_type allocates: anything but a tuple
    # type was written past or through (int made a corrupt number).
    with pytest.raises(TypeError, match="tuple type"):
        speedups.parse_header(header_type, b"\x81\x00", 0, False, 0x70)


def test_read_messages_rejects_bad_arguments() -> None:
    for pos, max_size, limit in [(-1, None, None), (0, -1, None), (0, None, -1)]:
        with pytest.raises(ValueError, match="negative"):
            speedups.read_messages(b"", pos, False, max_size, limit, [], None)
    with pytest.raises(TypeError, match="list"):
        speedups.read_messages(b"", 0, False, None, None, (), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="7 arguments"):
        speedups.read_messages(b"", 0, False, None, None, [])  # type: ignore[call-arg]


@given(
    size=st.integers(0, 600),
    writes=st.lists(
        st.tuples(st.binary(max_size=300), st.none() | st.binary(min_size=4, max_size=4)),
        max_size=5,
    ),
)
def test_fill_payload_matches(size: int, writes: list[tuple[bytes, bytes | None]]) -> None:
    total = sum(len(data) for data, _ in writes)
    size = max(size, total)
    in_c, in_python = speedups.new_payload(size), new_payload_python(size)
    target = bytearray(size)
    assert isinstance(in_c, bytes)
    assert len(in_c) == len(in_python) == size
    at = 0
    for data, key in writes:
        speedups.fill_payload(in_c, at, memoryview(data), key)
        speedups.fill_payload(target, at, data, key)
        fill_payload_python(in_python, at, data, key)
        at += len(data)
    assert in_c[:at] == target[:at] == in_python[:at]


@pytest.mark.parametrize(
    ("at", "data", "key", "message"),
    [
        (1, b"abcd", None, "does not fit"),
        (-1, b"", None, "does not fit"),
        (0, b"ab", b"xyz", "4 bytes or None"),
    ],
)
def test_fill_payload_refuses_what_does_not_fit(
    at: int, data: bytes, key: bytes | None, message: str
) -> None:
    target = bytearray(4)
    with pytest.raises(ValueError, match=message):
        speedups.fill_payload(target, at, data, key)
    with pytest.raises(ValueError, match=message):
        fill_payload_python(target, at, data, key)
    assert target == bytearray(4)


def test_fill_payload_targets() -> None:
    # The C version writes into bytes (those new_payload made) and bytearrays;
    # the Python version into bytearrays only, which its new_payload makes.
    with pytest.raises(TypeError, match="bytes or bytearray"):
        speedups.fill_payload(memoryview(bytearray(4)), 0, b"", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytearray"):
        fill_payload_python(b"abcd", 0, b"", None)


def test_payload_functions_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least 0"):
        speedups.new_payload(-1)
    with pytest.raises(ValueError, match="at least 0"):
        new_payload_python(-1)
    with pytest.raises(TypeError):
        speedups.new_payload("8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="4 arguments"):
        speedups.fill_payload(bytearray(1), 0, b"")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.fill_payload(bytearray(1), "0", b"", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        speedups.fill_payload(bytearray(1), 0, "x", None)  # type: ignore[arg-type]


def test_environment_variable_selects_the_fallback() -> None:
    code = (
        "from tether.protocol import masking, frames, speedups\n"
        "from tether.extensions import permessage_deflate as pmd\n"
        "print(speedups.speedups is None, masking.apply_mask is masking.apply_mask_python,"
        " frames.read_header is frames.read_header_python,"
        " frames.read_messages is frames.read_messages_python,"
        " frames.new_frame is frames.Frame, frames.new_message is frames.Message,"
        " pmd.deflate_frame is pmd.deflate_frame_python,"
        " pmd.inflate_frame is pmd.inflate_frame_python,"
        " frames.masking_key is frames.masking_key_python)"
    )
    assert script_output(code, accelerated=False) == ["True"] * 9


@given(
    opcode=st.sampled_from(list(Opcode)),
    data=st.binary(max_size=64),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
)
def test_new_frame_matches_the_dataclass(
    opcode: Opcode, data: bytes, flags: tuple[bool, bool, bool, bool]
) -> None:
    made = speedups.new_frame(Frame, opcode, data, *flags)
    built = Frame(opcode, data, *flags)
    assert type(made) is Frame
    assert made == built
    assert hash(made) == hash(built)
    assert made.opcode is opcode
    assert made.data is data
    assert made.serialize(mask=False) == built.serialize(mask=False)


def test_new_frame_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="7 arguments"):
        speedups.new_frame(Frame, Opcode.TEXT, b"")  # type: ignore[call-arg]

    class NoSlots:
        pass

    with pytest.raises(AttributeError):
        speedups.new_frame(NoSlots, Opcode.TEXT, b"", True, False, False, False)
    with pytest.raises(TypeError, match="needs the Frame type"):
        speedups.new_frame(None, Opcode.TEXT, b"", True, False, False, False)  # type: ignore[arg-type]
    # After a refusal, frames are still made right.
    made = speedups.new_frame(Frame, Opcode.PING, b"p", True, False, False, False)
    assert made == Frame(Opcode.PING, b"p")


def test_opcodes_by_number() -> None:
    assert sorted(OPCODES) == [0, 1, 2, 8, 9, 10]
    for number, op in OPCODES.items():
        assert op is Opcode(number)


@given(data=st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_make_message_matches_the_dataclass(data: str | bytes) -> None:
    made = speedups.make_message(data)
    assert type(made) is Message
    assert made == Message(data)
    assert made.data is data


# The framing around zlib of permessage-deflate: deflate_frame and inflate_frame.


@given(
    messages=st.lists(st.binary(max_size=3000) | st.just(b"ab" * 700), max_size=4),
    level=st.integers(min_value=0, max_value=9),
    key=st.none() | st.binary(min_size=4, max_size=4),
    first=st.integers(min_value=0, max_value=0xFF),
)
@settings(max_examples=300)
def test_deflate_frame_matches(
    messages: list[bytes], level: int, key: bytes | None, first: int
) -> None:
    encoders = [zlib.compressobj(level, zlib.DEFLATED, -9) for _ in range(2)]
    for message in messages:
        expected = deflate_frame_python(encoders[1], first, message, key)
        assert speedups.deflate_frame(encoders[0], first, message, key) == expected


def test_deflate_frame_at_every_length_encoding() -> None:
    # Stored blocks (level 0) make the payload as long as asked.
    for size in (0, 1, 120, 126, 0xFFFF - 10, 0x10000, 100_000):
        data = os.urandom(size)
        for key in (None, b"\x01\x02\x03\x04"):
            encoders = [zlib.compressobj(0, zlib.DEFLATED, -15) for _ in range(2)]
            frame = speedups.deflate_frame(encoders[0], 0xC2, bytearray(data), key)
            assert frame == deflate_frame_python(encoders[1], 0xC2, data, key)


@given(
    messages=st.lists(st.binary(max_size=2000), min_size=1, max_size=4),
    key=st.none() | st.binary(min_size=4, max_size=4),
    cut=st.integers(min_value=0, max_value=2000),
    max_length=st.integers(min_value=0, max_value=3000),
)
@settings(max_examples=300)
def test_inflate_frame_matches(
    messages: list[bytes], key: bytes | None, cut: int, max_length: int
) -> None:
    wires = deflated(zlib.compressobj(6, zlib.DEFLATED, -15), messages, key)
    assert_inflates_alike(
        zlib.decompressobj(wbits=-15), -15, wires, key, cut=cut, max_length=max_length
    )


def assert_inflates_alike(
    decoder: Any, wbits: int, wires: list[bytes], key: bytes | None, *, cut: int, max_length: int
) -> None:
    """The C inflate_frame on ``decoder`` and the twin on a zlib decompressor agree.

    Each payload of ``wires`` is inflated in two parts, cut near ``cut``,
    with at most ``max_length`` bytes out; the decompressors' ends of stream
    and, for a zlib ``decoder``, their input left over must agree too. The
    comparison stops at the first payload whose output is cut short.
    """
    twin = zlib.decompressobj(wbits)
    for wire in wires:
        cut = min(cut, len(wire)) & ~3  # The key stays in step at a multiple of 4.
        for part, tail in ((wire[:cut], False), (wire[cut:], True)):
            ours = speedups.inflate_frame(decoder, part, key, tail, max_length)
            assert ours == inflate_frame_python(twin, part, key, tail, max_length)
            assert decoder.eof == twin.eof
            if hasattr(decoder, "unconsumed_tail"):
                assert decoder.unconsumed_tail == twin.unconsumed_tail
            if twin.unconsumed_tail:
                # speedups.Inflater drops input beyond max_length (its
                # callers fail the connection then): the streams part here.
                return


@given(data=st.binary(max_size=64), tail=st.booleans())
def test_inflate_frame_reports_corrupt_data_alike(data: bytes, tail: bool) -> None:
    outcomes: list[tuple[bytes | str, bytes]] = []
    for inflate in (speedups.inflate_frame, inflate_frame_python):
        decoder = zlib.decompressobj(wbits=-15)
        try:
            outcomes.append((inflate(decoder, data, None, tail, 0), decoder.unused_data))
        except zlib.error as exc:
            outcomes.append((str(exc), b""))
    assert outcomes[0] == outcomes[1]


class NotZlib:
    """Answers like a zlib object, but with text: the accelerator refuses it."""

    def compress(self, data: bytes) -> str:
        return "compressed"

    def flush(self, mode: int) -> str:
        return "flushed"

    def decompress(self, data: bytes, max_length: int) -> str:
        return "decompressed"


def test_deflate_and_inflate_frame_reject_bad_arguments() -> None:
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    decoder = zlib.decompressobj(wbits=-15)
    with pytest.raises(TypeError, match="4 arguments"):
        speedups.deflate_frame(encoder, 0xC1, b"")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.deflate_frame(encoder, "x", b"", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        speedups.deflate_frame(encoder, 256, b"", None)
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.deflate_frame(encoder, 0xC1, b"", b"abc")
    with pytest.raises(TypeError):
        speedups.deflate_frame(encoder, 0xC1, "text", None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        speedups.deflate_frame(object(), 0xC1, b"x", None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        speedups.deflate_frame(object(), 0xC1, b"", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="did not return bytes"):
        speedups.deflate_frame(NotZlib(), 0xC1, b"x", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="5 arguments"):
        speedups.inflate_frame(decoder, b"", None, True)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.inflate_frame(decoder, b"", b"abcde", True, 0)
    with pytest.raises(TypeError):
        speedups.inflate_frame(decoder, "text", None, True, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="did not return bytes"):
        speedups.inflate_frame(NotZlib(), b"x", None, False, 0)  # type: ignore[arg-type]


class Falsy:
    def __bool__(self) -> bool:
        raise RuntimeError("no truth")


def test_inflate_frame_propagates_a_failing_truth_test() -> None:
    decoder = zlib.decompressobj(wbits=-15)
    with pytest.raises(RuntimeError, match="no truth"):
        speedups.inflate_frame(decoder, b"", None, Falsy(), 0)  # type: ignore[arg-type]


def _compressed_frame(data: bytes, *, text: bool, key: bytes | None) -> bytes:
    encoder = zlib.compressobj(6, zlib.DEFLATED, -15)
    return deflate_frame_python(encoder, 0xC1 if text else 0xC2, data, key)


def _both_read_whole(
    buf: bytes, expect_mask: bool, max_size: int | None, limit: int | None
) -> tuple[object, ...]:
    """Read with both versions and a fresh permessage-deflate each; what they agree on."""
    outcomes: list[tuple[object, ...]] = []
    for read in (speedups.read_messages, read_messages_python):
        events: list[Event] = []
        try:
            stop = read(buf, 0, expect_mask, max_size, limit, events, PerMessageDeflate(*PMD))
        except (ProtocolError, PayloadTooBig) as exc:
            cause = type(exc.__cause__)
            outcomes.append(("error", type(exc), str(exc), exc.code, cause, events))
        else:
            outcomes.append((stop, events))
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


PMD = (False, False, 15, 15)


@pytest.mark.parametrize("key", [None, b"\x37\xfa\x21\x3d"])
def test_read_messages_takes_compressed_messages(key: bytes | None) -> None:
    text = _compressed_frame("héllo".encode(), text=True, key=key)
    binary = _compressed_frame(b"\x00\x01", text=False, key=key)
    plain = build_frame_python(0x82, b"plain", key)
    buf = text + plain + binary
    assert _both_read_whole(buf, key is not None, None, None) == (
        len(buf),
        [Message("héllo"), Message(b"plain"), Message(b"\x00\x01")],
    )
    assert _both_read_whole(buf, key is not None, None, 1) == (len(text), [Message("héllo")])
    # Without an extension, a frame with RSV1 is left to the general path.
    assert _both_read(buf, 0, key is not None, None, None) == (0, [])


def test_read_messages_compressed_limits() -> None:
    data = os.urandom(300)
    frame = _compressed_frame(data, text=False, key=None)
    assert _both_read_whole(frame, False, 300, None) == (len(frame), [Message(data)])
    # Over max_size once inflated: decode_message raises.
    assert _both_read_whole(frame, False, 299, None)[:3] == (
        "error",
        PayloadTooBig,
        "frame exceeds limit of 299 bytes",
    )
    # Over the bound of a compressed frame: left to the general path, unread.
    assert _both_read_whole(frame, False, 100, None) == (0, [])


def test_read_messages_compressed_invalid_utf8_fails_1007() -> None:
    frame = _compressed_frame(b"\xff\xfe", text=True, key=None)
    outcome = _both_read_whole(build_frame_python(0x82, b"ok", None) + frame, False, None, None)
    assert outcome == (
        "error",
        ProtocolError,
        "invalid UTF-8 in text message",
        1007,
        UnicodeDecodeError,
        [Message(b"ok")],
    )


class Inflating(Extension):
    """A whole-message extension whose decode_message ignores max_size, or returns text."""

    name: ClassVar[str] = "x-inflating"
    rsv_mask: ClassVar[int | None] = 0x40
    whole_messages: ClassVar[bool] = True

    def __init__(self, result: Any) -> None:
        self.result = result

    def decode_message(
        self, data: bytes | bytearray | memoryview, key: bytes | None, max_size: int | None
    ) -> bytes:
        result: bytes = self.result
        return result


def test_read_messages_checks_what_decode_message_returns() -> None:
    frame = build_frame_python(0xC2, b"x", None)
    for read in (speedups.read_messages, read_messages_python):
        with pytest.raises(PayloadTooBig, match="frame with 11 bytes exceeds limit of 10 bytes"):
            read(frame, 0, False, 10, None, [], Inflating(b"y" * 11))
    with pytest.raises(TypeError, match="did not return bytes"):
        speedups.read_messages(frame, 0, False, None, None, [], Inflating("text"))


# The heads of the opening handshake, read whole by the C readers: valid heads
# and hostile ones, built from parts the Python parser treats differently.

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAMES = st.one_of(
    st.sampled_from(
        [
            "Host",
            "host",
            "HOST",
            "Content-Length",
            "content-length",
            "Transfer-Encoding",
            "transfer-encoding",
            "Upgrade",
            "upgrade",
            "Sec-WebSocket-Key",
            "sec-websocket-key",
        ]
    ),
    st.text(alphabet=_TCHAR, min_size=1, max_size=12),
).map(str.encode)
_VALUES = st.one_of(
    st.sampled_from(
        [
            b"websocket",
            b"Upgrade",
            b"13",
            b"0",
            b"00",
            b"1",
            b"chunked",
            b"example.com",
            b"example.com:8080",
            b"[::1]:443",
            b"[v1.fe80::1%25eth0]",
            b"a%2Fb",
            b"a%2",
            b"a%zz",
            b"[::1",
            b"[]",
            b"[::1]x",
            b":80",
            b"host:8x",
            b"",
            b"caf\xe9",
        ]
    ),
    st.binary(max_size=16).filter(lambda value: b"\n" not in value),
    st.binary(max_size=16),
)
_TARGETS = st.sampled_from(
    [b"/", b"/chat?room=1", b"/a%20b", b"http://example.com/x", b"*", b"", b"/a b", b"/\x7f"]
)


_NOT_VALUE_BYTES = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_VALID_HOSTS = [b"example.com", b"example.com:8080", b"[::1]:443", b"a%2Fb", b"", b"h:"]
_VALID_VALUES = st.one_of(
    st.sampled_from([b"websocket", b"Upgrade", b"13", b"caf\xe9", b"a, b; c=d", b""]),
    st.binary(max_size=16).map(lambda value: value.translate(None, _NOT_VALUE_BYTES)),
)


@st.composite
def _heads(draw: st.DrawFn, request: bool) -> bytes:
    """A head: valid half the time, and otherwise valid or not, or hostile."""
    valid = draw(st.booleans())
    if request:
        if valid:
            start = b"GET " + draw(st.sampled_from([b"/", b"/chat?room=1", b"/a%20b"]))
            start += b" HTTP/1.1"
        else:
            method = draw(st.sampled_from([b"GET", b"GET", b"GET", b"POST", b"G(T", b""]))
            version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"http/1.1"]))
            start = method + b" " + draw(_TARGETS) + b" " + version
    else:
        version = b"HTTP/1.1"
        if not valid:
            version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2"]))
        code = draw(st.sampled_from([b"101", b"101", b"200", b"204", b"404", b"100", b"099"]))
        reason = draw(st.sampled_from([b" Switching Protocols", b"", b" ", b"x", b" \xe9t\xe9"]))
        start = version + b" " + code + reason
    lines = [start]
    if valid:
        lines.append(b"Host: " + draw(st.sampled_from(_VALID_HOSTS)))
        fields = st.tuples(
            st.text(alphabet=_TCHAR, min_size=1, max_size=12).map(str.encode),
            st.sampled_from([b":", b": ", b":\t "]),
            _VALID_VALUES,
        )
    else:
        fields = st.tuples(_NAMES, st.sampled_from([b":", b": ", b":\t ", b" :", b""]), _VALUES)
    for name, separator, value in draw(st.lists(fields, max_size=8)):
        lines.append(name + separator + value + draw(st.sampled_from([b"", b"", b" ", b"\t"])))
    if not valid and draw(st.booleans()):
        # Something hostile: obsolete line folding, a bare LF or CR, a byte
        # changed, a line repeated.
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        change = draw(st.integers(0, 4))
        if change == 0:
            lines.insert(index + 1, b" folded")
        elif change == 1:
            lines[index] = line + b"\n" + line
        elif change == 2:
            lines[index] = line + b"\r"
        elif change == 3 and line:
            at = draw(st.integers(0, len(line) - 1))
            lines[index] = line[:at] + bytes([draw(st.integers(0, 255))]) + line[at + 1 :]
        else:
            lines.append(line)
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    if not valid:
        head = head[: draw(st.sampled_from([None, None, None, len(head) - 1, len(head) // 2]))]
    return head + draw(st.sampled_from([b"", b"\x81\x05Hello", b"\r\n"]))


# The defaults half the time, so that most heads are read; small limits
# otherwise, so that each is met, passed and met exactly.
_LIMITS = st.one_of(
    st.just(Limits()),
    st.builds(
        Limits,
        max_line=st.sampled_from([0, 16, 24, 40, 8192, 10**30]),
        max_headers=st.sampled_from([0, 1, 3, 128]),
        max_size=st.sampled_from([0, 40, 80, 160, 65536, 10**30]),
        max_body=st.sampled_from([0, 3, 1024]),
    ),
)


@given(head=_heads(True), limits=_LIMITS, eof=st.booleans())
@settings(max_examples=400)
def test_read_request_head_matches(head: bytes, limits: Limits, eof: bool) -> None:
    check_c_readers(0, head, eof, limits)


@given(head=_heads(False), limits=_LIMITS, eof=st.booleans())
@settings(max_examples=300)
def test_read_response_head_matches(head: bytes, limits: Limits, eof: bool) -> None:
    check_c_readers(1, head, eof, limits)


def test_read_request_head_usual() -> None:
    request = (
        b"GET /chat?x=%20 HTTP/1.1\r\nhost: [::1]:8000\r\nupgrade: websocket\r\n"
        b"Connection:Upgrade\r\nContent-Length: 0\r\nX-Empty:\r\nX-Latin: \xe9t\xe9 \t\r\n\r\n"
    )
    head = speedups.read_request_head(request + b"\x81", 8192, 128, 65536, _SHARED)
    assert head is not None
    path, fields, end = head
    assert path == "/chat?x=%20"
    assert fields == [
        ("host", "[::1]:8000"),
        ("upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Content-Length", "0"),
        ("X-Empty", ""),
        ("X-Latin", "\xe9t\xe9"),
    ]
    assert end == len(request)
    # The strings most handshakes carry are shared, not copies.
    assert fields[1][0] is _SHARED[_SHARED.index("upgrade")]
    assert fields[1][1] is _SHARED[_SHARED.index("websocket")]


def test_read_response_head_usual() -> None:
    response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    assert speedups.read_response_head(response, 8192, 128, 65536, _SHARED, False) == (
        101,
        "Switching Protocols",
        [("Upgrade", "websocket")],
        len(response),
    )
    proxied = b"HTTP/1.0 200\r\n\r\n"
    assert speedups.read_response_head(proxied, 8192, 128, 65536, _SHARED, False) is None
    assert speedups.read_response_head(proxied, 8192, 128, 65536, _SHARED, True) == (
        200,
        "",
        [],
        len(proxied),
    )


def test_read_head_limits() -> None:
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    # Limits past any buffer are no limits; the head must fit within max_size.
    assert speedups.read_request_head(request, 10**30, 10**30, 10**30, _SHARED) is not None
    assert speedups.read_request_head(request, 14, 1, len(request), _SHARED) is not None
    assert speedups.read_request_head(request, 13, 1, len(request), _SHARED) is None
    assert speedups.read_request_head(request, 14, 0, len(request), _SHARED) is None
    assert speedups.read_request_head(request, 14, 1, len(request) - 1, _SHARED) is None
    with pytest.raises(ValueError, match="positive"):
        speedups.read_request_head(request, -1, 1, 100, _SHARED)
    with pytest.raises(ValueError, match="positive"):
        speedups.read_request_head(request, 8192, -(10**30), 100, _SHARED)
    with pytest.raises(TypeError):
        speedups.read_request_head(request, "8192", 1, 100, _SHARED)  # type: ignore[arg-type]


def test_read_head_bad_arguments() -> None:
    request = b"GET / HTTP/1.1\r\n\r\n"
    with pytest.raises(TypeError, match="tuple of str"):
        speedups.read_request_head(request, 8192, 128, 65536, {"Host": "Host"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="latin-1"):
        speedups.read_request_head(request, 8192, 128, 65536, ("Host", "\u2603"))
    with pytest.raises(TypeError, match="5 arguments"):
        speedups.read_request_head(request, 8192, 128, 65536)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="6 arguments"):
        speedups.read_response_head(request, 8192, 128, 65536, _SHARED)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.read_request_head("GET", 8192, 128, 65536, _SHARED)  # type: ignore[arg-type]
    # Another tuple of shared strings replaces the first.
    head = speedups.read_request_head(b"GET / HTTP/1.1\r\nA: b\r\n\r\n", 99, 9, 99, ("b",))
    assert head is not None
    assert head[1] == [("A", "b")]
    assert speedups.read_request_head(request, 8192, 128, 65536, _SHARED) == ("/", [], len(request))


_SHRINKING_CONNECTIONS = """
import tether._speedups as speedups

class Protocol:
    state = "closed"

class Shrinking:
    # Reading its engine empties the list write_shared was given.
    @property
    def protocol(self):
        del connections[1:]
        return Protocol()

class Closed:
    protocol = Protocol()

connections = [Shrinking(), *(Closed() for _ in range(100))]
sent, rest, frame = speedups.write_shared(
    connections, lambda: b"", "open", (), (), None
)
print(sent, rest, frame, len(connections))
"""


def test_write_shared_keeps_the_connections_it_was_given() -> None:
    # A connection list changed by code that write_shared runs (attribute
    # lookups, the transport's methods) must not leave it reading freed
    # memory: Python's debug allocator makes such a read crash.
    output = script_output(_SHRINKING_CONNECTIONS, debug_allocator=True)
    assert output == ["0", "[]", "None", "1"]


@pytest.mark.parametrize(
    "fields",
    [
        [("A", "1"), ("b", ""), ("C", "\t x\xff ")],
        [("A", "")],
        [("Host", "example.com")] * 3,
        [],
        [("A", "1\n2"), ("B", "3")],
        [("A", "1"), ("B\n", "3")],
        [("A", "1\r"), ("B", "\r2")],
        [(f"X-Name-{i}", "v" * i) for i in range(60)],
        [("A", "\n")],
    ],
)
def test_pack_fields_matches(fields: list[tuple[str, str]]) -> None:
    assert speedups.pack_fields(fields) == _pack_python(fields)


def test_pack_fields_refuses_what_it_cannot_pack() -> None:
    # Not a list of pairs of str, or a character past U+00FF: None, for the
    # fields to stay as they are (checked fields are never any of these).
    pack = speedups.pack_fields
    assert pack(("A", "1")) is None  # type: ignore[arg-type]
    assert pack([("A", "1", "2")]) is None  # type: ignore[list-item]
    assert pack([["A", "1"]]) is None  # type: ignore[list-item]
    assert pack([("A", b"1")]) is None  # type: ignore[list-item]
    assert pack([("A", "\u20ac")]) is None
