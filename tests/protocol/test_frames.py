"""Tests for the frame codec of RFC 6455 section 5 (tether.protocol.frames)."""

from __future__ import annotations

import concurrent.futures
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.exceptions import PayloadTooBig, ProtocolError
from tether.protocol import frames
from tether.protocol.frames import (
    CONTROL_OPCODES,
    DATA_OPCODES,
    Frame,
    FrameHeader,
    Opcode,
    parse_frame,
    parse_header,
    serialize_frame,
)
from tether.protocol.masking import apply_mask
from tether.protocol.speedups import speedups

RFC_KEY = bytes.fromhex("37fa213d")

# What the codec calls for masking keys, patched to control or observe them.
KEYS = "tether.protocol.frames.masking_key"
URANDOM = "tether.protocol.frames.os.urandom"

RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
ALL_RSV = RSV1 | RSV2 | RSV3

KNOWN_OPCODES = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
RESERVED_OPCODES = [op for op in range(16) if op not in KNOWN_OPCODES]

# Payload lengths on either side of the 7-, 16- and 64-bit length encodings.
BOUNDARY_LENGTHS = [0, 1, 124, 125, 126, 127, 65534, 65535, 65536, 65537]

Buffer = bytes | bytearray | memoryview


def payload_of(size: int, seed: int = 0) -> bytes:
    """Pseudo-random bytes, cheaper than drawing large payloads from hypothesis."""
    return random.Random(seed).randbytes(size)


def protocol_error(
    buf: Buffer, pos: int = 0, *, expect_mask: bool, allowed_rsv: int = 0
) -> ProtocolError:
    """Parse ``buf`` expecting a framing error, and check it fails with close code 1002.

    Both parsers must raise the same error.
    """
    with pytest.raises(ProtocolError) as frame_info:
        parse_frame(buf, pos, expect_mask=expect_mask, allowed_rsv=allowed_rsv)
    with pytest.raises(ProtocolError) as header_info:
        parse_header(buf, pos, expect_mask=expect_mask, allowed_rsv=allowed_rsv)
    error = header_info.value
    assert type(error) is ProtocolError
    assert type(frame_info.value) is ProtocolError
    assert error.code == 1002
    assert frame_info.value.code == 1002
    assert str(error) == str(frame_info.value)
    return error


class FixedKeys:
    """A stand-in for ``masking_key`` that hands out known keys and counts the calls."""

    def __init__(self, *keys: bytes) -> None:
        self.keys = list(keys)
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return self.keys.pop(0)


class RecordingKeys:
    """Wraps the real ``masking_key`` and records what it returned."""

    def __init__(self, real: Callable[[], bytes]) -> None:
        self.real = real
        self.results: list[bytes] = []

    def __call__(self) -> bytes:
        result = self.real()
        self.results.append(result)
        return result


class RecordingUrandom:
    """Wraps ``os.urandom`` and records what it returned."""

    def __init__(self, real: Callable[[int], bytes]) -> None:
        self.real = real
        self.results: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        result = self.real(size)
        self.results.append(result)
        return result


# --- RFC 6455 section 5.7 examples ---------------------------------------------------

HELLO_UNMASKED = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HEL_FRAGMENT = bytes.fromhex("010348656c")
LO_FRAGMENT = bytes.fromhex("80026c6f")
PING_UNMASKED = bytes.fromhex("890548656c6c6f")
PONG_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")
BINARY_256 = payload_of(256, seed=256)
BINARY_256_FRAME = bytes.fromhex("827e0100") + BINARY_256
BINARY_64K = payload_of(65536, seed=65536)
BINARY_64K_FRAME = bytes.fromhex("827f0000000000010000") + BINARY_64K

