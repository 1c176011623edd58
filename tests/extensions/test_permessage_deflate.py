"""Tests for permessage-deflate (RFC 7692) and the extension base classes."""

from __future__ import annotations

import itertools
import os
import random
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from tether.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
    deflate_frame,
    deflate_frame_python,
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
    inflate_frame,
    inflate_frame_python,
)
from tether.protocol.frames import Frame, Opcode, build_frame, parse_frame
from tether.protocol.masking import apply_mask

TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
CONTROL_FRAMES = [
    Frame(Opcode.PING, b"ping"),
    Frame(Opcode.PONG, b""),
    Frame(Opcode.CLOSE, b"\x03\xe8bye"),
]


def pmd(
    *,
    remote_no_context_takeover: bool = False,
    local_no_context_takeover: bool = False,
    remote_max_window_bits: int = 15,
    local_max_window_bits: int = 15,
) -> PerMessageDeflate:
    return PerMessageDeflate(
        remote_no_context_takeover,
        local_no_context_takeover,
        remote_max_window_bits,
        local_max_window_bits,
    )


def decode_message(ext: PerMessageDeflate, *frames: Frame, max_size: int | None = None) -> bytes:
    """Decode the frames of one message as the engine does, passing what room is left."""
    out = b""
    for frame in frames:
        room = None if max_size is None else max_size - len(out)
        out += ext.decode(frame, max_size=room).data
    return out


def compressed(payload: str, *, fin: bool = True, opcode: Opcode = TEXT) -> Frame:
    """A frame carrying hex ``payload``, RSV1 set on a first frame."""
    return Frame(opcode, bytes.fromhex(payload), fin=fin, rsv1=opcode != CONT)


# RFC 7692 section 7.2.3: examples.


def test_rfc_7_2_3_1_single_frame_from_the_wire() -> None:
    parsed = parse_frame(bytes.fromhex("c107f248cdc9c90700"), expect_mask=False, allowed_rsv=0x40)
    assert parsed is not None
    frame, _ = parsed
    assert frame.rsv1
    assert pmd().decode(frame) == Frame(TEXT, b"Hello")


def test_rfc_7_2_3_1_fragmented() -> None:
    ext = pmd()
    first = compressed("f248cd", fin=False)
    second = compressed("c9c90700", opcode=CONT)
    head = ext.decode(first)
    tail = ext.decode(second)
    assert (head.opcode, head.fin, head.rsv1) == (TEXT, False, False)
    assert (tail.opcode, tail.fin, tail.rsv1) == (CONT, True, False)
    assert head.data + tail.data == b"Hello"


def test_rfc_7_2_3_1_encoded_exactly() -> None:
    frame = pmd().encode(Frame(TEXT, b"Hello"))
    assert frame.serialize(mask=False) == bytes.fromhex("c107f248cdc9c90700")


def test_rfc_7_2_3_2_context_takeover() -> None:
    ext = pmd()
    assert ext.decode(compressed("f248cdc9c90700")).data == b"Hello"
    assert ext.decode(compressed("f200110000")).data == b"Hello"


def test_rfc_7_2_3_2_encoded_exactly() -> None:
    ext = pmd()
    assert ext.encode(Frame(TEXT, b"Hello")).data == bytes.fromhex("f248cdc9c90700")
    assert ext.encode(Frame(TEXT, b"Hello")).data == bytes.fromhex("f200110000")


def test_second_message_needs_the_first_one_context() -> None:
    ext = pmd(remote_no_context_takeover=True)
    assert ext.decode(compressed("f248cdc9c90700")).data == b"Hello"
    # With the decompressor reset, the back-reference has nothing to point to.
    with pytest.raises(ProtocolError) as excinfo:
        ext.decode(compressed("f200110000"))
    assert excinfo.value.code == 1007


@pytest.mark.parametrize(
    ("section", "payload"),
    [
        ("7.2.3.3 no compression", "000500faff48656c6c6f00"),
        ("7.2.3.4 BFINAL set", "f348cdc9c9070000"),
        ("7.2.3.5 two DEFLATE blocks", "f248050000 00ffffcac9c90700"),
    ],
)
def test_rfc_examples(section: str, payload: str) -> None:
    # Each example decodes alone and after other messages on the same stream.
    fresh = pmd()
    assert fresh.decode(compressed(payload.replace(" ", ""))).data == b"Hello", section
    used = pmd()
    used.decode(compressed("f248cdc9c90700"))
    assert used.decode(compressed(payload.replace(" ", ""))).data == b"Hello", section
    assert used.decode(compressed("f248cdc9c90700")).data == b"Hello", section


def test_rfc_7_2_3_6_empty_message() -> None:
    assert pmd().decode(compressed("00")) == Frame(TEXT, b"")
    assert pmd().encode(Frame(TEXT, b"")) == Frame(TEXT, b"\x00", rsv1=True)


def test_empty_final_fragment_after_a_flushed_one_gets_a_zero_byte() -> None:
    ext = pmd()
    first = ext.encode(Frame(TEXT, b"Hello", fin=False))
    assert first.data.endswith(b"\x00\x00\xff\xff")
    last = ext.encode(Frame(CONT, b""))
    assert last == Frame(CONT, b"\x00")
    decoder = pmd()
    assert decode_message(decoder, first, last) == b"Hello"
    assert decode_message(decoder, ext.encode(Frame(TEXT, b"Hello"))) == b"Hello"


def test_bfinal_block_without_the_trailing_empty_block() -> None:
    ext = pmd()
    # The 7.2.3.4 payload minus its last octet: the stream just ends.
    assert ext.decode(compressed("f348cdc9c90700")).data == b"Hello"
    assert ext.decode(compressed("f248cdc9c90700")).data == b"Hello"


