"""Receiving with the protocol engine: the MUSTs of RFC 6455, size limits and streaming.

Every test that does not depend on the role runs for a client and a server
engine; the peer builds its frames as the other role would (masked when the
engine is a server).
"""

from __future__ import annotations

import itertools
import os
import random

import pytest

from tests.protocol.connection_helpers import (
    Buffer,
    Chunking,
    Peer,
    assert_failed,
    build_frame,
    close_frame,
    feed,
    header_size,
    reassemble,
    sent_frames,
)
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.protocol.close import Close
from tether.protocol.connection import (
    DEFAULT_MAX_SIZE,
    Connection,
    Role,
    State,
    default_max_fragments,
)
from tether.protocol.events import CloseReceived, Event, Fragment, Message, Ping, Pong
from tether.protocol.frames import Frame, Opcode, serialize_frame


def assert_quiet(conn: Connection) -> None:
    """Check that the engine neither sent anything nor failed."""
    assert conn.data_to_send() == []
    assert conn.error is None
    assert conn.state is State.OPEN
    assert not conn.close_transport


# Defaults and initial state


def test_initial_state(role: Role) -> None:
    conn = Connection(role)
    assert conn.role is role
    assert conn.state is State.OPEN
    assert conn.max_size == DEFAULT_MAX_SIZE == 1 << 20
    assert conn.max_fragments == default_max_fragments(DEFAULT_MAX_SIZE) == 65536
    assert not conn.streaming
    assert conn.extensions == []
    assert conn.close_rcvd is None
    assert conn.close_sent is None
    assert conn.close_rcvd_then_sent is None
    assert conn.error is None
    assert not conn.eof_received
    assert not conn.close_transport
    assert conn.close_code is None
    assert conn.close_reason is None
    assert conn.events() == []
    assert conn.data_to_send() == []


@pytest.mark.parametrize(
    ("max_size", "expected"),
    [(None, None), (0, 1024), (1024, 1024), (16 * 1024, 1024), (16 * 1025, 1025), (1 << 20, 65536)],
)
def test_default_max_fragments(max_size: int | None, expected: int | None) -> None:
    assert default_max_fragments(max_size) == expected
    assert Connection(Role.SERVER, max_size=max_size).max_fragments == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [({"max_size": -1}, "max_size"), ({"max_fragments": 0}, "max_fragments")],
)
def test_limits_below_their_range_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Connection(Role.SERVER, **options)  # type: ignore[arg-type]


def test_explicit_max_fragments_overrides_default() -> None:
    assert Connection(Role.CLIENT, max_size=None, max_fragments=7).max_fragments == 7


def test_empty_data_is_ignored(conn: Connection) -> None:
    conn.receive_data(b"")
    assert conn.events() == []
    assert_quiet(conn)


# Receiving messages


@pytest.mark.parametrize("payload", ["", "hello", "héllo wörld €𝄞", "x" * 125, "y" * 300])
def test_receive_text(conn: Connection, peer: Peer, chunking: Chunking, payload: str) -> None:
    feed(conn, peer.text(payload), chunking)
    assert conn.events() == [Message(payload)]
    assert_quiet(conn)


@pytest.mark.parametrize("payload", [b"", b"\x00\xff", bytes(range(256))])
def test_receive_binary(conn: Connection, peer: Peer, chunking: Chunking, payload: bytes) -> None:
    feed(conn, peer.binary(payload), chunking)
    assert conn.events() == [Message(payload)]
    assert_quiet(conn)


@pytest.mark.parametrize("chunks", ["whole", "random"])
def test_receive_large_messages(conn: Connection, peer: Peer, chunks: Chunking) -> None:
    # 16-bit and 64-bit lengths, delivered at once or in many pieces.
    text, binary = "z€" * 30000, b"\x80" * 70000
    feed(conn, peer.text(text) + peer.binary(binary), chunks)
    assert conn.events() == [Message(text), Message(binary)]
    assert_quiet(conn)


@pytest.mark.parametrize(
    "sizes",
    [
        [4096],
        [70000],
        [10, 5000, 3, 4096, 4095, 70000, 1],
        [5000, 5000, 0],
        [1, 2, 3],
    ],
)
@pytest.mark.parametrize("chunks", ["whole", "random"])
def test_receive_fragmented_binary_of_large_and_small_pieces(
    conn: Connection, peer: Peer, sizes: list[int], chunks: Chunking
) -> None:
    # Pieces of 4 KiB and more are kept apart and joined at the end; smaller
    # ones are gathered as they come: the message is the same either way.
    pieces = [os.urandom(size) for size in sizes]
    wire = peer.binary(pieces[0], fin=len(pieces) == 1)
    for index, piece in enumerate(pieces[1:], 2):
        wire += peer.cont(piece, fin=index == len(pieces))
    feed(conn, wire + wire, chunks)
    assert conn.events() == [Message(b"".join(pieces))] * 2
    assert_quiet(conn)


def test_client_keeps_a_read_that_is_all_payload() -> None:
    # An unmasked read that holds nothing but payload becomes the message as
    # it is: a large message from a server is not copied once more.
    conn = Connection(Role.CLIENT)
    payload = os.urandom(100_000)
    conn.receive_data(serialize_frame(Opcode.BINARY, payload, mask=False)[:-100_000])
    conn.receive_data(payload)
    [message] = conn.events()
    assert message == Message(payload)
    assert message.data is payload


def test_receive_long_text_byte_by_byte_is_one_message(conn: Connection, peer: Peer) -> None:
    # Over 256 pieces: the engine folds them together as they come.
    payload = "é" * 700
    feed(conn, peer.text(payload), "bytewise")
    assert conn.events() == [Message(payload)]