# (wire bytes, frame, masked, header size)
RFC_EXAMPLES = [
    pytest.param(HELLO_UNMASKED, Frame(Opcode.TEXT, b"Hello"), False, 2, id="unmasked-text"),
    pytest.param(HELLO_MASKED, Frame(Opcode.TEXT, b"Hello"), True, 6, id="masked-text"),
    pytest.param(HEL_FRAGMENT, Frame(Opcode.TEXT, b"Hel", fin=False), False, 2, id="fragment-1"),
    pytest.param(LO_FRAGMENT, Frame(Opcode.CONT, b"lo"), False, 2, id="fragment-2"),
    pytest.param(PING_UNMASKED, Frame(Opcode.PING, b"Hello"), False, 2, id="unmasked-ping"),
    pytest.param(PONG_MASKED, Frame(Opcode.PONG, b"Hello"), True, 6, id="masked-pong"),
    pytest.param(BINARY_256_FRAME, Frame(Opcode.BINARY, BINARY_256), False, 4, id="binary-256"),
    pytest.param(BINARY_64K_FRAME, Frame(Opcode.BINARY, BINARY_64K), False, 10, id="binary-64k"),
]


@pytest.mark.parametrize(("wire", "frame", "masked", "header_size"), RFC_EXAMPLES)
def test_5_7_example_parses(wire: bytes, frame: Frame, masked: bool, header_size: int) -> None:
    assert parse_frame(wire, expect_mask=masked) == (frame, len(wire))
    header = parse_header(wire, expect_mask=masked)
    assert header == FrameHeader(
        fin=frame.fin,
        rsv=0,
        opcode=frame.opcode,
        length=len(frame.data),
        mask=RFC_KEY if masked else None,
        size=header_size,
    )


@pytest.mark.parametrize(("wire", "frame", "masked", "header_size"), RFC_EXAMPLES)
def test_5_7_example_serializes(
    wire: bytes, frame: Frame, masked: bool, header_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = FixedKeys(RFC_KEY)
    monkeypatch.setattr(KEYS, keys)
    assert frame.serialize(mask=masked) == wire
    assert keys.calls == (1 if masked else 0)


@pytest.mark.parametrize(("wire", "frame", "masked", "header_size"), RFC_EXAMPLES)
def test_5_7_example_serialize_frame_with_real_key(
    wire: bytes, frame: Frame, masked: bool, header_size: int
) -> None:
    serialized = serialize_frame(frame.opcode, frame.data, fin=frame.fin, mask=masked)
    assert len(serialized) == len(wire)
    if masked:
        # Same header up to the key; the payload unmasks to the RFC's.
        key = serialized[header_size - 4 : header_size]
        assert serialized[: header_size - 4] == wire[: header_size - 4]
        assert apply_mask(serialized[header_size:], key) == frame.data
    else:
        assert serialized == wire


def test_5_7_fragmented_message_reassembles() -> None:
    buf = HEL_FRAGMENT + LO_FRAGMENT
    first = parse_frame(buf, expect_mask=False)
    assert first is not None
    frame, used = first
    second = parse_frame(buf, used, expect_mask=False)
    assert second is not None
    assert frame.data + second[0].data == b"Hello"
    assert used + second[1] == len(buf)


def test_5_7_masked_example_unmasks_to_hello() -> None:
    assert apply_mask(HELLO_MASKED[6:], RFC_KEY) == b"Hello"


# --- Section 5.1: masking direction ----------------------------------------------------


@pytest.mark.parametrize("wire", [HELLO_UNMASKED, PING_UNMASKED, BINARY_256_FRAME])
def test_5_1_server_must_close_on_unmasked_frame(wire: bytes) -> None:
    error = protocol_error(wire, expect_mask=True)
    assert "unmasked" in str(error)


@pytest.mark.parametrize("wire", [HELLO_MASKED, PONG_MASKED])
def test_5_1_client_must_close_on_masked_frame(wire: bytes) -> None:
    error = protocol_error(wire, expect_mask=False)
    assert "masking" in str(error)


def test_5_1_unmasked_frame_error_after_two_bytes() -> None:
    # The length field announces 70000 bytes; the error needs only the second byte.
    wire = serialize_frame(Opcode.BINARY, bytes(70000), mask=False)
    assert wire[1] == 127
    protocol_error(wire[:2], expect_mask=True)


def test_5_1_masked_frame_error_after_two_bytes() -> None:
    wire = serialize_frame(Opcode.BINARY, bytes(70000), mask=True)
    assert wire[1] == 0x80 | 127
    protocol_error(wire[:2], expect_mask=False)


# --- Section 5.2: base framing ------------------------------------------------------------


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_5_2_reserved_opcode_is_protocol_error(opcode: int) -> None:
    for second in (0x00, 0x80):
        wire = bytes((0x80 | opcode, second))
        error = protocol_error(wire, expect_mask=bool(second), allowed_rsv=ALL_RSV)
        assert f"{opcode:#x}" in str(error)


@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_5_2_reserved_opcode_fails_on_first_byte(opcode: int) -> None:
    protocol_error(bytes((0x80 | opcode,)), expect_mask=True)
    protocol_error(bytes((opcode,)), expect_mask=False)


@pytest.mark.parametrize("opcode", KNOWN_OPCODES)
def test_5_2_known_opcodes_parse(opcode: int) -> None:
    parsed = parse_frame(bytes((0x80 | opcode, 0)), expect_mask=False)
    assert parsed == (Frame(Opcode(opcode), b""), 2)
    assert isinstance(parsed[0].opcode, Opcode)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2, RSV1 | RSV3, RSV2 | RSV3, ALL_RSV])