def test_bfinal_block_then_more_blocks_in_the_same_message() -> None:
    first = zlib.compressobj(wbits=-15)
    second = zlib.compressobj(wbits=-15)
    payload = first.compress(b"Hel") + first.flush(zlib.Z_FINISH)
    payload += (second.compress(b"lo") + second.flush(zlib.Z_SYNC_FLUSH))[:-4]
    ext = pmd()
    frames = [
        Frame(TEXT, payload[:3], fin=False, rsv1=True),
        Frame(CONT, payload[3:]),
    ]
    assert decode_message(ext, *frames) == b"Hello"
    assert decode_message(ext, ext_encode(b"again")) == b"again"


def ext_encode(data: bytes) -> Frame:
    return pmd().encode(Frame(TEXT, data))


def test_empty_payload_with_rsv1_is_an_empty_message() -> None:
    ext = pmd()
    assert ext.decode(Frame(TEXT, b"", rsv1=True)) == Frame(TEXT, b"")
    assert ext.decode(compressed("f248cdc9c90700")).data == b"Hello"
    # Again with a stream in progress: the context survives.
    assert ext.decode(Frame(TEXT, b"", rsv1=True)) == Frame(TEXT, b"")
    empty = [Frame(BINARY, b"", fin=False, rsv1=True), Frame(CONT, b"")]
    assert decode_message(ext, *empty) == b""
    assert ext.decode(compressed("f200110000")).data == b"Hello"


def test_empty_final_fragment_closes_the_message_data() -> None:
    # The compressed payload cut anywhere, even right at its end, is the same message.
    ext = pmd()
    frames = [compressed("f248cdc9c90700", fin=False), Frame(CONT, b"")]
    assert decode_message(ext, *frames) == b"Hello"
    assert ext.decode(compressed("f200110000")).data == b"Hello"


def test_empty_fragments() -> None:
    sender, receiver = pmd(), pmd()
    pieces = [b"", b"Hel", b"", b"", b"lo", b""]
    opcodes = [TEXT] + [CONT] * (len(pieces) - 1)
    frames = [
        sender.encode(Frame(op, piece, fin=i == len(pieces) - 1))
        for i, (op, piece) in enumerate(zip(opcodes, pieces, strict=True))
    ]
    assert [f.rsv1 for f in frames] == [True] + [False] * (len(pieces) - 1)
    assert decode_message(receiver, *frames) == b"Hello"


# Pass-through and frame bits.


@pytest.mark.parametrize("frame", CONTROL_FRAMES)
def test_control_frames_pass_through(frame: Frame) -> None:
    ext = pmd()
    assert ext.decode(frame) is frame
    assert ext.encode(frame) is frame


def test_uncompressed_message_passes_through() -> None:
    ext = pmd()
    first = Frame(BINARY, b"raw", fin=False)
    last = Frame(CONT, b"data")
    assert ext.decode(first) is first
    assert ext.decode(last) is last


def test_control_frame_inside_a_compressed_message() -> None:
    ext = pmd()
    sender = pmd()
    first = sender.encode(Frame(BINARY, b"a" * 100, fin=False))
    last = sender.encode(Frame(CONT, b"b" * 100))
    assert ext.decode(first).data == b"a" * 100
    ping = CONTROL_FRAMES[0]
    assert ext.decode(ping) is ping
    assert ext.decode(last) == Frame(CONT, b"b" * 100)
    # The next message is uncompressed: its continuation is left alone too.
    plain = [Frame(TEXT, b"x", fin=False), Frame(CONT, b"y")]
    assert [ext.decode(f) for f in plain] == plain


def test_other_rsv_bits_are_kept() -> None:
    ext = pmd()
    frame = ext.encode(Frame(TEXT, b"Hello", rsv2=True, rsv3=True))
    assert (frame.rsv1, frame.rsv2, frame.rsv3) == (True, True, True)
    decoded = pmd().decode(frame)
    assert (decoded.rsv1, decoded.rsv2, decoded.rsv3) == (False, True, True)


def test_encoded_fragments_carry_rsv1_on_the_first_only() -> None:
    ext = pmd()
    frames = [
        ext.encode(Frame(BINARY, b"one", fin=False)),
        ext.encode(Frame(CONT, b"two", fin=False)),
        ext.encode(Frame(CONT, b"three")),
    ]
    assert [(f.opcode, f.rsv1, f.fin) for f in frames] == [
        (BINARY, True, False),
        (CONT, False, False),
        (CONT, False, True),
    ]
    assert decode_message(pmd(), *frames) == b"onetwothree"


def test_local_no_context_takeover_resets_the_compressor() -> None:
    ext = pmd(local_no_context_takeover=True)
    first = ext.encode(Frame(TEXT, b"Hello"))
    second = ext.encode(Frame(TEXT, b"Hello"))
    assert first.data == second.data == bytes.fromhex("f248cdc9c90700")
    receiver = pmd(remote_no_context_takeover=True)
    assert receiver.decode(first).data == receiver.decode(second).data == b"Hello"


def test_context_takeover_spans_fragmented_messages() -> None:
    sender, receiver = pmd(), pmd()
    text = os.urandom(200)
    for _ in range(3):
        frames = [
            sender.encode(Frame(BINARY, text[:50], fin=False)),
            sender.encode(Frame(CONT, text[50:])),
        ]
        assert decode_message(receiver, *frames) == text
    # Repeats compress to almost nothing once the first copy is in the window.
    assert len(frames[1].data) < 20


# Limits: decompression bombs and corrupt data.


