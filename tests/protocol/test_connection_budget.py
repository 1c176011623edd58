"""The message budget: a layer above bounds how many messages one read may produce."""

from __future__ import annotations

from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import CloseReceived, Message, Ping


def wire(*messages: str) -> bytes:
    client = Connection(Role.CLIENT)
    for message in messages:
        client.send_text(message)
    return b"".join(client.data_to_send())


def test_no_budget_parses_everything() -> None:
    server = Connection(Role.SERVER)
    server.receive_data(wire("a", "b", "c"))
    assert server.events() == [Message("a"), Message("b"), Message("c")]
    assert not server.held_back


def test_budget_holds_back_the_rest_until_resumed() -> None:
    server = Connection(Role.SERVER)
    server.message_budget = 1
    server.receive_data(wire("a", "b", "c"))
    assert server.events() == [Message("a")]
    assert server.held_back
    # More bytes while the budget is spent are held back too, in order.
    server.receive_data(wire("d"))
    assert server.events() == []
    server.message_budget = 2
    server.resume_parsing()
    assert server.events() == [Message("b"), Message("c")]
    server.message_budget = 5
    server.resume_parsing()
    assert server.events() == [Message("d")]
    assert not server.held_back


def test_fragmented_message_counts_once() -> None:
    client = Connection(Role.CLIENT)
    client.send_text("ab", fin=False)
    client.send_continuation("cd", fin=True)
    client.send_text("e")
    server = Connection(Role.SERVER)
    server.message_budget = 1
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events() == [Message("abcd")]
    assert server.held_back


def test_eof_waits_for_held_back_messages() -> None:
    server = Connection(Role.SERVER)
    server.message_budget = 1
    server.receive_data(wire("a", "b"))
    server.receive_eof()
    assert server.eof_received
    states = [server.state]
    server.message_budget = 1
    server.resume_parsing()
    states.append(server.state)
    assert server.events() == [Message("a"), Message("b")]
    assert states == [State.OPEN, State.CLOSED]
    assert server.close_transport


def test_eof_with_nothing_held_back_closes_at_once() -> None:
    server = Connection(Role.SERVER)
    server.message_budget = 0
    server.receive_eof()
    assert server.state is State.CLOSED
    server.resume_parsing()  # Nothing to do, nothing breaks.
    assert server.state is State.CLOSED


def test_close_frame_behind_the_budget_is_read_on_resume() -> None:
    client = Connection(Role.CLIENT)
    client.send_text("a")
    client.send_text("b")
    client.send_close(1000, "done")
    server = Connection(Role.SERVER)
    server.message_budget = 1
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events() == [Message("a")]
    assert server.close_rcvd is None
    server.message_budget = 1
    server.resume_parsing()
    assert server.events() == [Message("b"), CloseReceived(Close(1000, "done"))]
    assert server.close_sent == Close(1000, "done")


def test_control_frames_pass_a_spent_budget() -> None:
    client = Connection(Role.CLIENT)
    client.send_text("a")
    client.send_ping(b"still there?")
    client.send_text("b")
    client.send_ping(b"later")
    server = Connection(Role.SERVER)
    server.message_budget = 1
    server.receive_data(b"".join(client.data_to_send()))
    # The ping right after the first message is answered; the one after the
    # held-back message waits with it, in order.
    assert server.events() == [Message("a"), Ping(b"still there?")]
    assert server.held_back


def test_compressed_messages_are_not_inflated_past_the_budget() -> None:
    client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    for _ in range(200):
        client.send_binary(bytes(60_000))
    data = b"".join(client.data_to_send())
    assert len(data) < 200 * 200  # Each message compresses to a few dozen bytes.
    server = Connection(
        Role.SERVER, max_size=65536, extensions=[PerMessageDeflate(False, False, 15, 15)]
    )
    server.message_budget = 2
    server.receive_data(data)
    # Two messages inflated; the other 198 wait compressed.
    assert server.events() == [Message(bytes(60_000))] * 2
    assert server.held_back
    server.message_budget = 300
    server.resume_parsing()
    assert len(server.events()) == 198


def test_budget_counts_messages_that_extensions_decode() -> None:
    # A per-frame extension sends every frame through the extensions' path,
    # not the plain one: the budget counts the messages that come out of it.
    from tests.protocol.test_connection_extensions import InvertFrames  # noqa: PLC0415

    client = Connection(Role.CLIENT, extensions=[InvertFrames()])
    client.send_text("a")
    client.send_text("b")
    server = Connection(Role.SERVER, extensions=[InvertFrames()])
    server.message_budget = 1
    server.receive_data(b"".join(client.data_to_send()))
    assert server.events() == [Message("a")]
    assert server.message_budget == 0
    assert server.held_back
    server.message_budget = 1
    server.resume_parsing()
    assert server.events() == [Message("b")]
    assert server.message_budget == 0
    assert not server.held_back


def test_a_read_within_the_budget_is_only_messages() -> None:
    # The fast path: whole messages in one frame each, compressed or not,
    # counted off the budget; receive_data promises only Message events.
    for extensions in ([], [PerMessageDeflate(False, False, 15, 15)]):
        client = Connection(Role.CLIENT, extensions=extensions)
        client.send_text("a")
        client.send_binary(b"b")
        server = Connection(Role.SERVER, extensions=[PerMessageDeflate(False, False, 15, 15)])
        server.message_budget = 3
        assert server.receive_data(b"".join(client.data_to_send())) is True
        assert server.events() == [Message("a"), Message(b"b")]
        assert server.message_budget == 1
        assert server.data_to_send() == []


def test_a_spent_budget_holds_back_a_new_read() -> None:
    server = Connection(Role.SERVER)
    server.message_budget = 0
    assert server.receive_data(wire("a")) is False
    assert server.events() == []
    assert server.held_back
    server.message_budget = 1
    server.resume_parsing()
    assert server.events() == [Message("a")]
    assert not server.held_back
