"""Frames built once and sent on many engines: Connection.send_prepared and shares_frames."""

from __future__ import annotations

import pytest

from tether.exceptions import InvalidState
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import Message
from tether.protocol.frames import Opcode, serialize_frame

from .connection_helpers import sent_frames
from .test_connection_extensions import InvertFrames

FRAME = serialize_frame(Opcode.TEXT, b"hello", mask=False)


def test_server_shares_frames() -> None:
    assert Connection(Role.SERVER).shares_frames


def test_client_does_not_share_frames() -> None:
    # Each client frame needs its own masking key.
    assert not Connection(Role.CLIENT).shares_frames


def test_deflate_connection_shares_frames() -> None:
    deflate = PerMessageDeflate(False, False, 15, 15)
    assert Connection(Role.SERVER, extensions=[deflate]).shares_frames


def test_frame_extension_does_not_share_frames() -> None:
    assert not Connection(Role.SERVER, extensions=[InvertFrames()]).shares_frames


def test_send_prepared_writes_the_frame_as_is() -> None:
    conn = Connection(Role.SERVER)
    conn.send_prepared(FRAME)
    conn.send_prepared(FRAME)
    assert conn.data_to_send() == [FRAME, FRAME]


def test_prepared_frame_is_read_on_a_deflate_connection() -> None:
    # RSV1 clear: the receiving end takes it as an uncompressed message.
    server = Connection(Role.SERVER, extensions=[PerMessageDeflate(False, False, 15, 15)])
    client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    server.send_prepared(FRAME)
    for data in server.data_to_send():
        client.receive_data(data)
    assert client.events() == [Message("hello")]


@pytest.mark.parametrize("state", [State.CONNECTING, State.CLOSING, State.CLOSED])
def test_send_prepared_refused_unless_open(state: State) -> None:
    conn = Connection(Role.SERVER, state=state)
    with pytest.raises(InvalidState, match=f"while {state.name}"):
        conn.send_prepared(FRAME)
    assert conn.data_to_send() == []


def test_send_prepared_refused_during_fragmented_message() -> None:
    conn = Connection(Role.SERVER)
    conn.send_text("frag", fin=False)
    with pytest.raises(InvalidState, match="fragmented message"):
        conn.send_prepared(FRAME)
    conn.send_continuation("ment", fin=True)
    conn.send_prepared(FRAME)
    frames = sent_frames(conn)
    assert [frame.opcode for frame in frames] == [Opcode.TEXT, Opcode.CONT, Opcode.TEXT]
    assert frames[2].data == b"hello"


def test_send_prepared_refused_on_client() -> None:
    conn = Connection(Role.CLIENT)
    with pytest.raises(InvalidState, match="built for another"):
        conn.send_prepared(FRAME)
    assert conn.data_to_send() == []