def test_5_2_rsv_bits_without_extension_fail(rsv: int) -> None:
    wire = bytes((0x80 | rsv | Opcode.TEXT, 0))
    error = protocol_error(wire, expect_mask=False)
    assert f"{rsv >> 4:03b}" in str(error)
    # Already visible in the first byte.
    protocol_error(wire[:1], expect_mask=False)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3])
def test_5_2_rsv_bits_outside_negotiated_ones_fail(rsv: int) -> None:
    others = ALL_RSV & ~rsv
    wire = bytes((0x80 | rsv | Opcode.BINARY, 0))
    protocol_error(wire, expect_mask=False, allowed_rsv=others)
    parsed = parse_frame(wire, expect_mask=False, allowed_rsv=rsv)
    assert parsed is not None
    assert parsed[0].rsv == rsv


def test_5_2_rsv_bits_allowed_by_extension_parse() -> None:
    wire = bytes((0x80 | RSV1 | Opcode.TEXT, 0x85)) + RFC_KEY + apply_mask(b"Hello", RFC_KEY)
    parsed = parse_frame(wire, expect_mask=True, allowed_rsv=RSV1)
    assert parsed == (Frame(Opcode.TEXT, b"Hello", rsv1=True), len(wire))
    header = parse_header(wire, expect_mask=True, allowed_rsv=RSV1)
    assert header is not None
    assert header.rsv == RSV1


@pytest.mark.parametrize("top_byte", [0x80, 0x81, 0xFF])
def test_5_2_64bit_length_msb_must_be_zero(top_byte: int) -> None:
    wire = bytes((0x82, 127, top_byte)) + bytes(7)
    error = protocol_error(wire, expect_mask=False)
    assert "most significant bit" in str(error)
    # The error comes as soon as the byte holding the bit is there.
    protocol_error(wire[:3], expect_mask=False)
    protocol_error(bytes((0x82, 0x80 | 127, top_byte)), expect_mask=True)


def test_5_2_64bit_length_largest_allowed_value() -> None:
    wire = bytes((0x82, 127, 0x7F)) + b"\xff" * 7
    header = parse_header(wire, expect_mask=False)
    assert header == FrameHeader(True, 0, Opcode.BINARY, 2**63 - 1, None, 10)
    # The payload is not there, so no frame yet.
    assert parse_frame(wire, expect_mask=False) is None


