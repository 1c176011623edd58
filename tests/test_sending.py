"""Turning what an application sends into engine calls, shared by both APIs."""

from __future__ import annotations

import pytest

from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import CloseCode
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Fragment, Message
from tether.sending import Data, check_piece, end_fragments, send_data, send_piece


def pair() -> tuple[Connection, Connection]:
    """A client engine and a server engine to read what it sends."""
    return Connection(Role.CLIENT), Connection(Role.SERVER, streaming=True)


def deliver(sender: Connection, receiver: Connection) -> list[object]:
    for data in sender.data_to_send():
        receiver.receive_data(data)
    return list(receiver.events())


@pytest.mark.parametrize(
    ("data", "text", "expected"),
    [
        ("text", None, Message("text")),
        (b"bytes", None, Message(b"bytes")),
        (bytearray(b"array"), None, Message(b"array")),
        (memoryview(b"view"), None, Message(b"view")),
        (b"utf-8 text", True, Message("utf-8 text")),
        (bytearray(b"array text"), True, Message("array text")),
        ("str as binary", False, Message(b"str as binary")),
        (b"binary", False, Message(b"binary")),
        ("text", True, Message("text")),
    ],
)
def test_send_data(data: str | bytes, text: bool | None, expected: Message) -> None:
    client, server = pair()
    send_data(client, data, text)
    assert deliver(client, server) == [expected]


def test_fragmented_text() -> None:
    client, server = pair()
    pieces = ["a", "b", "c"]
    for index, piece in enumerate(pieces):
        send_piece(client, piece, pieces[0], index, None)
    end_fragments(client)
    assert deliver(client, server) == [
        Fragment("a", first=True, last=False),
        Fragment("b", first=False, last=False),
        Fragment("c", first=False, last=False),
        Fragment("", first=False, last=True),
    ]


def test_fragmented_binary_as_text() -> None:
    client, server = pair()
    pieces: list[Data] = [b"x", bytearray(b"y"), memoryview(b"z")]
    for index, piece in enumerate(pieces):
        send_piece(client, piece, pieces[0], index, True)
    end_fragments(client)
    events = deliver(client, server)
    assert "".join(event.data for event in events) == "xyz"  # type: ignore[attr-defined]


def test_check_piece() -> None:
    check_piece("b", "a")
    check_piece(b"b", b"a")
    check_piece(memoryview(b"b"), bytearray(b"a"))
    with pytest.raises(TypeError):
        check_piece(b"b", "a")
    with pytest.raises(TypeError):
        check_piece("b", b"a")
    with pytest.raises(TypeError):
        check_piece(1, 2)


def test_send_piece_checks_kind() -> None:
    client, _ = pair()
    send_piece(client, "first", "first", 0, None)
    with pytest.raises(TypeError):
        send_piece(client, b"second", "first", 1, None)


def test_send_after_close_raises_closure() -> None:
    client, server = pair()
    client.send_close(CloseCode.NORMAL_CLOSURE)
    with pytest.raises(ConnectionClosedError) as info:
        send_data(client, "late", None)
    assert info.value.sent is not None
    # Once the peer's answer completes the handshake, the closure is clean.
    for data in client.data_to_send():
        server.receive_data(data)
    for data in server.data_to_send():
        client.receive_data(data)
    with pytest.raises(ConnectionClosedOK):
        send_data(client, b"late", None)
    with pytest.raises(ConnectionClosedOK):
        send_piece(client, b"late", b"late", 0, None)


def test_continuation_after_close_raises_closure() -> None:
    client, _ = pair()
    send_piece(client, "first", "first", 0, None)
    client.fail(CloseCode.INTERNAL_ERROR, "broken")
    with pytest.raises(ConnectionClosedError):
        send_piece(client, "second", "first", 1, None)
    with pytest.raises(ConnectionClosedError):
        end_fragments(client)
