"""Turning what an application sends into engine calls, shared by both APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import CloseCode
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Fragment, Message
from tether.sending import Data, Fragments, is_single, send_data


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


def send_all(client: Connection, pieces: list[Data], text: bool | None) -> Fragments:
    fragments = Fragments(client, text)
    for piece in pieces:
        fragments.send(piece)
    fragments.end()
    return fragments


def test_fragmented_text() -> None:
    client, server = pair()
    assert send_all(client, ["a", "b", "c"], None).started
    assert deliver(client, server) == [
        Fragment("a", first=True, last=False),
        Fragment("b", first=False, last=False),
        Fragment("c", first=False, last=False),
        Fragment("", first=False, last=True),
    ]


def test_fragmented_binary_as_text() -> None:
    client, server = pair()
    send_all(client, [b"x", bytearray(b"y"), memoryview(b"z")], True)
    events = deliver(client, server)
    assert "".join(event.data for event in events) == "xyz"  # type: ignore[attr-defined]


def test_empty_iterable_sends_nothing() -> None:
    client, server = pair()
    assert not send_all(client, [], None).started
    assert deliver(client, server) == []


@pytest.mark.parametrize(
    ("message", "single"),
    [("a", True), (b"a", True), (bytearray(), True), (memoryview(b""), True), (["a"], False)],
)
def test_is_single(message: object, single: bool) -> None:
    assert is_single(message) is single


async def _pieces() -> AsyncIterator[str]:
    yield "a"


def test_is_single_takes_async_iterables() -> None:
    assert is_single(_pieces()) is False


@pytest.mark.parametrize("message", [{"a": 1}, 42, None, object()])
def test_is_single_refuses_other_types(message: object) -> None:
    with pytest.raises(TypeError):
        is_single(message)


def test_first_piece_of_wrong_type_sends_nothing() -> None:
    client, _ = pair()
    fragments = Fragments(client, None)
    with pytest.raises(TypeError):
        fragments.send(1)  # type: ignore[arg-type]
    assert not fragments.started
    assert client.data_to_send() == []


@pytest.mark.parametrize(("first", "second"), [("a", b"b"), (b"a", "b"), (b"a", 2)])
def test_pieces_must_share_a_kind(first: Data, second: Data) -> None:
    client, _ = pair()
    fragments = Fragments(client, None)
    fragments.send(first)
    with pytest.raises(TypeError):
        fragments.send(second)
    assert fragments.started


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
        Fragments(client, None).send(b"late")


def test_continuation_after_close_raises_closure() -> None:
    client, _ = pair()
    fragments = Fragments(client, None)
    fragments.send("first")
    client.fail(CloseCode.INTERNAL_ERROR, "broken")
    with pytest.raises(ConnectionClosedError):
        fragments.send("second")
    with pytest.raises(ConnectionClosedError):
        fragments.end()
