"""EnginePair: two engines in memory, from the handshake to the close."""

from __future__ import annotations

import pytest

from tether.exceptions import InvalidStatus
from tether.protocol import CloseReceived, Message, Ping, Pong, State
from tether.testing import EnginePair, assert_closed


def test_handshake_opens_both_engines() -> None:
    pair = EnginePair(
        "ws://tether.test/chat",
        client_options={"subprotocols": ["chat.v1"]},
        server_options={"subprotocols": ["chat.v1"]},
    )
    assert pair.is_open
    assert pair.response is not None
    assert pair.response.status_code == 101
    assert pair.client.subprotocol == "chat.v1"


def test_messages_both_ways_compressed() -> None:
    pair = EnginePair()
    assert pair.response is not None
    assert "permessage-deflate" in pair.response.headers["Sec-WebSocket-Extensions"]
    pair.client.send_text("hello " * 100)
    pair.server.send_binary(b"\x00\x01")
    client_events, server_events = pair.exchange()
    assert server_events == [Message("hello " * 100)]
    assert client_events == [Message(b"\x00\x01")]


def test_without_compression() -> None:
    pair = EnginePair(compression=None)
    assert pair.response is not None
    assert "Sec-WebSocket-Extensions" not in pair.response.headers
    pair.client.send_text("plain")
    assert pair.exchange() == ([], [Message("plain")])


def test_pings_are_answered_by_the_engines() -> None:
    pair = EnginePair()
    pair.client.send_ping(b"x")
    client_events, server_events = pair.exchange()
    assert server_events == [Ping(b"x")]
    assert client_events == [Pong(b"x")]


def test_closing_handshake_and_end_of_stream() -> None:
    pair = EnginePair()
    pair.server.send_close(4000, "bye")
    client_events, server_events = pair.exchange()
    assert [type(event) for event in client_events] == [CloseReceived]
    assert [type(event) for event in server_events] == [CloseReceived]
    # The server closed TCP after the closing handshake: the client saw the end.
    assert pair.client.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    assert pair.client.eof_received


def test_refused_handshake() -> None:
    pair = EnginePair(server_options={"origins": ["https://allowed.test"]})
    assert pair.response is not None
    assert pair.response.status_code == 403
    assert not pair.is_open
    assert isinstance(pair.client.handshake_exc, InvalidStatus)


def test_handshake_can_wait() -> None:
    pair = EnginePair(handshake=False)
    assert pair.response is None
    assert pair.client.state is State.CONNECTING
    pair.handshake()
    assert pair.is_open


def test_a_protocol_error_fails_both_sides() -> None:
    pair = EnginePair(server_options={"max_size": 10})
    pair.client.send_text("more than ten bytes")
    pair.exchange()
    assert pair.server.close_sent is not None
    assert pair.server.close_sent.code == 1009
    assert pair.client.close_rcvd is not None
    assert pair.client.close_rcvd.code == 1009
    assert pair.client.state is State.CLOSED


class Closed:
    """What assert_closed reads of a connection: its engine and close code."""

    def __init__(self, pair: EnginePair) -> None:
        self.protocol = pair.client
        close = pair.client.close_rcvd
        self.close_code = 1006 if close is None else close.code
        self.close_reason = "" if close is None else close.reason


def test_assert_closed_reads_the_engine() -> None:
    pair = EnginePair()
    with pytest.raises(AssertionError, match="the connection is not closed"):
        assert_closed(Closed(pair), 1000)
    pair.client.send_close(1000, "done")
    pair.exchange()
    assert_closed(Closed(pair), 1000, "done")
    with pytest.raises(AssertionError, match=r"expected close 1001, got 1000 'done'"):
        assert_closed(Closed(pair), 1001)