def bomb(size: int) -> bytes:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (encoder.compress(bytes(size)) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_decompression_bomb_stays_within_max_size() -> None:
    payload = bomb(10 * 2**20)
    assert len(payload) < 20_000
    frame = Frame(BINARY, payload, rsv1=True)
    ext = pmd()
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig) as excinfo:
            ext.decode(frame, max_size=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert excinfo.value.code == 1009
    assert peak < 4 * 2**20


def test_fragmented_decompression_bomb() -> None:
    payload = bomb(10 * 2**20)
    size = len(payload) // 10
    frames = [Frame(BINARY, payload[:size], fin=False, rsv1=True)]
    frames += [
        Frame(CONT, payload[i : i + size], fin=False) for i in range(size, len(payload), size)
    ]
    frames.append(Frame(CONT, b""))
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBig):
            decode_message(pmd(), *frames, max_size=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


@pytest.mark.parametrize("fragmented", [False, True])
def test_message_of_exactly_max_size_fits(fragmented: bool) -> None:
    data = os.urandom(1000)
    sender = pmd()
    if fragmented:
        frames = [
            sender.encode(Frame(BINARY, data[:600], fin=False)),
            sender.encode(Frame(CONT, data[600:])),
        ]
    else:
        frames = [sender.encode(Frame(BINARY, data))]
    assert decode_message(pmd(), *frames, max_size=1000) == data
    with pytest.raises(PayloadTooBig):
        decode_message(pmd(), *frames, max_size=999)


def test_max_size_zero() -> None:
    assert pmd().decode(compressed("00"), max_size=0).data == b""
    with pytest.raises(PayloadTooBig):
        pmd().decode(compressed("f248cdc9c90700"), max_size=0)


@pytest.mark.parametrize(
    "payload",
    [
        "ff",  # BTYPE 11 is reserved
        "0005 00 0000",  # stored block whose LEN and NLEN disagree
        "f248cdc9c90700 ffffffff",  # a reserved block type after a good block
        "020000",  # a fixed-Huffman block with an invalid distance code
    ],
)
def test_corrupt_data_fails_with_1007(payload: str) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        pmd().decode(compressed(payload.replace(" ", "")))
    assert type(excinfo.value) is ProtocolError
    assert excinfo.value.code == 1007


def test_corrupt_continuation_fails_with_1007() -> None:
    ext = pmd()
    # The first fragment ends with a sync flush, so the next byte opens a block.
    assert (
        ext.decode(compressed("f248cdc9c90700 0000ffff".replace(" ", ""), fin=False)).data
        == b"Hello"
    )
    with pytest.raises(ProtocolError) as excinfo:
        ext.decode(compressed("ff", opcode=CONT))
    assert excinfo.value.code == 1007


# Window sizes and round trips.


def strict_decompress(wbits: int, frames: Sequence[Frame]) -> bytes:
    """Decompress with plain zlib at exactly ``wbits``, in small slices so the window matters."""
    decoder = zlib.decompressobj(wbits=-wbits)
    payload = b"".join(frame.data for frame in frames) + b"\x00\x00\xff\xff"
    return b"".join(decoder.decompress(payload[i : i + 16]) for i in range(0, len(payload), 16))


@pytest.mark.parametrize("bits", range(8, 16))
def test_compressor_honours_the_window(bits: int) -> None:
    # Repeats at a period just over the window would tempt a bigger window.
    period = 2**bits + 17
    data = os.urandom(period) * 4 + os.urandom(100) * 50
    frames = [pmd(local_max_window_bits=bits).encode(Frame(BINARY, data))]
    assert strict_decompress(bits, frames) == data
    assert pmd(remote_max_window_bits=bits).decode(frames[0]).data == data


def test_data_needing_a_bigger_window_fails() -> None:
    data = os.urandom(2000) * 3
    frame = pmd(local_max_window_bits=15).encode(Frame(BINARY, data))
    # 12 bits reach back 4 KiB: enough for the 2000-byte repeats.
    assert pmd(remote_max_window_bits=12).decode(frame).data == data
    # Sliced small, everything goes through the window, which is too small at 10 bits.
    with pytest.raises(zlib.error):
        strict_decompress(10, [frame])


def test_compress_settings_are_used() -> None:
    data = bytes(range(256)) * 64
    fast = PerMessageDeflate(False, False, 15, 15, {"level": 0})
    small = PerMessageDeflate(False, False, 15, 15, {"level": 9, "memLevel": 9})
    huffman = PerMessageDeflate(False, False, 15, 15, {"strategy": zlib.Z_HUFFMAN_ONLY})
    stored = fast.encode(Frame(BINARY, data))
    assert len(stored.data) > len(data)
    assert len(small.encode(Frame(BINARY, data)).data) < 1000
    assert len(huffman.encode(Frame(BINARY, data)).data) > 10_000
    assert fast.compress_settings == {"level": 0}
    assert pmd().decode(stored).data == data


@st.composite
def messages(draw: st.DrawFn) -> list[list[bytes]]:
    """Messages, each cut into fragments at random points.

    Small alphabets and repeats give deflate matches to find; a seeded
    generator makes large payloads cheap to draw.
    """
    alphabet = draw(st.sampled_from([b"ab", b"abcdefgh \n", bytes(range(256))]))
    rng = random.Random(draw(st.integers(0, 2**32)))
    result = []
    for _ in range(draw(st.integers(1, 4))):
        data = bytes(rng.choices(alphabet, k=draw(st.integers(0, 5000))))
        if draw(st.booleans()):
            data += data[: draw(st.integers(0, len(data)))]
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
        bounds = [0, *cuts, len(data)]
        result.append([data[a:b] for a, b in itertools.pairwise(bounds)])
    return result


@settings(max_examples=150, deadline=None)
@given(
    msgs=messages(),
    config=st.tuples(
        st.integers(8, 15), st.booleans(), st.integers(-1, 9), st.integers(1, 9), st.booleans()
    ),
)
def test_round_trip(msgs: list[list[bytes]], config: tuple[int, bool, int, int, bool]) -> None:
    bits, no_context_takeover, level, mem_level, limit = config
    sender = PerMessageDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=no_context_takeover,
        remote_max_window_bits=15,
        local_max_window_bits=bits,
        compress_settings={"level": level, "memLevel": mem_level},
    )
    receiver = pmd(remote_no_context_takeover=no_context_takeover, remote_max_window_bits=bits)
    strict = zlib.decompressobj(wbits=-bits)
    for fragments in msgs:
        opcodes = [BINARY] + [CONT] * (len(fragments) - 1)
        frames = [
            sender.encode(Frame(op, piece, fin=i == len(fragments) - 1))
            for i, (op, piece) in enumerate(zip(opcodes, fragments, strict=True))
        ]
        message = b"".join(fragments)
        max_size = len(message) if limit else None
        assert decode_message(receiver, *frames, max_size=max_size) == message
        if no_context_takeover:
            strict = zlib.decompressobj(wbits=-bits)
        # A zlib decompressor with exactly the agreed window decodes it too.
        payload = b"".join(f.data for f in frames) + b"\x00\x00\xff\xff"
        out = b"".join(strict.decompress(payload[i : i + 64]) for i in range(0, len(payload), 64))
        assert out == message