@pytest.mark.parametrize(
    ("length", "length_field", "extended"),
    [
        (0, 0, b""),
        (1, 1, b""),
        (125, 125, b""),
        (126, 126, b"\x00\x7e"),
        (127, 126, b"\x00\x7f"),
        (65535, 126, b"\xff\xff"),
        (65536, 127, b"\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70000, 127, (70000).to_bytes(8, "big")),
    ],
)
@pytest.mark.parametrize("mask", [False, True])
def test_5_2_minimal_length_encoding(
    length: int, length_field: int, extended: bytes, mask: bool
) -> None:
    wire = serialize_frame(Opcode.BINARY, bytes(length), mask=mask)
    assert wire[0] == 0x82
    assert wire[1] == (0x80 if mask else 0) | length_field
    assert wire[2 : 2 + len(extended)] == extended
    header_size = 2 + len(extended) + (4 if mask else 0)
    assert len(wire) == header_size + length
    header = parse_header(wire, expect_mask=mask)
    assert header is not None
    assert header.length == length
    assert header.size == header_size


def test_5_2_fin_and_rsv_bits_serialize() -> None:
    wire = serialize_frame(Opcode.TEXT, b"", fin=False, rsv=RSV1 | RSV3, mask=False)
    assert wire == bytes((RSV1 | RSV3 | Opcode.TEXT, 0))
    wire = serialize_frame(Opcode.CONT, b"", rsv=RSV2, mask=False)
    assert wire == bytes((0x80 | RSV2 | Opcode.CONT, 0))


@pytest.mark.parametrize("data_type", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("mask", [False, True])
def test_5_2_serialize_accepts_any_buffer(data_type: Callable[[bytes], Buffer], mask: bool) -> None:
    wire = serialize_frame(Opcode.BINARY, data_type(b"abc"), mask=mask)
    assert type(wire) is bytes
    assert parse_frame(wire, expect_mask=mask) == (Frame(Opcode.BINARY, b"abc"), len(wire))


# --- Section 5.3: client-to-server masking ------------------------------------------------


def test_5_3_client_masks_with_fresh_key(monkeypatch: pytest.MonkeyPatch) -> None:
    urandom = RecordingKeys(frames.masking_key)
    monkeypatch.setattr(KEYS, urandom)
    data = b"the same frame, twice"
    first = serialize_frame(Opcode.TEXT, data, mask=True)
    second = Frame(Opcode.TEXT, data).serialize(mask=True)
    keys = [first[2:6], second[2:6]]
    # Each key is a fresh 4-byte draw.
    assert keys == urandom.results
    assert all(len(key) == 4 for key in keys)
    assert keys[0] != keys[1]
    assert first != second
    assert apply_mask(first[6:], keys[0]) == data
    assert apply_mask(second[6:], keys[1]) == data


def test_5_3_key_from_urandom_masks_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = [bytes.fromhex("01020304"), bytes.fromhex("a0b0c0d0")]
    urandom = FixedKeys(*keys)
    monkeypatch.setattr(KEYS, urandom)
    data = b"\x00" * 9
    first = serialize_frame(Opcode.BINARY, data, mask=True)
    second = serialize_frame(Opcode.BINARY, data, mask=True)
    assert urandom.calls == 2
    # Masking zeros reveals the key, repeated.
    assert first == b"\x82\x89" + keys[0] + (keys[0] * 3)[:9]
    assert second == b"\x82\x89" + keys[1] + (keys[1] * 3)[:9]


def test_5_3_unmasked_serialization_draws_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    urandom = FixedKeys()
    monkeypatch.setattr(KEYS, urandom)
    serialize_frame(Opcode.BINARY, b"data", mask=False)
    assert urandom.calls == 0


# The key sources: the pure-Python one, and the C accelerator's when it is built.
KEY_SOURCES = [frames.masking_key_python] + ([] if speedups is None else [speedups.masking_key])


@pytest.fixture(params=KEY_SOURCES, ids=lambda source: source.__module__ or "C")
def key_source(request: pytest.FixtureRequest) -> Iterator[Callable[[], bytes]]:
    """Each implementation of ``masking_key``, starting from an empty batch."""
    frames._forget_keys()
    yield request.param
    frames._forget_keys()


def test_5_3_masking_keys_are_drawn_from_urandom_in_batches(
    monkeypatch: pytest.MonkeyPatch, key_source: Callable[[], bytes]
) -> None:
    urandom = RecordingUrandom(os.urandom)
    monkeypatch.setattr(URANDOM, urandom)
    batch = frames._KEY_BATCH
    keys = [key_source() for _ in range(2 * batch + 1)]
    # Every key is the next 4 bytes of os.urandom's output: none is made up,
    # none is used twice, and a new batch starts where the last one ended.
    assert b"".join(keys) == b"".join(urandom.results)[: 4 * len(keys)]
    assert [len(result) for result in urandom.results] == [4 * batch] * 3


def test_5_3_threads_masking_at_once_never_share_a_key(
    monkeypatch: pytest.MonkeyPatch, key_source: Callable[[], bytes]
) -> None:
    urandom = RecordingUrandom(os.urandom)
    monkeypatch.setattr(URANDOM, urandom)
    batch = frames._KEY_BATCH
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: [key_source() for _ in range(batch)], range(8)))
    drawn = Counter(
        result[i : i + 4] for result in urandom.results for i in range(0, len(result), 4)
    )
    used = Counter(key for run in runs for key in run)
    # Each 4-byte draw of os.urandom masks at most one frame.
    assert not used - drawn
    assert used.total() == 8 * batch


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_5_3_a_forked_child_does_not_repeat_its_parents_keys(
    key_source: Callable[[], bytes],
) -> None:
    key_source()  # a batch is drawn, and most of it is left for later
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, which reports through the pipe
        os.write(write_end, key_source())
        os._exit(0)
    os.close(write_end)
    child_key = os.read(read_end, 4)
    os.close(read_end)
    os.waitpid(pid, 0)
    # Had the child kept the batch, its next key would be the parent's next one.
    assert len(child_key) == 4
    assert key_source() != child_key


