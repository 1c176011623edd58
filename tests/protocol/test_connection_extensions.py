"""The protocol engine with extensions: per-message (an RSV bit) and per-frame (no RSV bit).

The fake extensions here are tiny and transparent so that every byte on the
wire can be predicted: :class:`XorMessages` XORs the payload of the messages
it flags with RSV1, :class:`Repeat` inflates them, and :class:`InvertFrames`
inverts every frame and marks it with RSV3.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from tests.protocol.connection_helpers import (
    Chunking,
    Peer,
    assert_failed,
    feed,
    header_size,
    other,
    parse_all,
    sent_frames,
)
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.extensions.base import Extension
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import CloseReceived, Fragment, Message, Ping, Pong
from tether.protocol.frames import CONTROL_OPCODES, Frame, Opcode, build_frame
from tether.protocol.masking import apply_mask

KEY = 0x5A


def xor(data: bytes, key: int = KEY) -> bytes:
    return bytes(byte ^ key for byte in data)


class XorMessages(Extension):
    """Per-message: XOR each payload byte of messages whose first frame has RSV1."""

    name: ClassVar[str] = "x-xor"
    rsv_mask: ClassVar[int | None] = 0x40

    def __init__(self) -> None:
        self.decoding = False
        self.decoded: list[Frame] = []
        self.rooms: list[int | None] = []
        self.encoded: list[Frame] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.decoded.append(frame)
        if frame.opcode in CONTROL_OPCODES:
            return frame
        self.rooms.append(max_size)
        if frame.opcode != Opcode.CONT:
            self.decoding = frame.rsv1
        if not self.decoding:
            return frame
        return Frame(frame.opcode, xor(frame.data), frame.fin, False, frame.rsv2, frame.rsv3)

    def encode(self, frame: Frame) -> Frame:
        self.encoded.append(frame)
        if frame.opcode in CONTROL_OPCODES:
            return frame
        first = frame.opcode != Opcode.CONT
        return Frame(frame.opcode, xor(frame.data), frame.fin, first, frame.rsv2, frame.rsv3)


class Repeat(Extension):
    """Per-message: decoding repeats the payload of flagged messages, ignoring ``max_size``."""

    name: ClassVar[str] = "x-repeat"
    rsv_mask: ClassVar[int | None] = 0x40

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.decoding = False
        self.rooms: list[int | None] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.rooms.append(max_size)
        if frame.opcode != Opcode.CONT:
            self.decoding = frame.rsv1
        if not self.decoding:
            return frame
        return Frame(frame.opcode, frame.data * self.factor, frame.fin)

    def encode(self, frame: Frame) -> Frame:
        raise NotImplementedError


class InvertFrames(Extension):
    """Per-frame (no RSV bit reserved): invert every byte of every frame, marked with RSV3."""

    name: ClassVar[str] = "x-invert"

    def __init__(self) -> None:
        self.decoded: list[Frame] = []

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        self.decoded.append(frame)
        if not frame.rsv3:
            raise ProtocolError("frame not inverted")
        return Frame(frame.opcode, xor(frame.data, 0xFF), frame.fin, frame.rsv1, frame.rsv2)

    def encode(self, frame: Frame) -> Frame:
        return Frame(frame.opcode, xor(frame.data, 0xFF), frame.fin, frame.rsv1, frame.rsv2, True)


def transfer(source: Connection, target: Connection) -> None:
    for data in source.data_to_send():
        target.receive_data(data)


def test_extensions_are_kept(role: Role) -> None:
    xor_ext, invert = XorMessages(), InvertFrames()
    conn = Connection(role, extensions=(xor_ext, invert))
    assert conn.extensions == [xor_ext, invert]


# A per-message extension: receiving


def test_flagged_message_is_decoded(role: Role, peer: Peer, chunking: Chunking) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    wire = peer.text(xor("héllo".encode()), rsv=0x40) + peer.binary(xor(b"\x00\x01"), rsv=0x40)
    feed(conn, wire, chunking)
    assert conn.events() == [Message("héllo"), Message(b"\x00\x01")]
    assert conn.data_to_send() == []
    assert conn.error is None


def test_unflagged_message_skips_extension(role: Role, peer: Peer, chunking: Chunking) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    wire = peer.text("plain", fin=False) + peer.cont(" text") + peer.binary(b"raw")
    feed(conn, wire, chunking)
    assert conn.events() == [Message("plain text"), Message(b"raw")]
    assert ext.decoded == []


def test_flagged_fragmented_message(role: Role, peer: Peer, chunking: Chunking) -> None:
    ext = XorMessages()
    conn = Connection(role, max_size=100, extensions=[ext])
    wire = (
        peer.text(xor(b"a" * 10), fin=False, rsv=0x40)
        + peer.ping(b"between")
        + peer.cont(xor(b"b" * 20), fin=False)
        + peer.cont(xor(b"c" * 30))
    )
    feed(conn, wire, chunking)
    assert conn.events() == [Ping(b"between"), Message("a" * 10 + "b" * 20 + "c" * 30)]
    # Each frame may grow the message by what is left under max_size.
    assert ext.rooms == [100, 90, 70]
    # Without a frame extension, control frames do not go through the chain.
    assert all(frame.opcode not in CONTROL_OPCODES for frame in ext.decoded)
    assert [frame.opcode for frame in sent_frames(conn)] == [Opcode.PONG]


def test_flagged_fragmented_message_streaming(role: Role, peer: Peer, chunking: Chunking) -> None:
    conn = Connection(role, streaming=True, extensions=[XorMessages()])
    encoded = "é€𝄞".encode()
    wire = (
        peer.text(xor(encoded[:3]), fin=False, rsv=0x40)
        + peer.cont(xor(encoded[3:5]), fin=False)
        + peer.cont(xor(encoded[5:]))
    )
    feed(conn, wire, chunking)
    # Transformed frames are handled whole: the pieces do not depend on chunking.
    assert conn.events() == [
        Fragment("é", True, False),
        Fragment("€", False, False),
        Fragment("𝄞", False, True),
    ]


def test_flagged_text_with_invalid_utf8_after_decoding_fails_1007(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.text(xor(b"ok\xff"), rsv=0x40))
    assert_failed(conn, 1007)


def test_flagged_fragmented_text_with_invalid_utf8_fails_1007(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.text(xor(b"ok"), fin=False, rsv=0x40) + peer.cont(xor(b"\xed\xa0\x80")))
    assert_failed(conn, 1007)


def test_rsv1_on_continuation_fails_1002(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.text(xor(b"a"), fin=False, rsv=0x40))
    conn.receive_data(peer.cont(xor(b"b"), rsv=0x40)[:2])
    if peer.masks:
        assert conn.error is None
        conn.receive_data(peer.cont(xor(b"b"), rsv=0x40)[2:6])
    assert_failed(conn, 1002)
    assert str(conn.error) == "extension bit set on a continuation frame"


def test_rsv1_on_continuation_of_unflagged_message_fails_1002(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.text(b"a", fin=False) + peer.cont(b"b", rsv=0x40))
    assert_failed(conn, 1002)


def test_rsv1_on_orphan_continuation_fails_1002(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.cont(b"b", rsv=0x40))
    assert_failed(conn, 1002)
    assert str(conn.error) == "continuation frame with no message to continue"


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
def test_rsv1_on_control_frame_fails_1002(role: Role, peer: Peer, opcode: Opcode) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.frame(opcode, b"\x03\xe8", rsv=0x40))
    assert_failed(conn, 1002)
    assert str(conn.error) == "extension bit set on a control frame"
    assert conn.events() == []


@pytest.mark.parametrize("rsv", [0x20, 0x10, 0x60])
def test_rsv_bits_of_no_extension_fail_1002(role: Role, peer: Peer, rsv: int) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.receive_data(peer.text(b"x", rsv=rsv))
    assert_failed(conn, 1002)


def test_decoded_size_at_limit_passes(role: Role, peer: Peer) -> None:
    ext = Repeat(4)
    conn = Connection(role, max_size=100, extensions=[ext])
    conn.receive_data(peer.binary(b"x" * 25, rsv=0x40))
    conn.receive_data(peer.binary(b"y" * 5, fin=False, rsv=0x40) + peer.cont(b"z" * 20))
    assert conn.events() == [Message(b"x" * 100), Message(b"y" * 20 + b"z" * 80)]
    assert ext.rooms == [100, 100, 80]
    assert conn.error is None


def test_decoded_size_over_limit_fails_1009(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=100, extensions=[Repeat(4)])
    conn.receive_data(peer.binary(b"x" * 26, rsv=0x40))
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert str(conn.error) == "frame with 104 bytes exceeds limit of 100 bytes"


def test_decoded_size_over_limit_in_continuation_fails_1009(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=100, extensions=[Repeat(4)])
    conn.receive_data(peer.text(b"x" * 20, fin=False, rsv=0x40))
    assert conn.error is None
    conn.receive_data(peer.cont(b"y" * 6))
    assert_failed(conn, 1009)
    assert conn.events() == []


class StrictRepeat(Repeat):
    """Like Repeat, but its decode raises PayloadTooBig past ``max_size``, as extensions must."""

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        frame = super().decode(frame, max_size=max_size)
        if max_size is not None and len(frame.data) > max_size:
            raise PayloadTooBig(None, max_size)
        return frame


def test_extension_payload_too_big_counts_the_message_so_far(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=100, extensions=[StrictRepeat(4)])
    conn.receive_data(peer.text(b"x" * 20, fin=False, rsv=0x40))
    conn.receive_data(peer.cont(b"y" * 6))
    assert_failed(conn, 1009)
    error = conn.error
    assert isinstance(error, PayloadTooBig)
    # As websockets: the engine adds what the message held before the frame.
    assert (error.size, error.current_size, error.max_size) == (None, 80, 100)
    assert str(error) == "frame after reading 80 bytes exceeds limit of 100 bytes"


def test_decoded_size_over_limit_streaming_fails_1009(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=100, streaming=True, extensions=[Repeat(4)])
    conn.receive_data(peer.binary(b"x" * 20, fin=False, rsv=0x40) + peer.cont(b"y" * 6))
    assert conn.events() == [Fragment(b"x" * 80, True, False)]
    assert_failed(conn, 1009)


def test_decoded_size_unbounded(role: Role, peer: Peer) -> None:
    ext = Repeat(1000)
    conn = Connection(role, max_size=None, extensions=[ext])
    conn.receive_data(peer.binary(b"x" * 5000, rsv=0x40))
    assert conn.events() == [Message(b"x" * 5_000_000)]
    assert ext.rooms == [None]


def test_transformed_frame_over_wire_limit_fails_1009_on_header(role: Role, peer: Peer) -> None:
    # The wire limit of a transformed frame: max_size + max_size / 1024 + 64.
    conn = Connection(role, max_size=1024, extensions=[XorMessages()])
    frame = peer.binary(b"x" * 1090, rsv=0x40)
    conn.receive_data(frame[: header_size(frame)])
    assert_failed(conn, 1009)
    assert str(conn.error) == "frame with 1090 bytes exceeds limit of 1089 bytes"


def test_transformed_continuation_over_wire_limit_fails_1009(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=1024, extensions=[Repeat(0)])
    conn.receive_data(peer.binary(b"x" * 1089, fin=False, rsv=0x40))
    assert conn.error is None
    frame = peer.cont(b"x" * 1090)
    conn.receive_data(frame[: header_size(frame)])
    assert_failed(conn, 1009)


def test_transformed_frame_at_wire_limit_checked_after_decoding(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=1024, extensions=[XorMessages()])
    conn.receive_data(peer.binary(b"x" * 1089, rsv=0x40))
    assert_failed(conn, 1009)
    assert str(conn.error) == "frame with 1089 bytes exceeds limit of 1024 bytes"


def test_untransformed_message_keeps_plain_limit(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=1024, extensions=[XorMessages()])
    frame = peer.binary(b"x" * 1025)
    conn.receive_data(frame[: header_size(frame)])
    assert_failed(conn, 1009)


def test_transformed_frame_waits_for_whole_payload(role: Role, peer: Peer) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    frame = peer.text(xor(b"abcdef"), rsv=0x40)
    conn.receive_data(frame[:-1])
    assert ext.decoded == []
    assert conn.events() == []
    conn.receive_data(frame[-1:])
    assert conn.events() == [Message("abcdef")]
    assert len(ext.decoded) == 1


def test_extension_error_fails_connection(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[InvertFrames()])
    conn.receive_data(peer.text(b"not inverted"))
    assert conn.error is not None
    assert str(conn.error) == "frame not inverted"
    assert conn.close_sent == Close(1002, "frame not inverted")
    # The close frame went through the extension too.
    [frame] = sent_frames(conn)
    assert frame.rsv3
    assert frame.data == xor(Close(1002, "frame not inverted").serialize(), 0xFF)


# A per-message extension: sending


def test_send_flagged_message(role: Role) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    conn.send_text("héllo")
    conn.send_binary(b"\x00\xff", compress=True)
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, xor("héllo".encode()), rsv1=True),
        Frame(Opcode.BINARY, b"\x5a\xa5", rsv1=True),
    ]


def test_send_flagged_fragmented_message(role: Role) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    conn.send_text("ab", fin=False)
    conn.send_ping(b"ping")
    conn.send_continuation("cd", fin=False)
    conn.send_continuation(b"ef", fin=True)
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, xor(b"ab"), fin=False, rsv1=True),
        Frame(Opcode.PING, b"ping"),
        Frame(Opcode.CONT, xor(b"cd"), fin=False),
        Frame(Opcode.CONT, xor(b"ef")),
    ]


def test_send_uncompressed_message(role: Role) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    conn.send_text("plain", compress=False)
    conn.send_binary(b"raw", fin=False, compress=False)
    conn.send_continuation(b"data", fin=True)
    conn.send_binary(b"flagged")
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, b"plain"),
        Frame(Opcode.BINARY, b"raw", fin=False),
        Frame(Opcode.CONT, b"data"),
        Frame(Opcode.BINARY, xor(b"flagged"), rsv1=True),
    ]
    assert [frame.data for frame in ext.encoded] == [b"flagged"]


def test_send_control_frames_skip_per_message_extension(role: Role) -> None:
    ext = XorMessages()
    conn = Connection(role, extensions=[ext])
    conn.send_ping(b"a")
    conn.send_pong(b"b")
    conn.send_close(1000)
    assert sent_frames(conn) == [
        Frame(Opcode.PING, b"a"),
        Frame(Opcode.PONG, b"b"),
        Frame(Opcode.CLOSE, b"\x03\xe8"),
    ]
    assert ext.encoded == []


def test_compress_without_extension_sends_plain(role: Role) -> None:
    conn = Connection(role)
    conn.send_text("x", compress=True)
    conn.send_binary(b"y", fin=False, compress=True)
    conn.send_continuation(b"z", fin=True)
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, b"x"),
        Frame(Opcode.BINARY, b"y", fin=False),
        Frame(Opcode.CONT, b"z"),
    ]


def test_per_message_round_trip(role: Role) -> None:
    conn = Connection(role, extensions=[XorMessages()])
    remote = Connection(other(role), extensions=[XorMessages()])
    conn.send_text("compressed")
    conn.send_text("plain", compress=False)
    conn.send_binary(b"frag", fin=False)
    conn.send_continuation(b"mented", fin=True)
    conn.send_binary(b"plain", fin=False, compress=False)
    conn.send_continuation(b" frag", fin=True)
    conn.send_close(1000)
    transfer(conn, remote)
    assert remote.events() == [
        Message("compressed"),
        Message("plain"),
        Message(b"fragmented"),
        Message(b"plain frag"),
        CloseReceived(Close(1000)),
    ]
    assert remote.error is None


# A frame extension


def test_frame_extension_sees_every_frame(role: Role, peer: Peer, chunking: Chunking) -> None:
    ext = InvertFrames()
    conn = Connection(role, extensions=[ext])
    # Control frames carry the bit too.
    wire = (
        peer.text(xor(b"hello", 0xFF), rsv=0x10)
        + peer.binary(xor(b"frag", 0xFF), fin=False, rsv=0x10)
        + peer.frame(Opcode.PING, xor(b"hi", 0xFF), rsv=0x10)
        + peer.frame(Opcode.PONG, xor(b"ho", 0xFF), rsv=0x10)
        + peer.cont(xor(b"mented", 0xFF), rsv=0x10)
    )
    feed(conn, wire, chunking)
    assert conn.events() == [
        Message("hello"),
        Ping(b"hi"),
        Pong(b"ho"),
        Message(b"fragmented"),
    ]
    assert [frame.opcode for frame in ext.decoded] == [
        Opcode.TEXT,
        Opcode.BINARY,
        Opcode.PING,
        Opcode.PONG,
        Opcode.CONT,
    ]
    # The pong answering the ping went through the extension.
    assert sent_frames(conn) == [Frame(Opcode.PONG, xor(b"hi", 0xFF), rsv3=True)]


def test_frame_extension_close(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[InvertFrames()])
    close = Close(1001, "bye").serialize()
    conn.receive_data(peer.frame(Opcode.CLOSE, xor(close, 0xFF), rsv=0x10))
    assert conn.events() == [CloseReceived(Close(1001, "bye"))]
    # The echo repeats the code and reason, through the frame extension again.
    assert sent_frames(conn) == [Frame(Opcode.CLOSE, xor(close, 0xFF), rsv3=True)]
    assert conn.close_sent == Close(1001, "bye")
    assert conn.state is State.CLOSING


def test_frame_extension_allows_every_rsv_bit(role: Role, peer: Peer) -> None:
    # Which RSV bits mean something is the frame extension's business.
    conn = Connection(role, extensions=[InvertFrames()])
    for rsv in (0x10, 0x30, 0x50, 0x70):
        conn.receive_data(peer.binary(xor(b"x", 0xFF), rsv=rsv))
        conn.receive_data(peer.frame(Opcode.PING, xor(b"p", 0xFF), rsv=rsv))
    assert conn.error is None
    assert conn.events() == [Message(b"x"), Ping(b"p")] * 4


def test_frame_extension_sending(role: Role) -> None:
    conn = Connection(role, extensions=[InvertFrames()])
    conn.send_text("a")
    conn.send_binary(b"b", fin=False, compress=False)
    conn.send_continuation(b"c", fin=True)
    conn.send_ping(b"d")
    conn.send_pong(b"e")
    conn.send_close(1000, "f")
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, xor(b"a", 0xFF), rsv3=True),
        Frame(Opcode.BINARY, xor(b"b", 0xFF), fin=False, rsv3=True),
        Frame(Opcode.CONT, xor(b"c", 0xFF), rsv3=True),
        Frame(Opcode.PING, xor(b"d", 0xFF), rsv3=True),
        Frame(Opcode.PONG, xor(b"e", 0xFF), rsv3=True),
        Frame(Opcode.CLOSE, xor(b"\x03\xe8f", 0xFF), rsv3=True),
    ]


def test_frame_and_message_extensions_sending(role: Role) -> None:
    xor_ext = XorMessages()
    conn = Connection(role, extensions=[xor_ext, InvertFrames()])
    conn.send_text("a")
    conn.send_text("b", compress=False)
    conn.send_binary(b"c", fin=False, compress=False)
    conn.send_continuation(b"d", fin=True)
    conn.send_ping(b"e")
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, xor(xor(b"a"), 0xFF), rsv1=True, rsv3=True),
        Frame(Opcode.TEXT, xor(b"b", 0xFF), rsv3=True),
        Frame(Opcode.BINARY, xor(b"c", 0xFF), fin=False, rsv3=True),
        Frame(Opcode.CONT, xor(b"d", 0xFF), rsv3=True),
        Frame(Opcode.PING, xor(b"e", 0xFF), rsv3=True),
    ]
    # With a frame extension, control frames go through the whole chain.
    assert [frame.opcode for frame in xor_ext.encoded] == [Opcode.TEXT, Opcode.PING]


def test_frame_and_message_extensions_receiving(role: Role, peer: Peer) -> None:
    xor_ext = XorMessages()
    conn = Connection(role, extensions=[xor_ext, InvertFrames()])
    wire = (
        peer.text(xor(xor(b"flagged"), 0xFF), rsv=0x50)
        + peer.text(xor(b"plain", 0xFF), rsv=0x10)
        # RSV1 on a control frame is the frame extension's business here.
        + peer.frame(Opcode.PING, xor(b"p", 0xFF), rsv=0x50)
        + peer.binary(xor(xor(b"ab"), 0xFF), fin=False, rsv=0x50)
        + peer.cont(xor(xor(b"cd"), 0xFF), rsv=0x10)
    )
    conn.receive_data(wire)
    assert conn.events() == [
        Message("flagged"),
        Message("plain"),
        Ping(b"p"),
        Message(b"abcd"),
    ]
    assert conn.error is None
    # Unflagged messages and control frames reach the per-message extension too.
    assert len(xor_ext.decoded) == 5


def test_frame_extension_waits_for_whole_control_frame(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[InvertFrames()])
    feed(conn, peer.frame(Opcode.PING, xor(b"ping", 0xFF), rsv=0x10), "bytewise")
    assert conn.events() == [Ping(b"ping")]


def test_frame_and_message_extensions_round_trip(role: Role) -> None:
    conn = Connection(role, extensions=[XorMessages(), InvertFrames()])
    remote = Connection(other(role), extensions=[XorMessages(), InvertFrames()])
    conn.send_text("one")
    conn.send_text("two", compress=False)
    conn.send_binary(b"th", fin=False)
    conn.send_ping(b"ping")
    conn.send_continuation(b"ree", fin=True)
    transfer(conn, remote)
    assert remote.events() == [Message("one"), Message("two"), Ping(b"ping"), Message(b"three")]
    transfer(remote, conn)
    assert conn.events() == [Pong(b"ping")]
    remote.send_close(1001, "done")
    transfer(remote, conn)
    transfer(conn, remote)
    assert conn.events() == [CloseReceived(Close(1001, "done"))]
    assert remote.events() == [CloseReceived(Close(1001, "done"))]
    assert conn.error is None
    assert remote.error is None


# permessage-deflate


def deflate() -> PerMessageDeflate:
    return PerMessageDeflate(False, False, 15, 15)


def test_permessage_deflate_round_trip(role: Role) -> None:
    conn = Connection(role, extensions=[deflate()])
    remote = Connection(other(role), extensions=[deflate()], streaming=True)
    text = "compress me " * 100
    conn.send_text(text)
    conn.send_text(text)
    conn.send_binary(b"\x00" * 1000, fin=False)
    conn.send_continuation(b"\x01" * 1000, fin=True)
    conn.send_text("not compressed", compress=False)
    conn.send_ping(b"ping")
    output = conn.data_to_send()
    frames = parse_all(b"".join(output), expect_mask=role is Role.CLIENT)
    assert [frame.rsv1 for frame in frames] == [True, True, True, False, False, False]
    # Context takeover: the second copy costs almost nothing.
    assert len(frames[1].data) < len(frames[0].data) < len(text)
    for data in output:
        remote.receive_data(data)
    assert remote.events() == [
        Message(text),
        Message(text),
        Fragment(b"\x00" * 1000, True, False),
        Fragment(b"\x01" * 1000, False, True),
        Message("not compressed"),
        Ping(b"ping"),
    ]
    assert remote.error is None


def test_permessage_deflate_bomb_fails_1009(role: Role) -> None:
    conn = Connection(role, extensions=[deflate()])
    remote = Connection(other(role), extensions=[deflate()], max_size=10_000)
    conn.send_binary(b"\x00" * 10_000)
    conn.send_binary(b"\x00" * 10_001)
    wire = conn.data_to_send()
    assert all(len(data) < 100 for data in wire)
    remote.receive_data(wire[0])
    assert remote.events() == [Message(b"\x00" * 10_000)]
    remote.receive_data(wire[1])
    assert remote.error is not None
    assert remote.error.code == 1009
    assert remote.events() == []


def test_protocol_error_from_extension_is_reported(role: Role, peer: Peer) -> None:
    conn = Connection(role, extensions=[deflate()])
    conn.receive_data(peer.binary(b"\xff\xff\xff\xff", rsv=0x40))
    assert conn.error is not None
    assert type(conn.error) is ProtocolError
    assert conn.error.code == 1007


# max_size=(message, fragment): websockets' pair also bounds each frame, decoded.


def test_decoded_frame_over_fragment_limit_fails_1009(role: Role, peer: Peer) -> None:
    ext = Repeat(4)
    conn = Connection(role, max_size=(1000, 40), extensions=[ext])
    conn.receive_data(peer.binary(b"x" * 10, fin=False, rsv=0x40) + peer.cont(b"y" * 10))
    assert conn.events() == [Message(b"x" * 40 + b"y" * 40)]
    # The extension is asked for no more than the fragment's bound.
    assert ext.rooms == [40, 40]
    # Repeat decodes past the room it is given: the engine checks after it.
    conn.receive_data(peer.binary(b"z" * 11, rsv=0x40))
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert (conn.error.size, conn.error.max_size) == (44, 40)


def test_decoded_frame_bound_by_fragment_limit_alone(role: Role, peer: Peer) -> None:
    ext = Repeat(4)
    conn = Connection(role, max_size=(None, 40), extensions=[ext])
    conn.receive_data(peer.binary(b"x" * 10, rsv=0x40))
    assert conn.events() == [Message(b"x" * 40)]
    assert ext.rooms == [40]


def test_decoded_frame_message_limit_smaller_than_fragment_limit(role: Role, peer: Peer) -> None:
    ext = Repeat(4)
    conn = Connection(role, max_size=(60, 40), extensions=[ext])
    conn.receive_data(peer.binary(b"x" * 10, fin=False, rsv=0x40) + peer.cont(b"y" * 4))
    assert conn.events() == [Message(b"x" * 40 + b"y" * 16)]
    # The second frame had only 20 bytes of room left in the message.
    assert ext.rooms == [40, 20]


def test_compressed_frame_over_fragment_wire_limit(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=(None, 100), extensions=[Repeat(1)])
    frame = peer.binary(b"x" * 1000, rsv=0x40)
    conn.receive_data(frame[: header_size(frame)])
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert conn.error.size == 1000


# A per-message extension that takes whole messages in one call


class WholeXor(XorMessages):
    """:class:`XorMessages` with ``encode_message`` and ``decode_message``, which it records.

    ``decode_message`` ignores ``max_size`` (factor ``repeat`` inflates the
    payload), so that the engine's own check of the limit shows.
    """

    whole_messages: ClassVar[bool] = True

    def __init__(self, repeat: int = 1) -> None:
        super().__init__()
        self.repeat = repeat
        self.whole_encoded: list[tuple[int, bytes, bytes | None]] = []
        self.whole_decoded: list[tuple[bytes, bytes | None, int | None]] = []

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        self.whole_encoded.append((first, data, key))
        return build_frame(first | 0x40, xor(data), key)

    def decode_message(
        self, data: bytes | bytearray | memoryview, key: bytes | None, max_size: int | None
    ) -> bytes:
        raw = bytes(data)
        self.whole_decoded.append((raw, key, max_size))
        return xor(raw if key is None else apply_mask(raw, key)) * self.repeat


def test_whole_message_sent_through_encode_message(role: Role) -> None:
    ext = WholeXor()
    conn = Connection(role, extensions=[ext])
    conn.send_message("héllo")
    conn.send_message(b"\x00\xff")
    conn.send_message(bytearray(b"ab"))  # Not bytes: the general path.
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, xor("héllo".encode()), rsv1=True),
        Frame(Opcode.BINARY, b"\x5a\xa5", rsv1=True),
        Frame(Opcode.BINARY, xor(b"ab"), rsv1=True),
    ]
    masked = role is Role.CLIENT
    assert [(first, data, key is not None) for first, data, key in ext.whole_encoded] == [
        (0x81, "héllo".encode(), masked),
        (0x82, b"\x00\xff", masked),
    ]
    assert [frame.data for frame in ext.encoded] == [b"ab"]


def test_whole_message_received_through_decode_message(
    role: Role, peer: Peer, chunking: Chunking
) -> None:
    ext = WholeXor()
    conn = Connection(role, max_size=1000, extensions=[ext])
    wire = (
        peer.text(xor("héllo".encode()), rsv=0x40)
        + peer.binary(xor(b"ab"), fin=False, rsv=0x40)
        + peer.cont(xor(b"cd"))
        + peer.binary(b"plain")
    )
    feed(conn, wire, chunking)
    assert conn.events() == [Message("héllo"), Message(b"abcd"), Message(b"plain")]
    assert conn.error is None
    # The engine unmasks the payload before it hands it over.
    assert ext.whole_decoded == [(xor("héllo".encode()), None, 1000)]
    # The fragmented message went through decode, frame by frame.
    assert [frame.data for frame in ext.decoded] == [xor(b"ab"), xor(b"cd")]


def test_whole_message_over_the_limit_fails_1009(role: Role, peer: Peer) -> None:
    conn = Connection(role, max_size=100, extensions=[WholeXor(repeat=4)])
    conn.receive_data(peer.binary(b"x" * 25, rsv=0x40))
    assert conn.events() == [Message(xor(b"x" * 25) * 4)]
    conn.receive_data(peer.binary(b"x" * 26, rsv=0x40))
    assert_failed(conn, 1009)
    assert isinstance(conn.error, PayloadTooBig)
    assert (conn.error.size, conn.error.max_size) == (104, 100)


def test_whole_messages_only_with_a_single_extension(role: Role, peer: Peer) -> None:
    ext = WholeXor()
    conn = Connection(role, extensions=[ext, XorMessages()])
    conn.send_message(b"ab")
    # The first extension to decode clears RSV1: the message is XORed once.
    conn.receive_data(peer.binary(xor(b"ab"), rsv=0x40))
    assert conn.events() == [Message(b"ab")]
    assert ext.whole_encoded == []
    assert ext.whole_decoded == []


def test_base_extension_has_no_whole_messages() -> None:
    assert Extension.whole_messages is False
    assert PerMessageDeflate.whole_messages is True