# Constructor checks.


@pytest.mark.parametrize("bits", [7, 16, 0, -15, True])
def test_extension_refuses_bad_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="window_bits"):
        PerMessageDeflate(False, False, bits, 15)
    with pytest.raises(ValueError, match="window_bits"):
        PerMessageDeflate(False, False, 15, bits)


@pytest.mark.parametrize(
    "settings_",
    [
        {"wbits": 15},
        {"zdict": 1},
        {"method": 8},
        {"level": 10},
        {"level": -2},
        {"memLevel": 0},
        {"memLevel": 10},
        {"strategy": 99},
        {"level": True},
    ],
)
def test_bad_compress_settings(settings_: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="compress_settings"):
        PerMessageDeflate(False, False, 15, 15, settings_)
    with pytest.raises(ValueError, match="compress_settings"):
        ClientPerMessageDeflateFactory(compress_settings=settings_)
    with pytest.raises(ValueError, match="compress_settings"):
        ServerPerMessageDeflateFactory(compress_settings=settings_)


def test_non_integer_compress_setting() -> None:
    with pytest.raises(ValueError, match="compress_settings"):
        PerMessageDeflate(False, False, 15, 15, {"level": "9"})  # type: ignore[dict-item]


def test_repr() -> None:
    assert repr(pmd(remote_max_window_bits=10)) == (
        "PerMessageDeflate(remote_no_context_takeover=False, "
        "local_no_context_takeover=False, remote_max_window_bits=10, "
        "local_max_window_bits=15)"
    )


def test_extension_declares_rsv1() -> None:
    assert PerMessageDeflate.name == "permessage-deflate"
    assert PerMessageDeflate.rsv_mask == 0x40
    assert ClientPerMessageDeflateFactory.name == ServerPerMessageDeflateFactory.name


@pytest.mark.parametrize("bits", [7, 16, True])
def test_factories_refuse_bad_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="server_max_window_bits"):
        ClientPerMessageDeflateFactory(server_max_window_bits=bits)
    with pytest.raises(ValueError, match="server_max_window_bits"):
        ServerPerMessageDeflateFactory(server_max_window_bits=bits)
    with pytest.raises(ValueError, match="client_max_window_bits"):
        ServerPerMessageDeflateFactory(client_max_window_bits=bits)


@pytest.mark.parametrize("bits", [7, 16, 0])
def test_client_factory_refuses_bad_client_window_bits(bits: int) -> None:
    with pytest.raises(ValueError, match="client_max_window_bits"):
        ClientPerMessageDeflateFactory(client_max_window_bits=bits)


def test_server_factory_cannot_require_a_limit_it_does_not_set() -> None:
    with pytest.raises(ValueError, match="require_client_max_window_bits"):
        ServerPerMessageDeflateFactory(require_client_max_window_bits=True)


# Negotiation: the client's offer.


@pytest.mark.parametrize(
    ("kwargs", "params"),
    [
        ({}, [("client_max_window_bits", None)]),
        ({"client_max_window_bits": None}, []),
        ({"client_max_window_bits": False}, []),
        ({"client_max_window_bits": 10}, [("client_max_window_bits", "10")]),
        (
            {
                "server_no_context_takeover": True,
                "client_no_context_takeover": True,
                "server_max_window_bits": 8,
                "client_max_window_bits": 15,
            },
            [
                ("server_no_context_takeover", None),
                ("client_no_context_takeover", None),
                ("server_max_window_bits", "8"),
                ("client_max_window_bits", "15"),
            ],
        ),
    ],
)
def test_request_params(kwargs: dict[str, object], params: list[ExtensionParameter]) -> None:
    factory = ClientPerMessageDeflateFactory(**kwargs)  # type: ignore[arg-type]
    assert factory.get_request_params() == params


# Negotiation: malformed parameters, refused on both sides.

BAD_WINDOW_VALUES = [None, "7", "16", "0", "09", "010", "+9", " 9", "9 ", "nine", "", "1e1", "١٢"]


def bad_params() -> list[tuple[list[ExtensionParameter], type[NegotiationError]]]:
    cases: list[tuple[list[ExtensionParameter], type[NegotiationError]]] = [
        ([("unknown", None)], InvalidParameterName),
        ([("Server_No_Context_Takeover", None)], InvalidParameterName),
        ([("server_no_context_takeover", "")], InvalidParameterValue),
        ([("client_no_context_takeover", "true")], InvalidParameterValue),
        (
            [("server_no_context_takeover", None), ("server_no_context_takeover", None)],
            DuplicateParameter,
        ),
        (
            [("client_no_context_takeover", None), ("client_no_context_takeover", None)],
            DuplicateParameter,
        ),
        ([("server_max_window_bits", "10"), ("server_max_window_bits", "10")], DuplicateParameter),
        ([("client_max_window_bits", "10"), ("client_max_window_bits", None)], DuplicateParameter),
    ]
    cases += [
        ([("server_max_window_bits", value)], InvalidParameterValue) for value in BAD_WINDOW_VALUES
    ]
    cases += [
        ([("client_max_window_bits", value)], InvalidParameterValue)
        for value in BAD_WINDOW_VALUES
        if value is not None
    ]
    return cases