def test_receive_fragmented_text(conn: Connection, peer: Peer, chunking: Chunking) -> None:
    wire = peer.text("hé", fin=False) + peer.cont("", fin=False) + peer.cont("llo", fin=True)
    feed(conn, wire, chunking)
    assert conn.events() == [Message("héllo")]
    assert_quiet(conn)


def test_receive_fragmented_binary(conn: Connection, peer: Peer, chunking: Chunking) -> None:
    wire = peer.binary(b"\x01", fin=False) + peer.cont(b"\x02\x03", fin=False) + peer.cont(b"")
    feed(conn, wire, chunking)
    assert conn.events() == [Message(b"\x01\x02\x03")]
    assert_quiet(conn)


def test_receive_several_messages_in_one_chunk(conn: Connection, peer: Peer) -> None:
    wire = peer.text("a") + peer.binary(b"b") + peer.ping(b"c") + peer.pong(b"d") + peer.text("e")
    conn.receive_data(wire)
    assert conn.events() == [Message("a"), Message(b"b"), Ping(b"c"), Pong(b"d"), Message("e")]
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"c")]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_receive_any_buffer_type(conn: Connection, peer: Peer, kind: Buffer) -> None:
    wire = peer.text("hello") + peer.binary(b"world" * 100)
    conn.receive_data(kind(wire[:3]))
    conn.receive_data(kind(wire[3:20]))
    conn.receive_data(kind(wire[20:]))
    assert conn.events() == [Message("hello"), Message(b"world" * 100)]


def test_receive_memoryview_partial_frame(conn: Connection, peer: Peer) -> None:
    wire = peer.text("a" * 200)
    conn.receive_data(memoryview(wire)[:100])
    conn.receive_data(memoryview(wire)[100:])
    assert conn.events() == [Message("a" * 200)]


def test_events_and_data_to_send_drain(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.ping(b"x"))
    assert conn.events() == [Ping(b"x")]
    assert conn.events() == []
    assert len(conn.data_to_send()) == 1
    assert conn.data_to_send() == []


# Section 5.1: masking


def test_5_1_unmasked_frame_at_server_fails_1002() -> None:
    conn = Connection(Role.SERVER)
    conn.receive_data(serialize_frame(Opcode.TEXT, b"hi", mask=False)[:2])
    assert_failed(conn, 1002)
    assert str(conn.error) == "unmasked frame from client"


def test_5_1_masked_frame_at_client_fails_1002() -> None:
    conn = Connection(Role.CLIENT)
    conn.receive_data(serialize_frame(Opcode.TEXT, b"hi", mask=True)[:2])
    assert_failed(conn, 1002)
    assert str(conn.error) == "incorrect masking"


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.CLOSE])
def test_5_1_masking_checked_on_control_frames(role: Role, opcode: Opcode) -> None:
    conn = Connection(role)
    conn.receive_data(serialize_frame(opcode, b"", mask=role is Role.CLIENT))
    assert_failed(conn, 1002)
    assert conn.events() == []


def test_5_3_unmasking_across_chunks(role: Role) -> None:
    # The masking key's offset must carry over between partial payload pieces.
    conn = Connection(role)
    key = bytes.fromhex("37fa213d")
    payload = bytes(range(251))
    wire = build_frame(Opcode.BINARY, payload, key=key if role is Role.SERVER else None)
    for size in (3, 5, 7, 2, 1, 9):
        conn.receive_data(wire[:size])
        wire = wire[size:]
    conn.receive_data(wire)
    assert conn.events() == [Message(payload)]


# Section 5.2: base framing


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_5_2_reserved_opcodes_fail_1002(conn: Connection, peer: Peer, opcode: int) -> None:
    # The first byte alone is enough to fail.
    conn.receive_data(peer.frame(opcode, b"data")[:1])
    assert_failed(conn, 1002)
    assert conn.events() == []


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x60, 0x70])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CLOSE])
def test_5_2_rsv_bits_without_extension_fail_1002(
    conn: Connection, peer: Peer, rsv: int, opcode: Opcode
) -> None:
    conn.receive_data(peer.frame(opcode, b"", rsv=rsv)[:1])
    assert_failed(conn, 1002)
    assert conn.events() == []


def test_5_2_rsv_bits_on_continuation_fail_1002(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("a", fin=False))
    conn.receive_data(peer.cont("b", rsv=0x40))
    assert_failed(conn, 1002)
    assert conn.events() == []


def test_5_2_64_bit_length_with_top_bit_fails_1002(conn: Connection, peer: Peer) -> None:
    header = bytes([0x82, (0x80 if peer.masks else 0) | 127, 0x80])
    conn.receive_data(header)
    assert_failed(conn, 1002)


@pytest.mark.parametrize(
    "length",
    [0, 125, 126, 127, 0xFFFF, 0x10000],
    ids=["0", "125", "126-16bit", "127-16bit", "65535", "65536-64bit"],
)
def test_5_2_payload_length_encodings(conn: Connection, peer: Peer, length: int) -> None:
    conn.receive_data(peer.binary(b"\x42" * length))
    assert conn.events() == [Message(b"\x42" * length)]


# Section 5.4: fragmentation