def test_5_3_masking_key_is_reported_in_header() -> None:
    key = bytes.fromhex("deadbeef")
    wire = bytes((0x81, 0x83)) + key + apply_mask(b"abc", key)
    header = parse_header(wire, expect_mask=True)
    assert header == FrameHeader(True, 0, Opcode.TEXT, 3, key, 6)
    assert type(header.mask) is bytes
    assert parse_frame(wire, expect_mask=True) == (Frame(Opcode.TEXT, b"abc"), 9)


# --- Section 5.4: fragmentation ------------------------------------------------------------


@pytest.mark.parametrize("opcode", sorted(DATA_OPCODES))
def test_5_4_data_frames_may_be_fragmented(opcode: Opcode) -> None:
    wire = bytes((opcode, 3)) + b"abc"
    assert parse_frame(wire, expect_mask=False) == (Frame(opcode, b"abc", fin=False), 5)


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_5_4_control_frame_between_fragments(opcode: Opcode) -> None:
    control = serialize_frame(opcode, b"ctl", mask=False)
    buf = HEL_FRAGMENT + control + LO_FRAGMENT
    pos = 0
    parsed: list[Frame] = []
    while pos < len(buf):
        result = parse_frame(buf, pos, expect_mask=False)
        assert result is not None
        parsed.append(result[0])
        pos += result[1]
    assert parsed == [
        Frame(Opcode.TEXT, b"Hel", fin=False),
        Frame(opcode, b"ctl"),
        Frame(Opcode.CONT, b"lo"),
    ]


# --- Section 5.5: control frames -----------------------------------------------------------


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_5_5_control_frame_must_not_be_fragmented(opcode: Opcode) -> None:
    wire = bytes((opcode, 0))
    error = protocol_error(wire, expect_mask=False)
    assert "fragmented control frame" in str(error)
    # FIN and the opcode share the first byte.
    protocol_error(wire[:1], expect_mask=False)
    protocol_error(wire[:1], expect_mask=True)
    protocol_error(bytes((opcode, 0x80)) + RFC_KEY, expect_mask=True)


@pytest.mark.parametrize("opcode", sorted(CONTROL_OPCODES))
def test_5_5_control_frame_payload_at_most_125(opcode: Opcode) -> None:
    wire = serialize_frame(opcode, bytes(125), mask=False)
    assert parse_frame(wire, expect_mask=False) == (Frame(opcode, bytes(125)), 127)
    masked = serialize_frame(opcode, bytes(125), mask=True)
    assert parse_frame(masked, expect_mask=True) == (Frame(opcode, bytes(125)), 131)
    for size in (126, 127, 65535, 65536):
        too_long = serialize_frame(opcode, bytes(size), mask=False)
        error = protocol_error(too_long, expect_mask=False)
        assert "125" in str(error)
        # The 7-bit length field already tells, before any extended length.
        protocol_error(too_long[:2], expect_mask=False)
        masked = serialize_frame(opcode, bytes(size), mask=True)
        protocol_error(masked[:2], expect_mask=True)