@pytest.mark.parametrize(("params", "error"), bad_params())
def test_bad_params(params: list[ExtensionParameter], error: type[NegotiationError]) -> None:
    offering = ClientPerMessageDeflateFactory(server_max_window_bits=15, client_max_window_bits=15)
    with pytest.raises(error):
        offering.process_response_params(params, [])
    with pytest.raises(error):
        ServerPerMessageDeflateFactory().process_request_params(params, [])


def test_duplicate_parameter_names_the_parameter() -> None:
    params = [("server_max_window_bits", "10"), ("server_max_window_bits", "12")]
    with pytest.raises(DuplicateParameter) as excinfo:
        ServerPerMessageDeflateFactory().process_request_params(params, [])
    assert excinfo.value.name == "server_max_window_bits"


def test_bare_client_max_window_bits_is_refused_in_a_response() -> None:
    with pytest.raises(InvalidParameterValue):
        ClientPerMessageDeflateFactory().process_response_params(
            [("client_max_window_bits", None)], []
        )


def test_every_valid_window_value_is_read() -> None:
    for bits in range(8, 16):
        _, ext = ServerPerMessageDeflateFactory().process_request_params(
            [("server_max_window_bits", str(bits)), ("client_max_window_bits", str(bits))], []
        )
        assert (ext.local_max_window_bits, ext.remote_max_window_bits) == (bits, bits)


# Negotiation: the client checks the server's answer.


def client_result(
    response: list[ExtensionParameter], **kwargs: object
) -> tuple[bool, bool, int, int]:
    factory = ClientPerMessageDeflateFactory(**kwargs)  # type: ignore[arg-type]
    ext = factory.process_response_params(response, [])
    return (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    )


@pytest.mark.parametrize(
    ("kwargs", "response", "expected"),
    [
        ({}, [], (False, False, 15, 15)),
        # The server may add either no_context_takeover parameter on its own.
        ({}, [("server_no_context_takeover", None)], (True, False, 15, 15)),
        ({}, [("client_no_context_takeover", None)], (False, True, 15, 15)),
        # An offered server_no_context_takeover must be echoed.
        (
            {"server_no_context_takeover": True},
            [("server_no_context_takeover", None)],
            (True, False, 15, 15),
        ),
        # An offered client_no_context_takeover holds even if not echoed.
        ({"client_no_context_takeover": True}, [], (False, True, 15, 15)),
        (
            {"client_no_context_takeover": True},
            [("client_no_context_takeover", None)],
            (False, True, 15, 15),
        ),
        # The server may limit its window unasked, or as asked, or more.
        ({}, [("server_max_window_bits", "10")], (False, False, 10, 15)),
        (
            {"server_max_window_bits": 10},
            [("server_max_window_bits", "10")],
            (False, False, 10, 15),
        ),
        ({"server_max_window_bits": 10}, [("server_max_window_bits", "8")], (False, False, 8, 15)),
        # Bare client_max_window_bits: the server may or may not set a limit.
        ({}, [("client_max_window_bits", "9")], (False, False, 15, 9)),
        ({"client_max_window_bits": True}, [], (False, False, 15, 15)),
        # client_max_window_bits=N: the client keeps to N unless told less.
        ({"client_max_window_bits": 11}, [], (False, False, 15, 11)),
        (
            {"client_max_window_bits": 11},
            [("client_max_window_bits", "11")],
            (False, False, 15, 11),
        ),
        ({"client_max_window_bits": 11}, [("client_max_window_bits", "8")], (False, False, 15, 8)),
    ],
)
def test_response_accepted(
    kwargs: dict[str, object],
    response: list[ExtensionParameter],
    expected: tuple[bool, bool, int, int],
) -> None:
    assert client_result(response, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "response", "message"),
    [
        ({"server_no_context_takeover": True}, [], "expected server_no_context_takeover"),
        ({"server_max_window_bits": 10}, [], "expected server_max_window_bits"),
        (
            {"server_max_window_bits": 10},
            [("server_max_window_bits", "11")],
            "server_max_window_bits=11 is more than offered",
        ),
        (
            {"client_max_window_bits": None},
            [("client_max_window_bits", "10")],
            "unexpected client_max_window_bits",
        ),
        (
            {"client_max_window_bits": 10},
            [("client_max_window_bits", "11")],
            "client_max_window_bits=11 is more than offered",
        ),
    ],
)
def test_response_refused(
    kwargs: dict[str, object], response: list[ExtensionParameter], message: str
) -> None:
    with pytest.raises(NegotiationError, match=message):
        client_result(response, **kwargs)


def test_client_refuses_a_second_permessage_deflate() -> None:
    with pytest.raises(NegotiationError, match="already accepted"):
        ClientPerMessageDeflateFactory().process_response_params([], [pmd()])


class OtherExtension(Extension):
    name = "x-other"


def test_other_accepted_extensions_are_fine() -> None:
    ext = ClientPerMessageDeflateFactory().process_response_params([], [OtherExtension()])
    assert isinstance(ext, PerMessageDeflate)
    _, ext = ServerPerMessageDeflateFactory().process_request_params([], [OtherExtension()])
    assert isinstance(ext, PerMessageDeflate)