def test_5_4_control_frames_between_fragments(
    conn: Connection, peer: Peer, chunking: Chunking
) -> None:
    wire = (
        peer.text("one ", fin=False)
        + peer.ping(b"p1")
        + peer.cont("two ", fin=False)
        + peer.pong(b"p2")
        + peer.ping(b"")
        + peer.cont("three")
        + peer.binary(b"next")
    )
    feed(conn, wire, chunking)
    assert conn.events() == [
        Ping(b"p1"),
        Pong(b"p2"),
        Ping(b""),
        Message("one two three"),
        Message(b"next"),
    ]
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"p1"), Frame(Opcode.PONG, b"")]
    assert conn.error is None


def test_5_4_close_between_fragments(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("one", fin=False) + peer.close(1000) + peer.cont("two"))
    assert conn.events() == [CloseReceived(Close(1000))]
    assert sent_frames(conn) == [close_frame(1000)]


@pytest.mark.parametrize("fin", [True, False])
def test_5_4_continuation_without_message_fails_1002(
    conn: Connection, peer: Peer, fin: bool
) -> None:
    conn.receive_data(peer.cont("orphan", fin=fin))
    assert_failed(conn, 1002)
    assert conn.events() == []


def test_5_4_continuation_after_complete_message_fails_1002(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("a", fin=False) + peer.cont("b") + peer.cont("c"))
    assert conn.events() == [Message("ab")]
    assert_failed(conn, 1002)


@pytest.mark.parametrize("first", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("second", [Opcode.TEXT, Opcode.BINARY])
def test_5_4_new_data_frame_mid_message_fails_1002(
    conn: Connection, peer: Peer, first: Opcode, second: Opcode
) -> None:
    conn.receive_data(peer.frame(first, b"a", fin=False))
    # The second frame's header alone fails: its payload is never needed.
    conn.receive_data(peer.frame(second, b"b")[:2])
    assert conn.events() == []
    if peer.masks:
        assert conn.error is None  # the masking key is part of the header
        conn.receive_data(peer.frame(second, b"b")[2:6])
    assert_failed(conn, 1002)


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_5_4_fragmented_control_frame_fails_1002(
    conn: Connection, peer: Peer, opcode: Opcode
) -> None:
    conn.receive_data(peer.frame(opcode, b"", fin=False)[:1])
    assert_failed(conn, 1002)
    assert conn.events() == []


@pytest.mark.parametrize("opcode", [Opcode.CLOSE, Opcode.PING, Opcode.PONG])
def test_5_5_control_payload_over_125_fails_1002(
    conn: Connection, peer: Peer, opcode: Opcode
) -> None:
    conn.receive_data(peer.frame(opcode, b"\x03\xe8" + b"x" * 124)[:2])
    assert_failed(conn, 1002)
    assert conn.events() == []


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG])
def test_5_5_control_payload_of_125_passes(conn: Connection, peer: Peer, opcode: Opcode) -> None:
    conn.receive_data(peer.frame(opcode, b"x" * 125))
    event = Ping(b"x" * 125) if opcode is Opcode.PING else Pong(b"x" * 125)
    assert conn.events() == [event]
    assert conn.error is None


# Section 5.5.1: close


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1000, ""),
        (1001, "bye"),
        (1002, "ünïcödé"),
        (1003, "r" * 123),
        (1007, "€"),
        (1011, "error"),
        (3000, ""),
        (4999, "x"),
    ],
)
def test_5_5_1_close_is_echoed(
    conn: Connection, peer: Peer, chunking: Chunking, code: int, reason: str
) -> None:
    feed(conn, peer.close(code, reason), chunking)
    assert conn.events() == [CloseReceived(Close(code, reason))]
    # The echo carries the code and the reason, byte for byte.
    assert sent_frames(conn) == [close_frame(code, reason)]
    assert conn.close_rcvd == conn.close_sent == Close(code, reason)
    assert conn.close_rcvd_then_sent is True
    assert conn.state is State.CLOSING
    assert conn.close_code == code
    assert conn.close_reason == reason
    assert conn.error is None


def test_5_5_1_close_reason_of_123_bytes(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.close(1000, "é" * 61 + "x"))
    assert conn.events() == [CloseReceived(Close(1000, "é" * 61 + "x"))]


def test_5_5_1_close_without_payload_is_echoed_empty(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.close(None))
    assert conn.events() == [CloseReceived(Close(1005))]
    assert sent_frames(conn) == [Frame(Opcode.CLOSE, b"")]
    assert conn.close_rcvd == conn.close_sent == Close(1005)
    assert conn.close_code == 1005
    assert conn.close_reason == ""


def test_5_5_1_close_payload_one_byte_fails_1002(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.close_raw(b"\x03"))
    assert_failed(conn, 1002)
    assert conn.events() == []


def test_5_5_1_no_data_after_close(conn: Connection, peer: Peer) -> None:
    # In the same chunk as the close frame, then in later chunks: all ignored,
    # even frames that would fail the connection.
    after = peer.text("late") + peer.ping(b"late") + peer.close(1001)
    conn.receive_data(peer.close(1000) + after)
    conn.receive_data(after)
    conn.receive_data(b"\xff\xff\xff")
    assert conn.events() == [CloseReceived(Close(1000))]
    assert sent_frames(conn) == [close_frame(1000)]
    assert conn.close_rcvd == Close(1000)
    assert conn.error is None


def test_5_5_1_no_data_after_close_split(conn: Connection, peer: Peer) -> None:
    wire = peer.close(1000) + peer.ping(b"late")
    feed(conn, wire, "bytewise")
    assert conn.events() == [CloseReceived(Close(1000))]
    assert sent_frames(conn) == [close_frame(1000)]


