"""The engine keeps nothing of the buffer a read came in.

The asyncio API reads every connection of a thread into one shared buffer
and hands the engine a view of it; the next read overwrites it. So whatever
the engine keeps across calls (a partial frame, a message in progress, a
compressed frame, handshake bytes) must be a copy. Here each read goes
through one buffer that is scribbled over right after ``receive_data``
returns: the events must be those of the same bytes fed as ``bytes``.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.connection_helpers import reassemble
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Event, Message, RequestReceived
from tether.protocol.server import ServerProtocol

# Payloads of any size up to a few pieces of 4 KiB, where the engine stops
# gathering small pieces and keeps large ones as they are, and now and then
# one large enough to be written into one payload as it arrives.
PAYLOADS = (st.integers(0, 12_000) | st.sampled_from([70_000, 150_000])).map(
    lambda size: random.Random(size).randbytes(size)
)

# What the peer sends: a whole message, a message in pieces, or a ping.
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=300)),
        st.tuples(st.just("binary"), PAYLOADS),
        st.tuples(st.just("pieces"), st.lists(PAYLOADS, min_size=1, max_size=4)),
        st.tuples(st.just("ping"), st.binary(max_size=125)),
    ),
    max_size=8,
)


def wire_of(sender: Connection, actions: list[tuple[str, object]]) -> bytes:
    for kind, value in actions:
        if kind == "text":
            assert isinstance(value, str)
            sender.send_message(value)
        elif kind == "binary":
            assert isinstance(value, bytes)
            sender.send_message(value)
        elif kind == "pieces":
            assert isinstance(value, list)
            sender.send_binary(value[0], fin=False)
            for piece in value[1:]:
                sender.send_continuation(piece, fin=False)
            sender.send_continuation(b"", fin=True)
        else:
            assert isinstance(value, bytes)
            sender.send_ping(value)
    sender.send_close(1000)
    return b"".join(sender.data_to_send())


def through_one_buffer(conn: Connection, wire: bytes, cuts: list[int]) -> list[Event]:
    buffer = bytearray(len(wire) + 1)
    view = memoryview(buffer)
    events: list[Event] = []
    start = 0
    for stop in [*sorted(cuts), len(wire)]:
        size = stop - start
        buffer[:size] = wire[start:stop]
        conn.receive_data(view[:size])
        # The next read lands here: nothing the engine kept may see it.
        buffer[:] = b"\xa5" * len(buffer)
        events += conn.events()
        start = stop
    return events


@settings(max_examples=150, deadline=None)
@given(
    role=st.sampled_from([Role.CLIENT, Role.SERVER]),
    actions=ACTIONS,
    compress=st.booleans(),
    streaming=st.booleans(),
    data=st.data(),
)
def test_nothing_of_a_read_buffer_is_kept(
    role: Role,
    actions: list[tuple[str, object]],
    compress: bool,
    streaming: bool,
    data: st.DataObject,
) -> None:
    def extensions() -> list[PerMessageDeflate]:
        return [PerMessageDeflate(False, False, 15, 15)] if compress else []

    peer_role = Role.SERVER if role is Role.CLIENT else Role.CLIENT
    wire = wire_of(Connection(peer_role, extensions=extensions()), actions)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))

    reference = Connection(role, streaming=streaming, extensions=extensions())
    reference.receive_data(wire)
    expected = reference.events()

    conn = Connection(role, streaming=streaming, extensions=extensions())
    events = through_one_buffer(conn, wire, cuts)
    assert reassemble(events) == reassemble(expected)
    assert conn.close_rcvd is not None
    assert conn.close_rcvd.code == 1000


@pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER])
@pytest.mark.parametrize("size", [100, 5000, 70_000])
def test_a_large_message_across_reads_of_one_buffer(role: Role, size: int) -> None:
    peer_role = Role.SERVER if role is Role.CLIENT else Role.CLIENT
    payload = random.Random(size).randbytes(size)
    wire = wire_of(Connection(peer_role), [("binary", payload), ("pieces", [payload, payload])])
    cuts = list(range(1, len(wire), 4099))
    events = through_one_buffer(Connection(role), wire, cuts)
    assert reassemble(events)[:2] == reassemble([Message(payload), Message(payload * 2)])


@pytest.mark.parametrize("cut", [1, 20, 60])
def test_nothing_of_a_handshake_read_buffer_is_kept(cut: int) -> None:
    client = ClientProtocol("ws://example.test/chat")
    request = client.connect()
    client.send_request(request)
    wire = b"".join(client.data_to_send())
    server = ServerProtocol()
    (event,) = through_one_buffer(server, wire, [cut])
    assert isinstance(event, RequestReceived)
    assert event.request.path == "/chat"
    assert event.request.headers == request.headers
    server.send_response(server.accept(event.request))
    response = b"".join(server.data_to_send())
    through_one_buffer(client, response, [cut])
    assert client.state.name == "OPEN"