def test_5_5_data_frames_may_exceed_125() -> None:
    wire = serialize_frame(Opcode.TEXT, b"x" * 126, fin=False, mask=False)
    assert parse_frame(wire, expect_mask=False) == (Frame(Opcode.TEXT, b"x" * 126, fin=False), 130)


# --- Incremental parsing --------------------------------------------------------------------


SMALL_EXAMPLES = [
    pytest.param(HELLO_UNMASKED, False, id="unmasked-text"),
    pytest.param(HELLO_MASKED, True, id="masked-text"),
    pytest.param(HEL_FRAGMENT, False, id="fragment-1"),
    pytest.param(LO_FRAGMENT, False, id="fragment-2"),
    pytest.param(PING_UNMASKED, False, id="unmasked-ping"),
    pytest.param(PONG_MASKED, True, id="masked-pong"),
    pytest.param(BINARY_256_FRAME, False, id="binary-256"),
    pytest.param(bytes.fromhex("827e0100") + payload_of(256), False, id="binary-256-b"),
    pytest.param(serialize_frame(Opcode.BINARY, payload_of(300), mask=True), True, id="m-300"),
    pytest.param(serialize_frame(Opcode.CLOSE, b"\x03\xe8", mask=True), True, id="close"),
    pytest.param(serialize_frame(Opcode.TEXT, b"", mask=True), True, id="empty-masked"),
    pytest.param(serialize_frame(Opcode.TEXT, b"", mask=False), False, id="empty"),
]