def test_5_5_1_data_still_received_after_sending_close(conn: Connection, peer: Peer) -> None:
    conn.send_close(1000)
    assert sent_frames(conn) == [close_frame(1000)]
    conn.receive_data(peer.text("in flight") + peer.binary(b"too") + peer.close(1000))
    assert conn.events() == [
        Message("in flight"),
        Message(b"too"),
        CloseReceived(Close(1000)),
    ]
    assert sent_frames(conn) == []


# Section 5.5.2 and 5.5.3: ping and pong


@pytest.mark.parametrize("payload", [b"", b"\x00", b"ping!", bytes(range(125))])
def test_5_5_2_ping_answered_with_same_payload(
    conn: Connection, peer: Peer, chunking: Chunking, payload: bytes
) -> None:
    feed(conn, peer.ping(payload), chunking)
    assert conn.events() == [Ping(payload)]
    assert sent_frames(conn) == [Frame(Opcode.PONG, payload)]
    assert conn.error is None


def test_5_5_2_ping_answered_while_closing(conn: Connection, peer: Peer) -> None:
    # Until its close frame arrives, the peer's pings get pongs.
    conn.send_close(1000)
    conn.data_to_send()
    conn.receive_data(peer.ping(b"still there?"))
    assert conn.events() == [Ping(b"still there?")]
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"still there?")]


def test_5_5_2_each_ping_answered(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.ping(b"1") + peer.ping(b"2") + peer.ping(b"3"))
    assert conn.events() == [Ping(b"1"), Ping(b"2"), Ping(b"3")]
    assert sent_frames(conn) == [Frame(Opcode.PONG, data) for data in (b"1", b"2", b"3")]


@pytest.mark.parametrize("payload", [b"", b"heartbeat", bytes(125)])
def test_5_5_3_unsolicited_pong_ignored_but_reported(
    conn: Connection, peer: Peer, chunking: Chunking, payload: bytes
) -> None:
    feed(conn, peer.pong(payload), chunking)
    assert conn.events() == [Pong(payload)]
    assert_quiet(conn)


# Section 5.6 and 8.1: UTF-8 in text messages

INVALID_UTF8 = [
    # (bytes, index of the first byte that makes the prefix invalid)
    (b"\xff", 0),
    (b"\xfe", 0),
    (b"\x80", 0),
    (b"\xbf", 0),
    (b"\xc0\x80", 0),
    (b"\xc1\xbf", 0),
    (b"\xc2\x41", 1),
    (b"\xe0\x80\x80", 1),
    (b"\xe0\x9f\xbf", 1),
    (b"\xe1\x80\x41", 2),
    (b"\xed\xa0\x80", 1),
    (b"\xed\xbf\xbf", 1),
    (b"\xf0\x80\x80\x80", 1),
    (b"\xf0\x8f\xbf\xbf", 1),
    (b"\xf1\x80\x80\x41", 3),
    (b"\xf4\x90\x80\x80", 1),
    (b"\xf5\x80\x80\x80", 0),
    (b"\xf8\x88\x80\x80\x80", 0),
]
INVALID_IDS = [bad.hex() for bad, _ in INVALID_UTF8]


@pytest.mark.parametrize(("bad", "index"), INVALID_UTF8, ids=INVALID_IDS)
def test_5_6_invalid_utf8_fails_1007(
    conn: Connection, peer: Peer, chunking: Chunking, bad: bytes, index: int
) -> None:
    feed(conn, peer.text(b"ok " + bad + b" more"), chunking)
    assert_failed(conn, 1007)
    assert conn.events() == []


@pytest.mark.parametrize(("bad", "index"), INVALID_UTF8, ids=INVALID_IDS)
def test_5_6_invalid_utf8_in_fragment_fails_1007(
    conn: Connection, peer: Peer, bad: bytes, index: int
) -> None:
    wire = peer.text(b"ok", fin=False) + peer.cont(bad, fin=False) + peer.cont(b"tail")
    conn.receive_data(wire)
    assert_failed(conn, 1007)
    assert conn.events() == []


@pytest.mark.parametrize("tail", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"])
def test_5_6_truncated_character_at_end_of_message_fails_1007(
    conn: Connection, peer: Peer, chunking: Chunking, tail: bytes
) -> None:
    feed(conn, peer.text(b"abc" + tail), chunking)
    assert_failed(conn, 1007)


def test_5_6_truncated_character_at_end_of_fragmented_message_fails_1007(
    conn: Connection, peer: Peer
) -> None:
    conn.receive_data(peer.text(b"abc\xe2", fin=False) + peer.cont(b"\x82"))
    assert_failed(conn, 1007)


def test_5_6_characters_split_across_fragments(
    conn: Connection, peer: Peer, chunking: Chunking
) -> None:
    encoded = "a€𝄞é".encode()
    wire = b"".join(
        peer.frame(Opcode.TEXT if i == 0 else Opcode.CONT, encoded[i : i + 1], fin=False)
        for i in range(len(encoded))
    )
    feed(conn, wire + peer.cont(b""), chunking)
    assert conn.events() == [Message("a€𝄞é")]


def test_5_6_binary_message_is_not_checked(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.binary(b"\xff\xed\xa0\x80"))
    assert conn.events() == [Message(b"\xff\xed\xa0\x80")]


@pytest.mark.parametrize(("bad", "index"), INVALID_UTF8, ids=INVALID_IDS)
@pytest.mark.parametrize("fragmented", [False, True])
def test_8_1_utf8_fail_fast_mid_frame(
    conn: Connection, peer: Peer, bad: bytes, index: int, fragmented: bool
) -> None:
    """The byte that makes the text invalid fails the connection as soon as it arrives."""
    prefix = "héllo €".encode()
    payload = prefix + bad + b"x" * 50
    if fragmented:
        conn.receive_data(peer.text(b"first", fin=False))
        frame = peer.cont(payload)
    else:
        frame = peer.text(payload)
    fail_at = header_size(frame) + len(prefix) + index
    for position in range(fail_at):
        conn.receive_data(frame[position : position + 1])
        assert conn.error is None, position
    conn.receive_data(frame[fail_at : fail_at + 1])
    assert_failed(conn, 1007)
    conn.receive_data(frame[fail_at + 1 :])
    assert conn.events() == []
    assert conn.data_to_send() == []


def test_8_1_utf8_fail_fast_in_one_chunk_with_header(conn: Connection, peer: Peer) -> None:
    frame = peer.text(b"ok\xff" + b"x" * 100)
    conn.receive_data(frame[: header_size(frame) + 3])
    assert_failed(conn, 1007)


# Section 7.4: close codes

VALID_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
) | frozenset(range(3000, 5000))


