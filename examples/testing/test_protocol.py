import json

from tether.protocol import Message
from tether.testing import EnginePair


def encode(event: str, **data: object) -> str:
    """The application's message format: one JSON object with a type."""
    return json.dumps({"type": event, **data})


def test_encoded_messages_cross_the_protocol() -> None:
    pair = EnginePair()  # a client and a server engine, after the handshake
    pair.client.send_text(encode("join", room="tea"))
    _, server_events = pair.exchange()
    assert server_events == [Message('{"type": "join", "room": "tea"}')]


def test_oversized_messages_are_refused() -> None:
    pair = EnginePair(server_options={"max_size": 64})
    pair.client.send_text(encode("say", text="x" * 100))
    pair.exchange()
    assert pair.client.close_rcvd is not None
    assert pair.client.close_rcvd.code == 1009  # message too big
