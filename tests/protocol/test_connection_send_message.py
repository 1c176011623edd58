"""The engine's one-call paths: ``send_message`` and what ``receive_data`` answers.

``send_message`` must send exactly what ``send_text`` or ``send_binary``
would, and refuse exactly what they refuse; ``receive_data`` may answer
``True`` only when a read brought whole messages and nothing else.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.protocol.connection_helpers import Peer, parse_all, sent_frames
from tether.exceptions import InvalidState
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import Message, Ping
from tether.protocol.frames import Frame, Opcode


class Text(str):
    """A str subclass: sent like a str, through the general path."""


class Binary(bytes):
    """A bytes subclass: sent like bytes, through the general path."""


ROLES = st.sampled_from([Role.CLIENT, Role.SERVER])
KINDS = st.sampled_from([bytes, bytearray, memoryview, str, Text, Binary])
TEXT_OPTIONS = st.sampled_from([None, True, False])


def expected_frame(data: str | bytes | bytearray | memoryview, text: bool | None) -> Frame:
    """The frame the APIs' ``send`` documents: the type picks the opcode unless ``text`` does."""
    payload = data.encode() if isinstance(data, str) else bytes(data)
    is_text = isinstance(data, str) if text is None else text
    return Frame(Opcode.TEXT if is_text else Opcode.BINARY, payload)


def make(kind: type, payload: str) -> str | bytes | bytearray | memoryview:
    if kind in (str, Text):
        result: str | bytes | bytearray | memoryview = kind(payload)
        return result
    encoded = payload.encode()
    return memoryview(encoded) if kind is memoryview else kind(encoded)


@given(
    role=ROLES,
    kind=KINDS,
    text=TEXT_OPTIONS,
    payload=st.text(max_size=40) | st.sampled_from(["", "é" * 40_000, "x" * 70_000]),
)
def test_send_message_sends_what_send_text_or_send_binary_sends(
    role: Role, kind: type, text: bool | None, payload: str
) -> None:
    data = make(kind, payload)
    conn = Connection(role)
    conn.send_message(data, text)
    assert sent_frames(conn) == [expected_frame(data, text)]
    # The same frame through the general methods: one behaviour, two ways in.
    reference = Connection(role)
    if expected_frame(data, text).opcode is Opcode.TEXT:
        reference.send_text(data if isinstance(data, str) else bytes(data))
    else:
        reference.send_binary(data.encode() if isinstance(data, str) else data)
    assert sent_frames(reference) == [expected_frame(data, text)]


@pytest.mark.parametrize("data", [b"x" * 65536, "y" * 65536])
def test_send_message_large_server_payload_is_not_copied(data: str | bytes) -> None:
    server = Connection(Role.SERVER)
    server.send_message(data)
    output = server.data_to_send()
    assert len(output) == 2
    if isinstance(data, bytes):
        assert output[1] is data
    assert parse_all(b"".join(output), expect_mask=False) == [expected_frame(data, None)]


def test_send_message_small_is_one_chunk() -> None:
    for role in Role:
        conn = Connection(role)
        conn.send_message("a")
        conn.send_message(b"b")
        assert len(conn.data_to_send()) == 2


@pytest.mark.parametrize("state", [State.CONNECTING, State.CLOSING, State.CLOSED])
@pytest.mark.parametrize("data", ["x", b"x", bytearray(b"x")])
def test_send_message_refused_unless_open(state: State, data: str | bytes | bytearray) -> None:
    conn = Connection(Role.SERVER, state=state)
    with pytest.raises(InvalidState, match=f"cannot send a data frame while {state.name}"):
        conn.send_message(data)
    assert conn.data_to_send() == []


@pytest.mark.parametrize("data", ["x", b"x", memoryview(b"x")])
def test_send_message_refused_during_fragmented_message(data: str | bytes | memoryview) -> None:
    conn = Connection(Role.CLIENT)
    conn.send_binary(b"a", fin=False)
    with pytest.raises(InvalidState, match="a fragmented message is still being sent"):
        conn.send_message(data)
    conn.send_continuation(b"", fin=True)
    conn.send_message(data)
    assert [frame.opcode for frame in sent_frames(conn)] == [
        Opcode.BINARY,
        Opcode.CONT,
        expected_frame(data, None).opcode,
    ]


@pytest.mark.parametrize("data", ["hello " * 20, b"hello " * 20])
def test_send_message_goes_through_extensions(data: str | bytes) -> None:
    deflate = [PerMessageDeflate(False, False, 15, 15)]
    server = Connection(Role.SERVER, extensions=deflate)
    client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    client.send_message(data)
    (frame,) = client.data_to_send()
    assert frame[0] & 0x40, "compressed: RSV1 set"
    assert len(frame) < 40
    server.receive_data(frame)
    assert server.events() == [Message(data)]


# What receive_data answers


def test_receive_data_true_for_whole_plain_messages(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    assert conn.receive_data(peer.text("a") + peer.binary(b"b" * 300))
    assert conn.events() == [Message("a"), Message(b"b" * 300)]
    assert conn.data_to_send() == []


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param(lambda peer: peer.ping(b"p"), id="control frame"),
        pytest.param(lambda peer: peer.text("a") + peer.ping(b"p"), id="message then control"),
        pytest.param(lambda peer: peer.text("a", fin=False), id="fragment"),
        pytest.param(lambda peer: peer.text("abc")[:-1], id="incomplete frame"),
        pytest.param(lambda peer: peer.text(b"\xff"), id="invalid UTF-8"),
        pytest.param(lambda peer: b"", id="nothing"),
    ],
)
def test_receive_data_false_otherwise(role: Role, frames: object) -> None:
    conn, peer = Connection(role), Peer(role)
    assert callable(frames)
    assert conn.receive_data(frames(peer)) is False


def test_receive_data_false_after_buffered_bytes(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    frame = peer.binary(b"abc")
    assert conn.receive_data(frame[:1]) is False
    # The rest completes a whole message, but it went through the general path.
    assert conn.receive_data(frame[1:]) is False
    assert conn.events() == [Message(b"abc")]


def test_receive_data_false_when_a_ping_needs_an_answer(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    assert conn.receive_data(peer.ping(b"p")) is False
    assert conn.events() == [Ping(b"p")]
    assert [frame.opcode for frame in sent_frames(conn)] == [Opcode.PONG]


def test_receive_data_false_once_input_is_done(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    conn.receive_data(peer.close(1000))
    assert conn.receive_data(peer.text("late")) is False
    assert Message("late") not in conn.events()


def test_receive_data_false_during_the_handshake() -> None:
    client = ClientProtocol("ws://example.test/")
    client.send_request(client.connect())
    assert client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n") is False
