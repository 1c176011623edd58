"""Sending and closing with the protocol engine.

Frames an engine sends are parsed back, which also checks that a client
masks every frame and a server never does.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.protocol.connection_helpers import (
    Buffer,
    Peer,
    close_frame,
    header_size,
    other,
    parse_all,
    sent_frames,
)
from tether.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    ProtocolError,
)
from tether.protocol.close import MAX_REASON_BYTES, Close
from tether.protocol.connection import Connection, Role, State, truncate_reason
from tether.protocol.events import CloseReceived, Message, Ping, Pong
from tether.protocol.frames import Frame, Opcode


def transfer(source: Connection, target: Connection) -> None:
    for data in source.data_to_send():
        target.receive_data(data)


# Sending data frames


@pytest.mark.parametrize("data", ["", "hello", "héllo €𝄞", "x" * 200, "y" * 70000])
def test_send_text(conn: Connection, data: str) -> None:
    conn.send_text(data)
    assert sent_frames(conn) == [Frame(Opcode.TEXT, data.encode())]


def test_send_text_bytes_already_encoded(conn: Connection) -> None:
    conn.send_text("é".encode())
    assert sent_frames(conn) == [Frame(Opcode.TEXT, b"\xc3\xa9")]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_send_binary(conn: Connection, kind: Buffer) -> None:
    conn.send_binary(kind(b"\x00\x01\xff"))
    conn.send_binary(kind(b""))
    assert sent_frames(conn) == [Frame(Opcode.BINARY, b"\x00\x01\xff"), Frame(Opcode.BINARY, b"")]


def test_send_each_frame_is_one_chunk(conn: Connection) -> None:
    conn.send_text("a")
    conn.send_binary(b"b")
    conn.send_ping(b"c")
    output = conn.data_to_send()
    assert len(output) == 3
    assert all(isinstance(chunk, bytes) for chunk in output)


@pytest.mark.parametrize("size", [65535, 65536, 1 << 20])
def test_send_large_bytes(conn: Connection, size: int) -> None:
    data = os.urandom(size)
    conn.send_binary(data)
    output = conn.data_to_send()
    assert parse_all(b"".join(output), expect_mask=conn.role is Role.CLIENT) == [
        Frame(Opcode.BINARY, data)
    ]
    if conn.role is Role.SERVER and size >= 65536:
        # The header, then the payload itself: nothing was copied.
        assert len(output) == 2
        assert output[1] is data
    else:
        assert len(output) == 1


@pytest.mark.parametrize("view", [False, True])
def test_send_large_mutable_buffer_is_copied(conn: Connection, view: bool) -> None:
    source = bytearray(100_000)
    conn.send_binary(memoryview(source) if view else source)
    # The caller may reuse its buffer as soon as send returns.
    source[:] = b"\xff" * len(source)
    assert sent_frames(conn) == [Frame(Opcode.BINARY, bytes(100_000))]


def test_send_fragmented_text(conn: Connection) -> None:
    conn.send_text("hé", fin=False)
    conn.send_continuation("llo", fin=False)
    conn.send_continuation(b" w", fin=False)
    conn.send_continuation(memoryview(b"orld"), fin=True)
    assert sent_frames(conn) == [
        Frame(Opcode.TEXT, "hé".encode(), fin=False),
        Frame(Opcode.CONT, b"llo", fin=False),
        Frame(Opcode.CONT, b" w", fin=False),
        Frame(Opcode.CONT, b"orld", fin=True),
    ]


def test_send_fragmented_binary_with_control_frames_between(conn: Connection) -> None:
    conn.send_binary(b"\x01", fin=False)
    conn.send_ping(b"p")
    conn.send_pong(b"q")
    conn.send_continuation(b"\x02", fin=True)
    conn.send_text("next")
    assert sent_frames(conn) == [
        Frame(Opcode.BINARY, b"\x01", fin=False),
        Frame(Opcode.PING, b"p"),
        Frame(Opcode.PONG, b"q"),
        Frame(Opcode.CONT, b"\x02"),
        Frame(Opcode.TEXT, b"next"),
    ]


def test_send_continuation_without_message_is_invalid(conn: Connection) -> None:
    with pytest.raises(InvalidState, match="no fragmented message is being sent"):
        conn.send_continuation(b"x", fin=True)
    conn.send_text("done", fin=False)
    conn.send_continuation("", fin=True)
    with pytest.raises(InvalidState, match="no fragmented message"):
        conn.send_continuation("again", fin=True)
    assert len(sent_frames(conn)) == 2


@pytest.mark.parametrize("first", ["text", "binary"])
@pytest.mark.parametrize("second", ["text", "binary"])
def test_send_new_message_while_fragmented_one_is_open(
    conn: Connection, first: str, second: str
) -> None:
    if first == "text":
        conn.send_text("a", fin=False)
    else:
        conn.send_binary(b"a", fin=False)
    send: Callable[[bytes], None] = conn.send_text if second == "text" else conn.send_binary
    with pytest.raises(InvalidState, match="a fragmented message is still being sent"):
        send(b"b")
    assert len(sent_frames(conn)) == 1
    conn.send_continuation("c", fin=True)
    conn.send_text("d")
    assert [frame.opcode for frame in sent_frames(conn)] == [Opcode.CONT, Opcode.TEXT]


# Sending control frames


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(125))])
def test_send_ping_and_pong(conn: Connection, data: bytes) -> None:
    conn.send_ping(data)
    conn.send_pong(data)
    assert sent_frames(conn) == [Frame(Opcode.PING, data), Frame(Opcode.PONG, data)]


def test_send_ping_and_pong_default_payload(conn: Connection) -> None:
    conn.send_ping()
    conn.send_pong()
    assert sent_frames(conn) == [Frame(Opcode.PING, b""), Frame(Opcode.PONG, b"")]


def test_send_control_payload_over_125_is_value_error(conn: Connection) -> None:
    with pytest.raises(ValueError, match="over 125 bytes"):
        conn.send_ping(b"x" * 126)
    with pytest.raises(ValueError, match="over 125 bytes"):
        conn.send_pong(b"x" * 126)
    assert conn.data_to_send() == []
    assert conn.state is State.OPEN


@pytest.mark.parametrize(
    ("code", "reason", "payload"),
    [
        (1000, "", b"\x03\xe8"),
        (1001, "bye", b"\x03\xe9bye"),
        (4000, "é", b"\x0f\xa0\xc3\xa9"),
        (3000, "r" * 123, b"\x0b\xb8" + b"r" * 123),
        (1005, "", b""),
    ],
)
def test_send_close(conn: Connection, code: int, reason: str, payload: bytes) -> None:
    conn.send_close(code, reason)
    assert sent_frames(conn) == [Frame(Opcode.CLOSE, payload)]
    assert conn.close_sent == Close(code, reason)
    assert conn.state is State.CLOSING
    assert conn.close_rcvd is None
    assert conn.close_rcvd_then_sent is None
    assert not conn.close_transport
    assert conn.close_code is None
    assert conn.close_reason is None


def test_send_close_default_is_1000(conn: Connection) -> None:
    conn.send_close()
    assert sent_frames(conn) == [close_frame(1000)]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1006, ""), (999, ""), (1015, ""), (5000, ""), (1005, "why"), (1000, "r" * 124)],
)
def test_send_close_invalid_is_value_error(conn: Connection, code: int, reason: str) -> None:
    with pytest.raises(ValueError, match=r"close code|close reason"):
        conn.send_close(code, reason)
    assert conn.data_to_send() == []
    assert conn.state is State.OPEN
    assert conn.close_sent is None


# Masking


def test_client_masks_every_frame_with_a_different_key() -> None:
    conn = Connection(Role.CLIENT)
    payload = b"\x00" * 8
    for _ in range(16):
        conn.send_binary(payload)
    conn.send_text("x" * 8)
    conn.send_ping(payload)
    conn.send_pong(payload)
    conn.send_close(1000)
    output = conn.data_to_send()
    assert len(output) == 20
    keys = set()
    for frame in output:
        assert frame[1] & 0x80, "mask bit"
        size = header_size(frame)
        keys.add(frame[size - 4 : size])
    assert len(keys) == 20
    # Zero bytes masked show the key itself: the payload is masked.
    assert all(frame[6:] == frame[2:6] * 2 for frame in output[:16])


def test_server_never_masks() -> None:
    conn = Connection(Role.SERVER)
    conn.send_text("abc")
    conn.send_binary(b"x" * 300)
    conn.send_ping(b"p")
    conn.send_pong(b"q")
    conn.send_close(1000)
    output = conn.data_to_send()
    assert output == [
        b"\x81\x03abc",
        b"\x82\x7e\x01\x2c" + b"x" * 300,
        b"\x89\x01p",
        b"\x8a\x01q",
        b"\x88\x02\x03\xe8",
    ]


def test_server_pong_and_close_echo_unmasked() -> None:
    conn = Connection(Role.SERVER)
    conn.receive_data(Peer(Role.SERVER).ping(b"hi") + Peer(Role.SERVER).close(1000))
    assert conn.data_to_send() == [b"\x8a\x02hi", b"\x88\x02\x03\xe8"]


# Sending in the wrong state


def assert_cannot_send(conn: Connection) -> None:
    with pytest.raises(InvalidState):
        conn.send_text("x")
    with pytest.raises(InvalidState):
        conn.send_binary(b"x")
    with pytest.raises(InvalidState):
        conn.send_ping(b"x")
    with pytest.raises(InvalidState):
        conn.send_pong(b"x")
    with pytest.raises(InvalidState):
        conn.send_close(1000)
    with pytest.raises(InvalidState):
        conn.send_continuation(b"x", fin=True)
    assert conn.data_to_send() == []


def test_cannot_send_while_connecting(role: Role) -> None:
    conn = Connection(role, state=State.CONNECTING)
    assert conn.state is State.CONNECTING
    assert_cannot_send(conn)
    with pytest.raises(InvalidState, match="cannot send a data frame while CONNECTING"):
        conn.send_text("x")
    with pytest.raises(InvalidState, match="cannot send a ping while CONNECTING"):
        conn.send_ping()
    with pytest.raises(InvalidState, match="cannot send a pong while CONNECTING"):
        conn.send_pong()
    with pytest.raises(InvalidState, match="cannot send a close frame while CONNECTING"):
        conn.send_close()


def test_bare_engine_cannot_read_a_handshake(role: Role) -> None:
    # Only the client and server engines know their side of the handshake.
    conn = Connection(role, state=State.CONNECTING)
    with pytest.raises(InvalidState, match="no opening handshake"):
        conn.receive_data(b"GET / HTTP/1.1\r\n")
    assert conn.events() == []


def test_cannot_send_after_sending_close(conn: Connection) -> None:
    conn.send_close(1000)
    conn.data_to_send()
    assert_cannot_send(conn)


def test_cannot_send_after_receiving_close(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.close(1000))
    conn.data_to_send()
    assert_cannot_send(conn)


def test_cannot_send_after_failing(conn: Connection) -> None:
    conn.fail(1011)
    conn.data_to_send()
    assert_cannot_send(conn)


def test_cannot_send_after_eof(conn: Connection) -> None:
    conn.receive_eof()
    assert_cannot_send(conn)


def test_cannot_continue_fragmented_message_after_close(conn: Connection) -> None:
    conn.send_text("part", fin=False)
    # A close frame may interrupt a fragmented message; nothing follows it.
    conn.send_close(1001)
    with pytest.raises(InvalidState, match="cannot send a data frame while CLOSING"):
        conn.send_continuation("rest", fin=True)
    assert sent_frames(conn) == [Frame(Opcode.TEXT, b"part", fin=False), close_frame(1001)]


# Closing handshake, every order


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1002, 1011, 4000])
def test_we_close_first(role: Role, code: int) -> None:
    conn, peer = Connection(role), Peer(role)
    conn.send_close(code, "" if code == 1005 else "bye")
    sent = Close(code, "" if code == 1005 else "bye")
    assert sent_frames(conn) == [Frame(Opcode.CLOSE, sent.serialize())]
    conn.receive_data(peer.close(None if code == 1005 else code))
    assert conn.events() == [CloseReceived(Close(code))]
    assert conn.data_to_send() == []
    assert conn.close_sent == sent
    assert conn.close_rcvd == Close(code)
    assert conn.close_rcvd_then_sent is False
    assert conn.close_code == code
    assert conn.close_transport is (role is Role.SERVER)
    exc = conn.close_exc()
    expected = ConnectionClosedOK if code in (1000, 1001, 1005) else ConnectionClosedError
    assert type(exc) is expected
    assert exc.rcvd == Close(code)
    assert exc.sent == sent
    assert exc.rcvd_then_sent is False
    assert exc.code == code
    assert exc.__cause__ is None
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_code == code


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1003, 1008, 3999])
def test_they_close_first(role: Role, code: int) -> None:
    conn, peer = Connection(role), Peer(role)
    reason = "" if code == 1005 else "reason"
    conn.receive_data(peer.close(None if code == 1005 else code, reason))
    received = Close(code, reason)
    assert conn.events() == [CloseReceived(received)]
    # The echo is the received close frame: code and reason.
    assert sent_frames(conn) == [Frame(Opcode.CLOSE, received.serialize())]
    assert conn.close_rcvd == received
    assert conn.close_sent == received
    assert conn.close_rcvd_then_sent is True
    assert conn.close_reason == received.reason
    exc = conn.close_exc()
    expected = ConnectionClosedOK if code in (1000, 1001, 1005) else ConnectionClosedError
    assert type(exc) is expected
    assert exc.rcvd_then_sent is True
    assert exc.code == code
    assert exc.reason == received.reason
    with pytest.raises(InvalidState):
        conn.send_close()


@pytest.mark.parametrize(("ours", "theirs"), [(1000, 1001), (1005, 1000), (1000, 1011)])
def test_simultaneous_close(role: Role, ours: int, theirs: int) -> None:
    conn = Connection(role)
    remote = Connection(other(role))
    conn.send_close(ours)
    remote.send_close(theirs)
    transfer(conn, remote)
    transfer(remote, conn)
    for engine, sent, rcvd in ((conn, ours, theirs), (remote, theirs, ours)):
        assert engine.events() == [CloseReceived(Close(rcvd))]
        assert engine.data_to_send() == []
        assert engine.close_sent == Close(sent)
        assert engine.close_rcvd == Close(rcvd)
        assert engine.close_rcvd_then_sent is False
        assert engine.close_transport is (engine.role is Role.SERVER)
        ok = {sent, rcvd} <= {1000, 1001, 1005}
        assert isinstance(engine.close_exc(), ConnectionClosedOK if ok else ConnectionClosedError)


def test_closing_handshake_between_two_engines(role: Role) -> None:
    conn, remote = Connection(role), Connection(other(role))
    conn.send_text("last words")
    conn.send_close(1001, "going away")
    transfer(conn, remote)
    assert remote.events() == [Message("last words"), CloseReceived(Close(1001, "going away"))]
    assert remote.close_sent == Close(1001, "going away")
    transfer(remote, conn)
    # The echo carries our own reason back.
    assert conn.events() == [CloseReceived(Close(1001, "going away"))]
    assert conn.close_rcvd == conn.close_sent == Close(1001, "going away")
    assert conn.close_reason == "going away"
    assert conn.close_rcvd_then_sent is False
    assert remote.close_rcvd_then_sent is True
    server, client = (conn, remote) if role is Role.SERVER else (remote, conn)
    assert server.close_transport
    assert not client.close_transport
    client.receive_eof()
    assert client.close_transport
    assert client.state is State.CLOSED
    assert isinstance(client.close_exc(), ConnectionClosedOK)
    assert isinstance(server.close_exc(), ConnectionClosedOK)


def test_nothing_sent_after_closing_handshake(conn: Connection, peer: Peer) -> None:
    conn.send_close(1000)
    conn.receive_data(peer.close(1000))
    conn.data_to_send()
    conn.receive_data(peer.ping(b"x") + peer.text("y"))
    conn.fail(1011, "late failure")
    assert conn.data_to_send() == []
    assert conn.events() == [CloseReceived(Close(1000))]
    assert_cannot_send(conn)


# Ending without a closing handshake


def test_receive_eof_while_open(conn: Connection) -> None:
    assert conn.close_code is None
    conn.receive_eof()
    assert conn.state is State.CLOSED
    assert conn.close_transport
    assert conn.eof_received
    assert conn.close_code == 1006
    assert conn.close_reason == ""
    assert conn.data_to_send() == []
    assert conn.events() == []
    exc = conn.close_exc()
    assert type(exc) is ConnectionClosedError
    assert exc.rcvd is None
    assert exc.sent is None
    assert exc.rcvd_then_sent is None
    assert exc.code == 1006
    assert exc.__cause__ is None


def test_receive_eof_after_sending_close(conn: Connection) -> None:
    conn.send_close(1000)
    conn.receive_eof()
    assert conn.close_code == 1006
    exc = conn.close_exc()
    assert type(exc) is ConnectionClosedError
    assert exc.sent == Close(1000)
    assert exc.rcvd is None


def test_receive_eof_after_receiving_close(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.close(1001, "bye"))
    conn.receive_eof()
    assert conn.close_code == 1001
    assert conn.close_reason == "bye"
    assert type(conn.close_exc()) is ConnectionClosedOK


def test_receive_eof_twice(conn: Connection) -> None:
    conn.receive_eof()
    conn.receive_eof()
    assert conn.state is State.CLOSED


@pytest.mark.parametrize(
    ("sent", "rcvd", "ok"),
    [
        (1000, 1000, True),
        (1000, 1001, True),
        (1001, 1005, True),
        (1005, 1005, True),
        (1000, 1002, False),
        (1011, 1000, False),
        (3000, 3000, False),
        (1000, None, False),
    ],
)
def test_close_exc_ok_only_for_normal_codes_on_both_sides(
    role: Role, sent: int, rcvd: int | None, ok: bool
) -> None:
    conn, peer = Connection(role), Peer(role)
    conn.send_close(sent)
    if rcvd is not None:
        conn.receive_data(peer.close(None if rcvd == 1005 else rcvd))
    else:
        conn.receive_eof()
    exc = conn.close_exc()
    assert isinstance(exc, ConnectionClosed)
    assert type(exc) is (ConnectionClosedOK if ok else ConnectionClosedError)
    assert exc.sent == Close(sent)


# Failing


def test_fail_sends_one_close_frame(conn: Connection) -> None:
    conn.fail(1011, "keepalive timeout")
    assert sent_frames(conn) == [close_frame(1011, "keepalive timeout")]
    assert conn.close_sent == Close(1011, "keepalive timeout")
    assert conn.state is State.CLOSING
    assert conn.close_transport
    assert conn.error is None
    conn.fail(1002, "again")
    assert conn.data_to_send() == []
    assert conn.close_sent == Close(1011, "keepalive timeout")
    exc = conn.close_exc()
    assert type(exc) is ConnectionClosedError
    assert exc.code == 1006
    assert exc.sent == Close(1011, "keepalive timeout")


def test_fail_default_reason(conn: Connection) -> None:
    conn.fail(1001)
    assert sent_frames(conn) == [close_frame(1001)]


def test_fail_ignores_input(conn: Connection, peer: Peer) -> None:
    conn.fail(1008, "policy")
    conn.data_to_send()
    conn.receive_data(peer.ping(b"x") + peer.close(1000))
    assert conn.events() == []
    assert conn.data_to_send() == []
    assert conn.close_rcvd is None


def test_fail_after_sending_close_sends_nothing(conn: Connection) -> None:
    conn.send_close(1000)
    conn.data_to_send()
    conn.fail(1011)
    assert conn.data_to_send() == []
    assert conn.close_sent == Close(1000)
    assert conn.state is State.CLOSING
    assert conn.close_transport


def test_fail_after_eof_sends_nothing(conn: Connection) -> None:
    conn.receive_eof()
    conn.fail(1011)
    assert conn.data_to_send() == []
    assert conn.state is State.CLOSED
    assert conn.close_sent is None


def test_fail_while_connecting_sends_nothing(role: Role) -> None:
    conn = Connection(role, state=State.CONNECTING)
    conn.fail(1002, "bad handshake")
    assert conn.data_to_send() == []
    assert conn.close_sent is None
    assert conn.close_transport


def test_fail_truncates_long_reason(conn: Connection) -> None:
    conn.fail(1011, "é" * 100)
    [frame] = sent_frames(conn)
    assert frame == close_frame(1011, "é" * 61)
    assert len(frame.data) == 2 + 122
    assert conn.close_sent == Close(1011, "é" * 61)


def test_protocol_error_is_cause_of_close_exc(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.frame(Opcode.CONT, b"x"))
    exc = conn.close_exc()
    assert type(exc) is ConnectionClosedError
    assert isinstance(exc.__cause__, ProtocolError)
    assert exc.__cause__ is conn.error
    assert exc.sent == Close(1002, "continuation frame with no message to continue")
    assert exc.rcvd is None


def test_error_while_closing_sends_no_second_close(conn: Connection, peer: Peer) -> None:
    conn.send_close(1000)
    conn.data_to_send()
    conn.receive_data(peer.frame(Opcode.CONT, b"x"))
    assert conn.error is not None
    assert conn.error.code == 1002
    assert conn.data_to_send() == []
    assert conn.close_transport
    assert conn.close_sent == Close(1000)


def test_ping_after_fail_is_not_answered(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.frame(0xF) + peer.ping(b"x"))
    [frame] = sent_frames(conn)
    assert frame.opcode is Opcode.CLOSE
    assert conn.events() == []


def test_events_before_failure_are_kept(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.text("ok") + peer.pong(b"p") + peer.frame(4))
    assert conn.events() == [Message("ok"), Pong(b"p")]
    assert conn.error is not None


def test_events_are_delivered_in_order_with_pongs(conn: Connection, peer: Peer) -> None:
    conn.receive_data(peer.ping(b"1") + peer.text("two") + peer.ping(b"3"))
    assert conn.events() == [Ping(b"1"), Message("two"), Ping(b"3")]
    assert [frame.data for frame in sent_frames(conn)] == [b"1", b"3"]


# truncate_reason


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("", ""),
        ("a" * 123, "a" * 123),
        ("a" * 124, "a" * 123),
        ("a" * 500, "a" * 123),
        ("é" * 61 + "a", "é" * 61 + "a"),
        ("é" * 62, "é" * 61),
        ("a" + "é" * 62, "a" + "é" * 61),
        ("€" * 41, "€" * 41),
        ("€" * 42, "€" * 41),
        ("a" + "€" * 42, "a" + "€" * 40),
        ("ab" + "€" * 42, "ab" + "€" * 40),
        ("abc" + "€" * 42, "abc" + "€" * 40),
        ("𝄞" * 31, "𝄞" * 30),
        ("a" + "𝄞" * 31, "a" + "𝄞" * 30),
        ("ab" + "𝄞" * 31, "ab" + "𝄞" * 30),
        ("abc" + "𝄞" * 31, "abc" + "𝄞" * 30),
        ("abcd" + "𝄞" * 31, "abcd" + "𝄞" * 29),
    ],
)
def test_truncate_reason(reason: str, expected: str) -> None:
    result = truncate_reason(reason)
    assert result == expected
    assert len(result.encode()) <= MAX_REASON_BYTES
    assert reason.startswith(result)


def test_pending_output_counts_unsent_bytes() -> None:
    server = Connection(Role.SERVER)
    assert server.pending_output == 0
    server.send_binary(b"x" * 10)
    server.send_ping(b"abc")
    assert server.pending_output == (2 + 10) + (2 + 3)
    server.data_to_send()
    assert server.pending_output == 0