def test_client_compress_settings_are_passed_on() -> None:
    factory = ClientPerMessageDeflateFactory(compress_settings={"memLevel": 4})
    assert factory.process_response_params([], []).compress_settings == {"memLevel": 4}


# Negotiation: the server answers an offer.


def server_result(
    offer: list[ExtensionParameter], **kwargs: object
) -> tuple[list[ExtensionParameter], tuple[bool, bool, int, int]]:
    factory = ServerPerMessageDeflateFactory(**kwargs)  # type: ignore[arg-type]
    response, ext = factory.process_request_params(offer, [])
    return response, (
        ext.remote_no_context_takeover,
        ext.local_no_context_takeover,
        ext.remote_max_window_bits,
        ext.local_max_window_bits,
    )


SNCT = ("server_no_context_takeover", None)
CNCT = ("client_no_context_takeover", None)


def smwb(bits: int) -> ExtensionParameter:
    return ("server_max_window_bits", str(bits))


def cmwb(bits: int | None) -> ExtensionParameter:
    return ("client_max_window_bits", None if bits is None else str(bits))


@pytest.mark.parametrize(
    ("kwargs", "offer", "response", "expected"),
    [
        ({}, [], [], (False, False, 15, 15)),
        # server_no_context_takeover: echoed when asked, added when configured.
        ({}, [SNCT], [SNCT], (False, True, 15, 15)),
        ({"server_no_context_takeover": True}, [], [SNCT], (False, True, 15, 15)),
        ({"server_no_context_takeover": True}, [SNCT], [SNCT], (False, True, 15, 15)),
        # client_no_context_takeover: echoed when offered, imposed when configured.
        ({}, [CNCT], [CNCT], (True, False, 15, 15)),
        ({"client_no_context_takeover": True}, [], [CNCT], (True, False, 15, 15)),
        ({"client_no_context_takeover": True}, [CNCT], [CNCT], (True, False, 15, 15)),
        # server_max_window_bits: the smaller of the offer and the configuration.
        ({}, [smwb(10)], [smwb(10)], (False, False, 15, 10)),
        ({"server_max_window_bits": 12}, [], [smwb(12)], (False, False, 15, 12)),
        ({"server_max_window_bits": 12}, [smwb(10)], [smwb(10)], (False, False, 15, 10)),
        ({"server_max_window_bits": 9}, [smwb(10)], [smwb(9)], (False, False, 15, 9)),
        ({}, [smwb(8)], [smwb(8)], (False, False, 15, 8)),
        # client_max_window_bits: never sent unless offered.
        ({"client_max_window_bits": 10}, [], [], (False, False, 15, 15)),
        ({}, [cmwb(None)], [], (False, False, 15, 15)),
        ({"client_max_window_bits": 10}, [cmwb(None)], [cmwb(10)], (False, False, 10, 15)),
        ({}, [cmwb(12)], [cmwb(12)], (False, False, 12, 15)),
        ({"client_max_window_bits": 10}, [cmwb(12)], [cmwb(10)], (False, False, 10, 15)),
        ({"client_max_window_bits": 10}, [cmwb(9)], [cmwb(9)], (False, False, 9, 15)),
        (
            {"client_max_window_bits": 10, "require_client_max_window_bits": True},
            [cmwb(None)],
            [cmwb(10)],
            (False, False, 10, 15),
        ),
        # Everything at once, answered in a canonical order.
        (
            {"server_max_window_bits": 11, "client_max_window_bits": 11},
            [cmwb(None), smwb(13), CNCT, SNCT],
            [SNCT, CNCT, smwb(11), cmwb(11)],
            (True, True, 11, 11),
        ),
    ],
)
def test_offer_accepted(
    kwargs: dict[str, object],
    offer: list[ExtensionParameter],
    response: list[ExtensionParameter],
    expected: tuple[bool, bool, int, int],
) -> None:
    assert server_result(offer, **kwargs) == (response, expected)


def test_server_requires_client_max_window_bits() -> None:
    with pytest.raises(NegotiationError, match="required client_max_window_bits"):
        server_result([], client_max_window_bits=10, require_client_max_window_bits=True)


def test_server_refuses_a_second_permessage_deflate() -> None:
    with pytest.raises(NegotiationError, match="already accepted"):
        ServerPerMessageDeflateFactory().process_request_params([], [pmd()])


def test_server_compress_settings_are_passed_on() -> None:
    factory = ServerPerMessageDeflateFactory(compress_settings={"level": 1})
    _, ext = factory.process_request_params([], [])
    assert ext.compress_settings == {"level": 1}


# Negotiation end to end, over every combination of settings.

window_bits = st.one_of(st.none(), st.integers(8, 15))