def test_7_4_invalid_close_codes_fail_1002(role: Role) -> None:
    peer = Peer(role)
    for code in range(5001):
        conn = Connection(role)
        conn.receive_data(peer.close_raw(code.to_bytes(2, "big") + b"why"))
        if code in VALID_CLOSE_CODES:
            assert conn.events() == [CloseReceived(Close(code, "why"))], code
            assert sent_frames(conn) == [close_frame(code, "why")], code
            assert conn.error is None
        else:
            assert conn.events() == [], code
            assert conn.error is not None, code
            assert conn.error.code == 1002, code
            assert sent_frames(conn) == [close_frame(1002, str(conn.error))], code
            assert conn.close_rcvd is None


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_7_4_reserved_close_codes_fail_1002(conn: Connection, peer: Peer, code: int) -> None:
    conn.receive_data(peer.close_raw(code.to_bytes(2, "big")))
    assert_failed(conn, 1002)
    assert str(conn.error) == f"invalid close code {code}"


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
def test_7_1_6_close_reason_invalid_utf8_fails_1007(
    conn: Connection, peer: Peer, reason: bytes
) -> None:
    conn.receive_data(peer.close_raw(b"\x03\xe8" + reason))
    assert_failed(conn, 1007)
    assert conn.events() == []


# Section 7.1.1: the server closes TCP first