@pytest.mark.parametrize(("wire", "masked"), SMALL_EXAMPLES)
def test_every_strict_prefix_is_incomplete(wire: bytes, masked: bool) -> None:
    header = parse_header(wire, expect_mask=masked)
    assert header is not None
    for end in range(len(wire)):
        prefix = wire[:end]
        assert parse_frame(prefix, expect_mask=masked) is None, end
        partial = parse_header(prefix, expect_mask=masked)
        if end < header.size:
            assert partial is None, end
        else:
            assert partial == header, end
    assert parse_frame(wire, expect_mask=masked) is not None


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("size", [65535, 65536, 70000])
def test_large_frame_prefixes_are_incomplete(size: int, mask: bool) -> None:
    wire = serialize_frame(Opcode.BINARY, payload_of(size), mask=mask)
    header = parse_header(wire, expect_mask=mask)
    assert header is not None
    assert header.size == (4 if size < 65536 else 10) + (4 if mask else 0)
    assert header.length == size
    for end in range(header.size):
        assert parse_header(wire[:end], expect_mask=mask) is None, end
        assert parse_frame(wire[:end], expect_mask=mask) is None, end
    for end in (header.size, header.size + 1, len(wire) // 2, len(wire) - 1):
        assert parse_header(wire[:end], expect_mask=mask) == header, end
        assert parse_frame(wire[:end], expect_mask=mask) is None, end
    frame = Frame(Opcode.BINARY, payload_of(size))
    assert parse_frame(wire, expect_mask=mask) == (frame, len(wire))


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize(("size", "header_size"), [(0, 2), (125, 2), (126, 4), (65536, 10)])
def test_header_size(size: int, header_size: int, mask: bool) -> None:
    wire = serialize_frame(Opcode.BINARY, bytes(size), mask=mask)
    header = parse_header(wire, expect_mask=mask)
    assert header is not None
    assert header.size == header_size + (4 if mask else 0)
    assert parse_header(wire[: header.size], expect_mask=mask) == header


def test_header_ignores_trailing_bytes() -> None:
    wire = HELLO_UNMASKED + HELLO_UNMASKED
    assert parse_frame(wire, expect_mask=False) == (Frame(Opcode.TEXT, b"Hello"), 7)


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_parse_accepts_any_buffer(buffer_type: Callable[[bytes], Buffer]) -> None:
    for wire, masked, frame in [
        (HELLO_MASKED, True, Frame(Opcode.TEXT, b"Hello")),
        (BINARY_256_FRAME, False, Frame(Opcode.BINARY, BINARY_256)),
        (BINARY_64K_FRAME, False, Frame(Opcode.BINARY, BINARY_64K)),
    ]:
        buf = buffer_type(b"junk" + wire)
        result = parse_frame(buf, 4, expect_mask=masked)
        assert result == (frame, len(wire))
        assert type(result[0].data) is bytes
        header = parse_header(buf, 4, expect_mask=masked)
        assert header is not None
        assert header.mask is None or type(header.mask) is bytes


def test_parse_at_or_past_end_is_incomplete() -> None:
    assert parse_header(HELLO_UNMASKED, len(HELLO_UNMASKED), expect_mask=False) is None
    assert parse_frame(HELLO_UNMASKED, len(HELLO_UNMASKED) + 5, expect_mask=False) is None
    assert parse_frame(b"", expect_mask=True) is None


def test_errors_at_pos_concern_the_frame_there() -> None:
    # A bad byte before pos is not looked at; one at pos is.
    buf = b"\x83\x00" + HELLO_UNMASKED
    assert parse_frame(buf, 2, expect_mask=False) == (Frame(Opcode.TEXT, b"Hello"), 7)
    protocol_error(buf, 0, expect_mask=False)
    protocol_error(HELLO_UNMASKED + b"\x8b", len(HELLO_UNMASKED), expect_mask=False)


# --- Frame ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rsv1", "rsv2", "rsv3", "rsv"),
    [
        (False, False, False, 0),
        (True, False, False, RSV1),
        (False, True, False, RSV2),
        (False, False, True, RSV3),
        (True, True, True, ALL_RSV),
        (True, False, True, RSV1 | RSV3),
    ],
)
def test_frame_rsv(rsv1: bool, rsv2: bool, rsv3: bool, rsv: int) -> None:
    frame = Frame(Opcode.BINARY, b"", rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)
    assert frame.rsv == rsv
    assert frame.serialize(mask=False) == bytes((0x80 | rsv | Opcode.BINARY, 0))