@settings(max_examples=300, deadline=None)
@given(
    client_kwargs=st.fixed_dictionaries(
        {
            "server_no_context_takeover": st.booleans(),
            "client_no_context_takeover": st.booleans(),
            "server_max_window_bits": window_bits,
            "client_max_window_bits": st.one_of(window_bits, st.booleans()),
        }
    ),
    server_kwargs=st.fixed_dictionaries(
        {
            "server_no_context_takeover": st.booleans(),
            "client_no_context_takeover": st.booleans(),
            "server_max_window_bits": window_bits,
            "client_max_window_bits": window_bits,
        }
    ),
    require=st.booleans(),
)
def test_negotiation_end_to_end(
    client_kwargs: dict[str, Any], server_kwargs: dict[str, Any], require: bool
) -> None:
    client = ClientPerMessageDeflateFactory(**client_kwargs)
    require = require and server_kwargs["client_max_window_bits"] is not None
    server = ServerPerMessageDeflateFactory(**server_kwargs, require_client_max_window_bits=require)
    c_snct, c_cnct = client.server_no_context_takeover, client.client_no_context_takeover
    c_smwb, c_cmwb = client.server_max_window_bits, client.client_max_window_bits
    s_snct, s_cnct = server.server_no_context_takeover, server.client_no_context_takeover
    s_smwb, s_cmwb = server.server_max_window_bits, server.client_max_window_bits
    offered_cmwb = c_cmwb is not None
    try:
        response, server_ext = server.process_request_params(client.get_request_params(), [])
    except NegotiationError:
        assert server.require_client_max_window_bits
        assert not offered_cmwb
        return
    client_ext = client.process_response_params(response, [])

    # Both ends agree on each direction.
    assert client_ext.local_no_context_takeover == server_ext.remote_no_context_takeover
    assert client_ext.remote_no_context_takeover == server_ext.local_no_context_takeover
    assert client_ext.local_max_window_bits == server_ext.remote_max_window_bits
    assert client_ext.remote_max_window_bits == server_ext.local_max_window_bits

    # Every request and every limit is honoured.
    assert server_ext.local_no_context_takeover == (c_snct or s_snct)
    assert server_ext.remote_no_context_takeover == (c_cnct or s_cnct)
    server_window = min(c_smwb or 15, s_smwb or 15)
    assert server_ext.local_max_window_bits == server_window
    if offered_cmwb:
        offered = 15 if c_cmwb is True else c_cmwb
        assert client_ext.local_max_window_bits == min(s_cmwb or 15, offered or 15)
    else:
        assert client_ext.local_max_window_bits == 15

    # Messages flow both ways with what was negotiated.
    for sender, receiver in [(client_ext, server_ext), (server_ext, client_ext)]:
        for data in [b"hello " * 50, os.urandom(300), b"hello " * 50]:
            frame = sender.encode(Frame(BINARY, data))
            assert receiver.decode(frame).data == data


# The enable_* helpers.


def test_enable_client_permessage_deflate() -> None:
    no_factories: list[Sequence[ClientExtensionFactory] | None] = [None, []]
    for given_ in no_factories:
        (factory,) = enable_client_permessage_deflate(given_)
        assert isinstance(factory, ClientPerMessageDeflateFactory)
        assert factory.get_request_params() == [("client_max_window_bits", None)]
        assert factory.compress_settings == {"memLevel": 5}
    existing = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    assert enable_client_permessage_deflate([existing]) == [existing]
    other = OtherClientFactory()
    given_list: list[ClientExtensionFactory] = [other]
    result = enable_client_permessage_deflate(given_list)
    assert result[0] is other
    assert isinstance(result[1], ClientPerMessageDeflateFactory)
    assert given_list == [other]


def test_enable_server_permessage_deflate() -> None:
    (factory,) = enable_server_permessage_deflate(None)
    assert isinstance(factory, ServerPerMessageDeflateFactory)
    assert factory.server_max_window_bits == 12
    assert factory.client_max_window_bits == 12
    assert factory.compress_settings == {"memLevel": 5}
    assert not factory.require_client_max_window_bits
    existing = ServerPerMessageDeflateFactory()
    assert enable_server_permessage_deflate((existing,)) == [existing]
    other = OtherServerFactory()
    result = enable_server_permessage_deflate([other])
    assert result[0] is other
    assert isinstance(result[1], ServerPerMessageDeflateFactory)


def test_default_factories_negotiate_small_windows() -> None:
    (client,) = enable_client_permessage_deflate(None)
    (server,) = enable_server_permessage_deflate(None)
    assert isinstance(client, ClientPerMessageDeflateFactory)
    assert isinstance(server, ServerPerMessageDeflateFactory)
    response, server_ext = server.process_request_params(client.get_request_params(), [])
    assert response == [("server_max_window_bits", "12"), ("client_max_window_bits", "12")]
    client_ext = client.process_response_params(response, [])
    assert (client_ext.local_max_window_bits, client_ext.remote_max_window_bits) == (12, 12)
    assert (server_ext.local_max_window_bits, server_ext.remote_max_window_bits) == (12, 12)


# The base classes.


class OtherClientFactory(ClientExtensionFactory):
    name = "x-other"


class OtherServerFactory(ServerExtensionFactory):
    name = "x-other"


def test_base_classes_leave_everything_to_subclasses() -> None:
    frame = Frame(TEXT, b"")
    with pytest.raises(NotImplementedError):
        OtherExtension().decode(frame)
    with pytest.raises(NotImplementedError):
        OtherExtension().encode(frame)
    with pytest.raises(NotImplementedError):
        OtherClientFactory().get_request_params()
    with pytest.raises(NotImplementedError):
        OtherClientFactory().process_response_params([], [])
    with pytest.raises(NotImplementedError):
        OtherServerFactory().process_request_params([], [])
    assert Extension.rsv_mask is None


# Whole messages in one frame: encode_message and decode_message, which the
# engine calls instead of encode and decode, give the same bytes.

KEYS = [None, b"\x37\xfa\x21\x3d"]


def decode_whole(
    ext: PerMessageDeflate, payload: bytes, key: bytes | None, max_size: int | None = None
) -> bytes:
    """decode_message on ``payload`` as it comes on the wire: masked with ``key`` if any."""
    wire = payload if key is None else apply_mask(payload, key)
    return ext.decode_message(memoryview(b"\xff" + wire)[1:], key, max_size)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("f248cdc9c90700", b"Hello"),  # 7.2.3.1
        ("f348cdc9c90700", b"Hello"),  # 7.2.3.4 without its last octet: BFINAL, nothing after
        ("f248cdc90100", b"Hell"),  # BFINAL, then the 4 octets stripped from nothing
        ("00", b""),  # 7.2.3.6
        ("", b""),  # no data at all
        ("f348cd0100 cac90700", b"Hello"),  # BFINAL, then a second stream
    ],
)
def test_decode_message_matches_decode(key: bytes | None, payload: str, expected: bytes) -> None:
    data = bytes.fromhex(payload.replace(" ", ""))
    general, whole = pmd(), pmd()
    assert general.decode(Frame(TEXT, data, rsv1=True)).data == expected
    assert decode_whole(whole, data, key) == expected
    # Both carry on alike: the next message refers back into what the
    # stream holds, if it did not end (BFINAL).
    follow = bytes.fromhex("f200110000")
    outcomes: list[bytes | int] = []
    for ext in (general, whole):
        try:
            if ext is general:
                outcomes.append(ext.decode(Frame(TEXT, follow, rsv1=True)).data)
            else:
                outcomes.append(decode_whole(ext, follow, key))
        except ProtocolError as exc:
            outcomes.append(exc.code)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("key", KEYS)
