"""A client engine and a server engine wired together, fed one byte at a time."""

from __future__ import annotations

from tether.exceptions import ConnectionClosedOK
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from tether.protocol import (
    ClientProtocol,
    Close,
    CloseReceived,
    Connection,
    Event,
    Message,
    Ping,
    Pong,
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    State,
)


def trickle(sender: Connection, receiver: Connection) -> list[Event]:
    """Move the sender's bytes to the receiver one byte at a time; return its events."""
    for chunk in sender.data_to_send():
        for index in range(len(chunk)):
            receiver.receive_data(chunk[index : index + 1])
    return receiver.events()


def test_full_session_byte_by_byte() -> None:
    client = ClientProtocol(
        "ws://localhost:8765/room?id=1",
        subprotocols=["v2.chat", "v1.chat"],
        extensions=[ClientPerMessageDeflateFactory(client_max_window_bits=True)],
    )
    server = ServerProtocol(
        subprotocols=["v1.chat"],
        extensions=[ServerPerMessageDeflateFactory(server_max_window_bits=11)],
    )

    client.send_request(client.connect())
    (request_event,) = trickle(client, server)
    assert isinstance(request_event, RequestReceived)
    assert request_event.request.path == "/room?id=1"
    server.send_response(server.accept(request_event.request))
    (response_event,) = trickle(server, client)
    assert isinstance(response_event, ResponseReceived)
    assert response_event.response.status_code == 101
    assert client.state is State.OPEN
    assert server.state is State.OPEN
    assert client.subprotocol == server.subprotocol == "v1.chat"
    for engine in (client, server):
        (extension,) = engine.extensions
        assert isinstance(extension, PerMessageDeflate)
        window_bits = (extension.remote_max_window_bits, extension.local_max_window_bits)
        assert window_bits == ((11, 15) if engine is client else (15, 11))

    text = "Ünïcödé text, split inside a character: ✓✓✓ " * 20
    binary = bytes(range(256)) * 40
    client.send_text(text[:13], fin=False)
    client.send_ping(b"first")
    client.send_continuation(text[13:30], fin=False)
    client.send_ping(b"second")
    client.send_continuation(text[30:], fin=True)
    client.send_binary(binary[:1000], fin=False)
    client.send_continuation(binary[1000:], fin=True)
    client.send_binary(b"raw", compress=False)
    assert trickle(client, server) == [
        Ping(b"first"),
        Ping(b"second"),
        Message(text),
        Message(binary),
        Message(b"raw"),
    ]
    assert trickle(server, client) == [Pong(b"first"), Pong(b"second")]

    server.send_text(text, fin=False)
    server.send_continuation("", fin=True)
    server.send_binary(binary)
    assert trickle(server, client) == [Message(text), Message(binary)]

    client.send_close(1001, "leaving")
    assert trickle(client, server) == [CloseReceived(Close(1001, "leaving"))]
    assert server.close_transport
    # The server echoes the close whole: code and reason.
    assert trickle(server, client) == [CloseReceived(Close(1001, "leaving"))]
    assert not client.close_transport  # the client waits for the server to close TCP
    server.receive_eof()
    client.receive_eof()

    assert client.close_sent == Close(1001, "leaving") == server.close_rcvd
    assert client.close_rcvd == Close(1001, "leaving") == server.close_sent
    assert client.close_rcvd_then_sent is False
    assert server.close_rcvd_then_sent is True
    for engine in (client, server):
        assert engine.state is State.CLOSED
        assert isinstance(engine.close_exc(), ConnectionClosedOK)
        assert engine.data_to_send() == []