def test_7_1_1_server_closes_tcp_first_they_close(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    assert not conn.half_close
    conn.receive_data(peer.close(1000))
    assert conn.close_transport is (role is Role.SERVER)
    assert conn.close_sent == Close(1000)
    # A server half-closes and reads on: the client may still send a pong.
    assert conn.half_close
    conn.receive_eof()
    assert conn.close_transport
    assert not conn.half_close
    assert conn.state is State.CLOSED


def test_7_1_1_server_closes_tcp_first_we_close(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    conn.send_close(1001, "going")
    assert not conn.close_transport
    assert not conn.half_close
    conn.receive_data(peer.close(1001))
    assert conn.close_transport is (role is Role.SERVER)
    assert conn.half_close
    conn.receive_data(peer.text("ignored"))
    assert conn.close_transport is (role is Role.SERVER)
    assert conn.events() == [CloseReceived(Close(1001))]
    conn.receive_eof()
    assert conn.close_transport
    assert not conn.half_close
    assert conn.eof_received
    assert conn.state is State.CLOSED
    # The close frames stay what they were.
    assert conn.close_code == 1001
    assert conn.close_reason == ""


def test_half_close_after_failing_on_the_peers_data(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    conn.receive_data(peer.frame(Opcode.TEXT, b"\xff"))
    assert conn.error is not None
    assert conn.close_transport
    # The rest of what the peer sends is read and dropped until its EOF.
    assert conn.half_close
    conn.receive_eof()
    assert not conn.half_close


def test_no_half_close_after_failing_for_the_layer_above(role: Role) -> None:
    conn = Connection(role)
    conn.fail(1011, "keepalive ping timeout")
    assert conn.close_transport
    assert not conn.half_close


# max_size: incoming messages


def message_frames(
    peer: Peer, opcode: Opcode, payload: bytes, size: int | None, *, extra: int = 0
) -> list[bytes]:
    """The message ``payload`` as frames of ``size`` bytes, or one frame for ``None``.

    ``extra`` bytes are added to the last frame.
    """
    if size is None:
        pieces = [payload]
    else:
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    pieces[-1] += b"a" * extra
    return [
        peer.frame(opcode if i == 0 else Opcode.CONT, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]


MAX_SIZE = 16 * 1100  # 1100 fragments of 16 bytes: over the floor of 1024


@pytest.mark.parametrize("fragment", [None, 64, 16], ids=["whole", "64-byte", "16-byte"])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_max_size_exact_passes(role: Role, opcode: Opcode, fragment: int | None) -> None:
    conn, peer = Connection(role, max_size=MAX_SIZE), Peer(role)
    assert conn.max_fragments == 1100
    payload = b"a" * MAX_SIZE
    conn.receive_data(b"".join(message_frames(peer, opcode, payload, fragment)))
    expected = payload.decode() if opcode is Opcode.TEXT else payload
    assert conn.events() == [Message(expected)]
    assert_quiet(conn)


@pytest.mark.parametrize("fragment", [None, 16], ids=["whole", "16-byte"])
def test_max_size_exact_passes_with_default_limit(fragment: int | None) -> None:
    # 65536 fragments of 16 bytes: the default max_fragments lets them through.
    # Both roles share this path; a client engine keeps the test fast.
    conn, peer = Connection(Role.CLIENT), Peer(Role.CLIENT)
    payload = b"a" * DEFAULT_MAX_SIZE
    conn.receive_data(b"".join(message_frames(peer, Opcode.BINARY, payload, fragment)))
    assert conn.events() == [Message(payload)]
    assert_quiet(conn)


@pytest.mark.parametrize("fragment", [None, 64, 16], ids=["whole", "64-byte", "16-byte"])
@pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
def test_max_size_one_more_fails_1009_on_header(
    role: Role, opcode: Opcode, fragment: int | None
) -> None:
    conn, peer = Connection(role, max_size=MAX_SIZE), Peer(role)
    frames = message_frames(peer, opcode, b"a" * MAX_SIZE, fragment, extra=1)
    conn.receive_data(b"".join(frames[:-1]))
    assert conn.error is None
    # Only the header of the frame that goes over the limit is fed.
    last = frames[-1]
    conn.receive_data(last[: header_size(last)])
    assert_failed(conn, 1009)
    error = conn.error
    assert isinstance(error, PayloadTooBig)
    # websockets' fields: the frame's size, what came before it, the limit counting both.
    before = 0 if fragment is None else MAX_SIZE - fragment
    assert (error.size, error.max_size) == (MAX_SIZE + 1 - before, MAX_SIZE)
    assert error.current_size == (before or None)
    if fragment is None:
        assert str(error) == f"frame with {MAX_SIZE + 1} bytes exceeds limit of {MAX_SIZE} bytes"
    else:
        assert str(error) == (
            f"frame with {fragment + 1} bytes after reading {before} bytes "
            f"exceeds limit of {MAX_SIZE} bytes"
        )
    assert conn.events() == []


def test_max_size_fails_1009_before_payload(conn: Connection, peer: Peer) -> None:
    frame = peer.binary(b"\x00" * (DEFAULT_MAX_SIZE + 1))
    conn.receive_data(frame[:10])
    if peer.masks:
        assert conn.error is None  # the masking key is still missing
        conn.receive_data(frame[10:14])
    assert_failed(conn, 1009)


@pytest.mark.parametrize("max_size", [DEFAULT_MAX_SIZE, 0, 1, None])
def test_max_size_huge_length_fails_1009_at_once(role: Role, max_size: int | None) -> None:
    conn, peer = Connection(role, max_size=max_size), Peer(role)
    header = bytes([0x82, (0x80 if peer.masks else 0) | 127]) + (2**63 - 1).to_bytes(8, "big")
    header += b"\x01\x02\x03\x04" if peer.masks else b""
    conn.receive_data(header)
    if max_size is None:
        assert_quiet(conn)
    else:
        assert_failed(conn, 1009)


def test_max_size_zero_allows_empty_messages(conn: Connection, peer: Peer) -> None:
    conn = Connection(conn.role, max_size=0)
    conn.receive_data(peer.text("") + peer.binary(b"", fin=False) + peer.cont(b""))
    assert conn.events() == [Message(""), Message(b"")]
    conn.receive_data(peer.text("x"))
    assert_failed(conn, 1009)


def test_max_size_counts_each_message_afresh(role: Role) -> None:
    conn, peer = Connection(role, max_size=10), Peer(role)
    for _ in range(5):
        conn.receive_data(peer.binary(b"x" * 5, fin=False) + peer.cont(b"y" * 5))
        conn.receive_data(peer.text("z" * 10))
    assert len(conn.events()) == 10
    assert conn.error is None


def test_max_size_control_frames_do_not_count(role: Role) -> None:
    conn, peer = Connection(role, max_size=4), Peer(role)
    conn.receive_data(peer.text("ab", fin=False) + peer.ping(b"x" * 100) + peer.cont("cd"))
    assert conn.events() == [Ping(b"x" * 100), Message("abcd")]


def test_max_size_none_is_unbounded(role: Role) -> None:
    conn, peer = Connection(role, max_size=None), Peer(role)
    assert conn.max_fragments is None
    big = b"\x01" * (3 * DEFAULT_MAX_SIZE)
    conn.receive_data(peer.binary(big))
    conn.receive_data(peer.binary(b""))
    assert conn.max_fragments is None
    pieces = [peer.text("", fin=False)] + [peer.cont("", fin=False)] * 5000 + [peer.cont("!")]
    conn.receive_data(b"".join(pieces))
    assert conn.events() == [Message(big), Message(b""), Message("!")]
    assert_quiet(conn)


def test_max_fragments_exceeded_fails_1009(role: Role) -> None:
    conn, peer = Connection(role, max_size=None, max_fragments=3), Peer(role)
    conn.receive_data(peer.text("a", fin=False) + peer.cont("b", fin=False) + peer.cont("c"))
    assert conn.events() == [Message("abc")]
    conn.receive_data(peer.binary(b"a", fin=False) + peer.cont(b"b", fin=False))
    conn.receive_data(peer.cont(b"c", fin=False))
    assert conn.error is None
    conn.receive_data(peer.cont(b"d")[:2])
    if peer.masks:
        conn.receive_data(peer.cont(b"d")[2:6])
    assert_failed(conn, 1009)
    assert conn.events() == []


def test_max_fragments_bounds_empty_fragments(role: Role) -> None:
    # max_size // 16 is under the floor: 1024 fragments, however small.
    conn, peer = Connection(role, max_size=16 * 64), Peer(role)
    assert conn.max_fragments == 1024
    pieces = [peer.binary(b"", fin=False)] + [peer.cont(b"", fin=False)] * 1023
    conn.receive_data(b"".join(pieces))
    assert conn.error is None
    conn.receive_data(peer.cont(b"", fin=False))
    assert_failed(conn, 1009)


def test_max_fragments_one_allows_only_single_frames(role: Role) -> None:
    conn, peer = Connection(role, max_fragments=1), Peer(role)
    conn.receive_data(peer.text("whole"))
    conn.receive_data(peer.text("part", fin=False))
    assert conn.events() == [Message("whole")]
    assert conn.error is None
    conn.receive_data(peer.cont(""))
    assert_failed(conn, 1009)


# Streaming


@pytest.fixture
def streaming(role: Role) -> Connection:
    return Connection(role, streaming=True)


def test_streaming_text_fragments(streaming: Connection, peer: Peer) -> None:
    wire = peer.text(b"h\xc3", fin=False) + peer.cont(b"\xa9llo", fin=False) + peer.cont(b"")
    streaming.receive_data(wire)
    assert streaming.events() == [
        Fragment("h", True, False),
        Fragment("éllo", False, False),
        Fragment("", False, True),
    ]


def test_streaming_first_fragment_empty(streaming: Connection, peer: Peer) -> None:
    wire = peer.text(b"\xf0\x9d", fin=False) + peer.cont(b"\x84", fin=False) + peer.cont(b"\x9e!")
    streaming.receive_data(wire)
    assert streaming.events() == [
        Fragment("", True, False),
        Fragment("𝄞!", False, True),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_streaming_text_split_anywhere(streaming: Connection, peer: Peer, seed: int) -> None:
    text = "ascii é € 𝄞 中文 " * 20
    encoded = text.encode()
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(encoded)), 12))
    bounds = [0, *cuts, len(encoded)]
    wire = b"".join(
        peer.frame(
            Opcode.TEXT if i == 0 else Opcode.CONT,
            encoded[start:end],
            fin=i == len(bounds) - 2,
        )
        for i, (start, end) in enumerate(itertools.pairwise(bounds))
    )
    chunking: Chunking = "bytewise" if seed == 0 else "random"
    feed(streaming, wire, chunking, random.Random(seed))
    events = streaming.events()
    assert all(isinstance(event, Fragment) for event in events)
    fragments = [event for event in events if isinstance(event, Fragment)]
    assert all(isinstance(fragment.data, str) for fragment in fragments)
    assert [f.first for f in fragments] == [True] + [False] * (len(fragments) - 1)
    assert [f.last for f in fragments] == [False] * (len(fragments) - 1) + [True]
    # Only the first and the last piece may be empty.
    assert all(f.data for f in fragments[1:-1])
    assert reassemble(events) == [Message(text)]


def test_streaming_binary_fragments(streaming: Connection, peer: Peer) -> None:
    wire = peer.binary(b"\x00", fin=False) + peer.cont(b"", fin=False) + peer.cont(b"\x01\x02")
    streaming.receive_data(wire)
    assert streaming.events() == [
        Fragment(b"\x00", True, False),
        Fragment(b"\x01\x02", False, True),
    ]


def test_streaming_binary_empty_ends(streaming: Connection, peer: Peer) -> None:
    streaming.receive_data(peer.binary(b"", fin=False) + peer.cont(b"", fin=True))
    assert streaming.events() == [Fragment(b"", True, False), Fragment(b"", False, True)]


def test_streaming_binary_byte_by_byte(streaming: Connection, peer: Peer) -> None:
    wire = peer.binary(b"abc", fin=False) + peer.cont(b"de")
    feed(streaming, wire, "bytewise")
    assert streaming.events() == [
        Fragment(b"a", True, False),
        Fragment(b"b", False, False),
        Fragment(b"c", False, False),
        Fragment(b"d", False, False),
        Fragment(b"e", False, True),
    ]


def test_streaming_text_byte_by_byte(streaming: Connection, peer: Peer) -> None:
    wire = peer.text("é", fin=False) + peer.cont("€")
    feed(streaming, wire, "bytewise")
    assert streaming.events() == [
        Fragment("", True, False),
        Fragment("é", False, False),
        Fragment("€", False, True),
    ]


@pytest.mark.parametrize("payload", ["", "héllo €𝄞" * 10])
def test_streaming_unfragmented_text_is_one_message(
    streaming: Connection, peer: Peer, chunking: Chunking, payload: str
) -> None:
    feed(streaming, peer.text(payload), chunking)
    assert streaming.events() == [Message(payload)]


@pytest.mark.parametrize("payload", [b"", bytes(range(256))])
def test_streaming_unfragmented_binary_is_one_message(
    streaming: Connection, peer: Peer, chunking: Chunking, payload: bytes
) -> None:
    feed(streaming, peer.binary(payload), chunking)
    assert streaming.events() == [Message(payload)]


def test_streaming_control_frames_between_fragments(streaming: Connection, peer: Peer) -> None:
    wire = peer.text("a", fin=False) + peer.ping(b"p") + peer.cont("b") + peer.text("c")
    streaming.receive_data(wire)
    assert streaming.events() == [
        Fragment("a", True, False),
        Ping(b"p"),
        Fragment("b", False, True),
        Message("c"),
    ]


def test_streaming_max_size(role: Role) -> None:
    conn, peer = Connection(role, streaming=True, max_size=4), Peer(role)
    conn.receive_data(peer.binary(b"ab", fin=False) + peer.cont(b"cd", fin=False))
    conn.receive_data(peer.cont(b"e"))
    events: list[Event] = conn.events()
    assert events == [Fragment(b"ab", True, False), Fragment(b"cd", False, False)]
    assert_failed(conn, 1009)


def test_streaming_invalid_utf8_fails_1007(streaming: Connection, peer: Peer) -> None:
    streaming.receive_data(peer.text("ok", fin=False) + peer.cont(b"\xed\xa0\x80"))
    assert streaming.events() == [Fragment("ok", True, False)]
    assert_failed(streaming, 1007)


# Failing and the end of input


def test_input_ignored_after_failure(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.cont("bad") + peer.text("never seen"))
    assert_failed(conn, 1002)
    conn.receive_data(peer.text("ignored") + peer.ping(b"ignored"))
    assert conn.events() == []
    assert conn.data_to_send() == []


def test_error_is_protocol_error(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.frame(3))
    assert type(conn.error) is ProtocolError
    assert str(conn.error) == "reserved opcode 0x3"


def test_receive_eof_mid_message(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("unfinished", fin=False) + peer.cont("x" * 10)[:5])
    conn.receive_eof()
    assert conn.events() == []
    assert conn.state is State.CLOSED
    assert conn.close_transport
    assert conn.eof_received
    assert conn.close_code == 1006
    assert conn.close_reason == ""
    conn.receive_data(peer.cont("more"))
    assert conn.events() == []
    assert conn.data_to_send() == []


def test_event_reprs_stay_short(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("é" * 1000) + peer.binary(b"\x00" * 100, fin=False))
    conn.receive_data(peer.cont(b"\x01" * 3))
    message, binary = conn.events()
    assert repr(message) == f"Message(data={'é' * 48!r}... (1000 characters))"
    assert repr(binary) == f"Message(data={bytes(48)!r}... (103 bytes))"
    streaming = Connection(conn.role, streaming=True)
    streaming.receive_data(peer.binary(b"ab", fin=False) + peer.cont(b"c" * 70))
    assert [repr(event) for event in streaming.events()] == [
        "Fragment(data=b'ab', first=True, last=False)",
        f"Fragment(data={b'c' * 48!r}... (70 bytes), first=False, last=True)",
    ]
    assert repr(Message("short")) == "Message(data='short')"


# max_size=(message, fragment), websockets' pair


def test_fragment_limit_bounds_each_frame(role: Role) -> None:
    conn, peer = Connection(role, max_size=(100, 10)), Peer(role)
    assert (conn.max_size, conn.max_frame_size) == (100, 10)
    pieces = [peer.text("a" * 10, fin=False)] + [peer.cont("b" * 10, fin=False)] * 8
    conn.receive_data(b"".join([*pieces, peer.cont("c" * 10)]))
    assert conn.events() == [Message("a" * 10 + "b" * 80 + "c" * 10)]
    # A whole message in one frame meets both bounds: the fast path checks it.
    conn.receive_data(peer.binary(b"d" * 10))
    assert conn.events() == [Message(b"d" * 10)]
    conn.receive_data(peer.binary(b"e" * 11))
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert (conn.error.size, conn.error.max_size) == (11, 10)


def test_fragment_limit_with_unbounded_messages(role: Role) -> None:
    conn, peer = Connection(role, max_size=(None, 4)), Peer(role)
    conn.receive_data(peer.text("abcd", fin=False) + peer.cont("efgh"))
    assert conn.events() == [Message("abcdefgh")]
    conn.receive_data(peer.cont("abcde"))
    assert_failed(conn, 1002)
    conn = Connection(role, max_size=(None, 4))
    conn.receive_data(peer.text("abcde"))
    assert_failed(conn, 1009)


def test_message_limit_still_applies_with_fragment_limit(role: Role) -> None:
    conn, peer = Connection(role, max_size=(15, 10)), Peer(role)
    conn.receive_data(peer.text("a" * 10, fin=False) + peer.cont("b" * 6))
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert (conn.error.size, conn.error.current_size, conn.error.max_size) == (6, 10, 15)


def test_message_limit_alone_as_a_pair(role: Role) -> None:
    conn = Connection(role, max_size=(50, None))
    assert (conn.max_size, conn.max_frame_size) == (50, None)


@pytest.mark.parametrize("max_size", [(-1, 10), (10, -1)])
def test_invalid_pairs(role: Role, max_size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="at least 0"):
        Connection(role, max_size=max_size)


def test_an_idle_engine_holds_no_containers(
    conn: Connection, peer: Peer, chunking: Chunking
) -> None:
    # Between reads, with nothing to send and no event waiting, the engine
    # keeps no list of events, no list of output and no buffer of its own,
    # whatever came and went; what it returns is still a new list each time.
    def assert_idle() -> None:
        assert conn._events is None
        assert conn._output is None
        assert conn._buffer == b""
        assert type(conn._buffer) is bytes

    assert_idle()
    first, second = conn.events(), conn.data_to_send()
    assert first == []
    assert second == []
    assert first is not conn.events()
    assert second is not conn.data_to_send()
    assert conn.pending_output == 0
    data = peer.text("hello") + peer.ping(b"p") + peer.binary(b"x" * 70_000)
    feed(conn, data, chunking)
    assert conn.events() == [Message("hello"), Ping(b"p"), Message(b"x" * 70_000)]
    assert conn.pending_output > 0
    assert sent_frames(conn) == [Frame(Opcode.PONG, b"p")]
    assert_idle()
    # Half a frame header waits in a buffer, which goes once the frame is whole.
    frame = peer.text("again")
    conn.receive_data(frame[:1])
    assert conn._buffer == frame[:1]
    conn.receive_data(frame[1:])
    assert conn.events() == [Message("again")]
    assert_idle()
    conn.send_text(b"out")
    conn.send_binary(b"y" * 100_000)
    assert conn.pending_output > 100_000
    assert len(conn.data_to_send()) >= 2
    assert_idle()
    assert_quiet(conn)