def test_decode_message_limits(key: bytes | None) -> None:
    data = os.urandom(1000)
    payload = pmd().encode(Frame(BINARY, data)).data
    assert decode_whole(pmd(), payload, key, max_size=1000) == data
    with pytest.raises(PayloadTooBig) as excinfo:
        decode_whole(pmd(), payload, key, max_size=999)
    assert (excinfo.value.size, excinfo.value.max_size) == (None, 999)
    with pytest.raises(PayloadTooBig):
        decode_whole(pmd(), bomb(10 * 2**20), key, max_size=2**20)
    assert decode_whole(pmd(), b"\x00", key, max_size=0) == b""


@pytest.mark.parametrize("key", KEYS)
def test_decode_message_after_a_stream_ending_over_the_limit(key: bytes | None) -> None:
    # A first stream ends (BFINAL) past the limit, with a second one after it.
    first = zlib.compressobj(wbits=-15)
    payload = first.compress(b"x" * 50) + first.flush(zlib.Z_FINISH)
    payload += bytes.fromhex("f248cdc9c90700")
    with pytest.raises(PayloadTooBig):
        decode_whole(pmd(), payload, key, max_size=20)
    assert decode_whole(pmd(), payload, key, max_size=55) == b"x" * 50 + b"Hello"
    with pytest.raises(PayloadTooBig):
        decode_whole(pmd(), payload, key, max_size=54)
    # A stored block ends its stream at once: one byte over, and the end.
    stored = zlib.compressobj(0, zlib.DEFLATED, -15)
    payload = stored.compress(b"x" * 21) + stored.flush(zlib.Z_FINISH)
    payload += bytes.fromhex("f248cdc9c90700")
    with pytest.raises(PayloadTooBig):
        decode_whole(pmd(), payload, key, max_size=20)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("payload", ["ff", "000500 0000", "f248cdc9c90700 ffffffff", "020000"])
def test_decode_message_corrupt_data_fails_with_1007(key: bytes | None, payload: str) -> None:
    with pytest.raises(ProtocolError) as excinfo:
        decode_whole(pmd(), bytes.fromhex(payload.replace(" ", "")), key)
    assert type(excinfo.value) is ProtocolError
    assert excinfo.value.code == 1007


def test_decode_message_without_context_takeover() -> None:
    sender = pmd(local_no_context_takeover=True)
    receiver = pmd(remote_no_context_takeover=True)
    for _ in range(3):
        frame = sender.encode_message(0x82, b"again and again", None)
        assert decode_whole(receiver, frame[2:], None) == b"again and again"
        assert receiver._decoder is None
        assert sender._encoder is None


@settings(max_examples=100, deadline=None)
@given(
    msgs=messages(),
    config=st.tuples(st.integers(8, 15), st.booleans(), st.integers(-1, 9), st.booleans()),
    key=st.sampled_from(KEYS),
)
def test_whole_messages_match_frames(
    msgs: list[list[bytes]], config: tuple[int, bool, int, bool], key: bytes | None
) -> None:
    bits, no_context_takeover, level, limit = config

    def sender() -> PerMessageDeflate:
        return PerMessageDeflate(False, no_context_takeover, 15, bits, {"level": level})

    frames_sender, whole_sender = sender(), sender()
    frames_receiver = pmd(remote_no_context_takeover=no_context_takeover)
    whole_receiver = pmd(remote_no_context_takeover=no_context_takeover)
    for fragments in msgs:
        data = b"".join(fragments)
        frame = frames_sender.encode(Frame(BINARY, data))
        wire = whole_sender.encode_message(0x82, data, key)
        assert wire == build_frame(0xC2, frame.data, key)
        max_size = len(data) if limit else None
        assert frames_receiver.decode(frame, max_size=max_size).data == data
        assert decode_whole(whole_receiver, frame.data, key, max_size) == data


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("view", [bytes, bytearray, memoryview])
def test_deflate_and_inflate_frame_twins(
    key: bytes | None, view: type[bytes] | type[bytearray] | type[memoryview]
) -> None:
    data = b"JSON-like, JSON-like, JSON-like " * 40
    frames = []
    for deflate in (deflate_frame, deflate_frame_python):
        encoder = zlib.compressobj(6, zlib.DEFLATED, -12, 5)
        frames.append([deflate(encoder, 0xC1, view(message), key) for message in (data, b"")])
    assert frames[0] == frames[1]
    (first, empty) = frames[0]
    assert empty == build_frame(0xC1, b"\x00", key)
    header = parse_frame(first, expect_mask=key is not None, allowed_rsv=0x40)
    assert header is not None
    payload = first[len(first) - len(header[0].data) :]
    outputs = []
    for inflate in (inflate_frame, inflate_frame_python):
        decoder = zlib.decompressobj(wbits=-12)
        outputs.append(inflate(decoder, view(payload), key, True, 0))
        outputs.append(inflate(decoder, view(b"\x00" if key is None else empty[-1:]), key, True, 5))
        outputs.append(decoder.unconsumed_tail)
    assert outputs[:3] == outputs[3:] == [data, b"", b""]