def test_frame_defaults_and_immutability() -> None:
    frame = Frame(Opcode.TEXT, b"hi")
    assert (frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (True, False, False, False)
    with pytest.raises(AttributeError):
        frame.fin = False  # type: ignore[misc]
    assert frame == Frame(Opcode.TEXT, b"hi")
    assert frame != Frame(Opcode.TEXT, b"hi", fin=False)


def test_opcode_values() -> None:
    assert [int(op) for op in Opcode] == KNOWN_OPCODES
    assert {Opcode.CONT, Opcode.TEXT, Opcode.BINARY} == DATA_OPCODES
    assert {Opcode.CLOSE, Opcode.PING, Opcode.PONG} == CONTROL_OPCODES
    assert frames.MAX_CONTROL_PAYLOAD == 125


def test_framing_errors_are_not_payload_too_big() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_header(bytes((0x89, 126)), expect_mask=False)
    assert not isinstance(info.value, PayloadTooBig)


# --- Property tests ------------------------------------------------------------------------


@st.composite
def payloads(draw: st.DrawFn, max_size: int = 70000) -> bytes:
    sizes = [size for size in BOUNDARY_LENGTHS if size <= max_size]
    size = draw(st.one_of(st.sampled_from(sizes), st.integers(0, max_size)))
    if size <= 256:
        return draw(st.binary(min_size=size, max_size=size))
    return payload_of(size, draw(st.integers(0, 2**32 - 1)))


@st.composite
def frames_to_send(draw: st.DrawFn) -> tuple[Frame, int]:
    """A valid frame, and the RSV bits the receiver allows (a superset of its own)."""
    opcode = draw(st.sampled_from(list(Opcode)))
    if opcode in CONTROL_OPCODES:
        fin = True
        data = draw(payloads(max_size=125))
    else:
        fin = draw(st.booleans())
        data = draw(payloads())
    rsv1, rsv2, rsv3 = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    frame = Frame(opcode, data, fin=fin, rsv1=rsv1, rsv2=rsv2, rsv3=rsv3)
    allowed_rsv = frame.rsv | draw(st.sampled_from([0, RSV1, RSV2, RSV3, ALL_RSV]))
    return frame, allowed_rsv


@settings(max_examples=200, deadline=None)
@given(sent=frames_to_send(), mask=st.booleans())
def test_round_trip(sent: tuple[Frame, int], mask: bool) -> None:
    frame, allowed_rsv = sent
    wire = frame.serialize(mask=mask)
    assert parse_frame(wire, expect_mask=mask, allowed_rsv=allowed_rsv) == (frame, len(wire))
    header = parse_header(wire, expect_mask=mask, allowed_rsv=allowed_rsv)
    assert header is not None
    assert header.size + header.length == len(wire)
    assert (header.fin, header.rsv, header.opcode) == (frame.fin, frame.rsv, frame.opcode)
    assert (header.mask is not None) == mask
    # Serialize_frame with the same fields gives the same header.
    again = serialize_frame(frame.opcode, frame.data, fin=frame.fin, rsv=frame.rsv, mask=mask)
    assert again[:2] == wire[:2]
    assert len(again) == len(wire)


@settings(max_examples=100, deadline=None)
@given(
    sent=frames_to_send(),
    mask=st.booleans(),
    before=st.binary(max_size=20),
    after=st.binary(max_size=20),
    buffer_type=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_round_trip_inside_larger_buffer(
    sent: tuple[Frame, int],
    mask: bool,
    before: bytes,
    after: bytes,
    buffer_type: Callable[[bytes], Buffer],
) -> None:
    frame, allowed_rsv = sent
    wire = frame.serialize(mask=mask)
    buf = buffer_type(before + wire + after)
    result = parse_frame(buf, len(before), expect_mask=mask, allowed_rsv=allowed_rsv)
    assert result == (frame, len(wire))


@settings(max_examples=50, deadline=None)
@given(frames=st.lists(frames_to_send(), min_size=1, max_size=5), mask=st.booleans())
def test_consecutive_frames_parse_in_order(frames: list[tuple[Frame, int]], mask: bool) -> None:
    allowed_rsv = ALL_RSV
    buf = b"".join(frame.serialize(mask=mask) for frame, _ in frames)
    pos = 0
    parsed: list[Frame] = []
    while pos < len(buf):
        result = parse_frame(buf, pos, expect_mask=mask, allowed_rsv=allowed_rsv)
        assert result is not None
        parsed.append(result[0])
        pos += result[1]
    assert parsed == [frame for frame, _ in frames]
    assert pos == len(buf)


@settings(max_examples=200)
@given(
    first=st.integers(0, 255),
    rest=st.binary(max_size=16),
    expect_mask=st.booleans(),
    allowed_rsv=st.sampled_from([0, RSV1, ALL_RSV]),
)
def test_arbitrary_bytes_parse_or_fail_cleanly(
    first: int, rest: bytes, expect_mask: bool, allowed_rsv: int
) -> None:
    """Any input gives a frame, None, or ProtocolError 1002; and prefixes agree."""
    buf = bytes((first,)) + rest
    error: ProtocolError | None = None
    result: tuple[Frame, int] | None = None
    try:
        result = parse_frame(buf, expect_mask=expect_mask, allowed_rsv=allowed_rsv)
    except ProtocolError as exc:
        error = exc
    if error is not None:
        assert error.code == 1002
        return
    # When the whole buffer raises nothing, no prefix may raise either.
    for end in range(len(buf)):
        parse_frame(buf[:end], expect_mask=expect_mask, allowed_rsv=allowed_rsv)
    if result is not None:
        frame, used = result
        assert used <= len(buf)
        assert frame.serialize(mask=expect_mask)[0] == buf[0]
