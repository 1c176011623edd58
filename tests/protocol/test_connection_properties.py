"""Property tests of the protocol engine.

Two engines wired together exchange random messages in random fragments with
the bytes delivered in random pieces; and one engine fed the same bytes in
different chunkings ends up in the same place.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.connection_helpers import (
    Chunking,
    build_frame,
    chunks,
    reassemble,
    sent_frames,
)
from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import CloseReceived, Event, Fragment, Message, Ping, Pong
from tether.protocol.frames import Frame, Opcode

# Two engines wired together


@dataclass(frozen=True)
class SendMessage:
    from_client: bool
    data: str | bytes
    cuts: tuple[int, ...]
    """Byte offsets where the message is split into frames."""
    pings: tuple[bytes, ...]
    """Pings sent one after each frame, while they last."""


@dataclass(frozen=True)
class SendPing:
    from_client: bool
    data: bytes


@dataclass(frozen=True)
class Deliver:
    """Move every byte written so far to the other side."""


Action = SendMessage | SendPing | Deliver

control_payloads = st.binary(max_size=125)

send_message = st.builds(
    SendMessage,
    from_client=st.booleans(),
    data=st.one_of(st.text(max_size=300), st.binary(max_size=300)),
    cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=5).map(tuple),
    pings=st.lists(control_payloads, max_size=2).map(tuple),
)
send_ping = st.builds(SendPing, from_client=st.booleans(), data=control_payloads)
actions = st.lists(
    st.one_of(send_message, send_ping, st.just(Deliver())),
    max_size=10,
)


@dataclass
class Side:
    """One engine with what it should receive from the other."""

    conn: Connection
    expected: list[Event]
    expected_pongs: list[Event]


def deliver(source: Connection, target: Connection, rng: random.Random) -> bool:
    """Move what ``source`` wrote to ``target`` in random pieces; tell if there was any."""
    data = b"".join(source.data_to_send())
    kind: Chunking = rng.choice(["whole", "bytewise", "random"])
    for chunk in chunks(data, kind, rng):
        target.receive_data(chunk)
    return bool(data)


def pump(client: Connection, server: Connection, rng: random.Random) -> None:
    """Deliver in both directions until nothing is left to send."""
    for _ in range(10):
        moved = deliver(client, server, rng)
        moved = deliver(server, client, rng) or moved
        if not moved:
            return
    raise AssertionError("engines keep talking")


def perform(action: SendMessage | SendPing, sender: Side, receiver: Side) -> None:
    conn = sender.conn
    if isinstance(action, SendPing):
        conn.send_ping(action.data)
        receiver.expected.append(Ping(action.data))
        sender.expected_pongs.append(Pong(action.data))
        return
    text = isinstance(action.data, str)
    payload = action.data.encode() if isinstance(action.data, str) else action.data
    points = sorted({cut % (len(payload) + 1) for cut in action.cuts})
    bounds = [0, *points, len(payload)]
    pieces = [payload[start:end] for start, end in itertools.pairwise(bounds)]
    pings = list(action.pings)
    for index, piece in enumerate(pieces):
        fin = index == len(pieces) - 1
        if index == 0:
            if text:
                conn.send_text(piece, fin=fin)
            else:
                conn.send_binary(piece, fin=fin)
        else:
            conn.send_continuation(piece, fin=fin)
        if fin:
            receiver.expected.append(Message(action.data))
        if pings:
            ping = pings.pop(0)
            conn.send_ping(ping)
            receiver.expected.append(Ping(ping))
            sender.expected_pongs.append(Pong(ping))


def received(side: Side) -> tuple[list[Event], list[Event]]:
    """The events of one side, split into pongs and the rest, with fragments joined."""
    events = reassemble(side.conn.events())
    return (
        [event for event in events if not isinstance(event, Pong)],
        [event for event in events if isinstance(event, Pong)],
    )


close_codes = st.sampled_from([1000, 1001, 1005, 1002, 1011, 3000, 4999])


@settings(max_examples=100, deadline=None)
@given(
    actions=actions,
    client_streams=st.booleans(),
    server_streams=st.booleans(),
    closer=st.sampled_from(["client", "server", "both"]),
    codes=st.tuples(close_codes, close_codes),
    reason=st.text(max_size=20),
    rng=st.randoms(use_true_random=False),
)
def test_engines_exchange_messages_and_close(
    *,
    actions: list[Action],
    client_streams: bool,
    server_streams: bool,
    closer: str,
    codes: tuple[int, int],
    reason: str,
    rng: random.Random,
) -> None:
    client = Side(Connection(Role.CLIENT, streaming=client_streams), [], [])
    server = Side(Connection(Role.SERVER, streaming=server_streams), [], [])
    for action in actions:
        if isinstance(action, Deliver):
            pump(client.conn, server.conn, rng)
        elif action.from_client:
            perform(action, client, server)
        else:
            perform(action, server, client)
    pump(client.conn, server.conn, rng)
    for side in (client, server):
        assert side.conn.error is None
        assert received(side) == (side.expected, side.expected_pongs)

    # The closing handshake.
    closing = {"client": [client], "server": [server], "both": [client, server]}[closer]
    sent: dict[int, Close] = {}
    for side, code in zip(closing, codes, strict=False):
        close = Close(code, "" if code == 1005 else reason)
        side.conn.send_close(close.code, close.reason)
        sent[id(side)] = close
    pump(client.conn, server.conn, rng)
    for side, other in ((client, server), (server, client)):
        conn = side.conn
        assert conn.error is None
        assert conn.state is State.CLOSING
        assert conn.close_sent is not None
        assert conn.close_rcvd is not None
        if id(other) in sent:
            assert conn.close_rcvd == sent[id(other)]
        else:
            # An echo: our own close, code and reason.
            assert conn.close_rcvd == sent[id(side)]
        # The side that did not start the closing handshake echoed the whole close.
        assert conn.close_sent == sent.get(id(side), conn.close_rcvd)
        assert conn.close_rcvd_then_sent is (id(side) not in sent)
        assert conn.events() == [CloseReceived(conn.close_rcvd)]
        assert conn.close_transport is (conn.role is Role.SERVER)
        ok = {conn.close_sent.code, conn.close_rcvd.code} <= {1000, 1001, 1005}
        assert type(conn.close_exc()) is (ConnectionClosedOK if ok else ConnectionClosedError)
    client.conn.receive_eof()
    assert client.conn.state is State.CLOSED
    assert client.conn.close_transport


# The same bytes in any chunking


@st.composite
def masking_key(draw: st.DrawFn, masked: bool) -> bytes | None:
    """The key a peer masks a frame with: none from a server, and now and then a wrong one."""
    if draw(st.integers(0, 40)) == 17:
        return None if masked else b"\x00" * 4
    return draw(st.binary(min_size=4, max_size=4)) if masked else None


payloads = st.one_of(
    st.text(max_size=80).map(str.encode),
    st.binary(max_size=80),
    st.sampled_from([b"\xed\xa0\x80", b"\xf0\x9f", b"\xc3", b"ok\xff"]),
)


@st.composite
def data_message(draw: st.DrawFn, masked: bool) -> bytes:
    """A text or binary message, maybe fragmented, maybe with control frames between."""
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY]))
    if opcode is Opcode.TEXT:
        valid = st.text(max_size=100).map(str.encode)
        payload = draw(st.integers(0, 4).flatmap(lambda n: valid if n else payloads))
    else:
        payload = draw(st.binary(max_size=100))
    cuts = draw(st.lists(st.integers(0, len(payload)), max_size=4))
    bounds = [0, *sorted(cuts), len(payload)]
    frames = []
    for index, (start, end) in enumerate(itertools.pairwise(bounds)):
        frames.append(
            build_frame(
                opcode if index == 0 else Opcode.CONT,
                payload[start:end],
                fin=index == len(bounds) - 2,
                key=draw(masking_key(masked)),
            )
        )
        if draw(st.integers(0, 3)) == 0:
            frames.append(draw(control_frame(masked)))
    return b"".join(frames)


@st.composite
def control_frame(draw: st.DrawFn, masked: bool) -> bytes:
    opcode = draw(st.sampled_from([Opcode.PING, Opcode.PONG]))
    return build_frame(opcode, draw(control_payloads), key=draw(masking_key(masked)))


@st.composite
def close_frame(draw: st.DrawFn, masked: bool) -> bytes:
    payload = draw(
        st.one_of(
            st.builds(
                lambda code, reason: code.to_bytes(2, "big") + reason.encode(),
                st.sampled_from([1000, 1001, 1004, 1005, 3000, 5000]),
                st.text(max_size=10),
            ),
            st.binary(max_size=4),
        )
    )
    return build_frame(Opcode.CLOSE, payload, key=draw(masking_key(masked)))


@st.composite
def junk_frame(draw: st.DrawFn, masked: bool) -> bytes:
    """Any opcode, fin and RSV bits: mostly frames that break a rule."""
    return build_frame(
        draw(st.integers(min_value=0, max_value=15)),
        draw(payloads),
        fin=draw(st.booleans()),
        rsv=draw(st.sampled_from([0, 0, 0x40, 0x20, 0x10])),
        key=draw(masking_key(masked)),
    )


@st.composite
def wire_inputs(draw: st.DrawFn, masked: bool) -> bytes:
    """What a peer might send: mostly valid, now and then corrupted or cut short."""
    others = st.one_of(control_frame(masked), close_frame(masked), junk_frame(masked))
    parts = st.integers(0, 3).flatmap(lambda n: data_message(masked) if n else others)
    data = b"".join(draw(st.lists(parts, max_size=6)))
    mutation = draw(st.sampled_from(["none", "none", "none", "flip", "truncate"]))
    if data and mutation == "flip":
        position = draw(st.integers(0, len(data) - 1))
        data = data[:position] + bytes([draw(st.integers(0, 255))]) + data[position + 1 :]
    elif data and mutation == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    return data


def outcome(conn: Connection) -> tuple[object, ...]:
    """Everything observable, with close reasons left out of what the engine sent."""
    frames = [
        Frame(Opcode.CLOSE, frame.data[:2]) if frame.opcode is Opcode.CLOSE else frame
        for frame in sent_frames(conn)
    ]
    error = conn.error
    return (
        conn.events(),
        frames,
        None if error is None else (type(error), error.code),
        conn.state,
        conn.close_rcvd,
        None if conn.close_sent is None else conn.close_sent.code,
        conn.close_rcvd_then_sent,
        conn.close_transport,
    )


def run(
    role: Role,
    data: bytes,
    chunking: Chunking,
    rng: random.Random,
    *,
    max_size: int | None,
    max_fragments: int | None,
    streaming: bool = False,
) -> Connection:
    conn = Connection(role, max_size=max_size, max_fragments=max_fragments, streaming=streaming)
    for chunk in chunks(data, chunking, rng):
        conn.receive_data(chunk)
    return conn


roles = st.sampled_from([Role.CLIENT, Role.SERVER])
max_sizes = st.sampled_from([None, 0, 16, 64, 1 << 20])
max_fragment_counts = st.sampled_from([None, 1, 2, 4])
roles_and_inputs = roles.flatmap(
    lambda role: st.tuples(st.just(role), wire_inputs(role is Role.SERVER))
)


@settings(max_examples=120, deadline=None)
@given(
    role_and_data=roles_and_inputs,
    max_size=max_sizes,
    max_fragments=max_fragment_counts,
    rng=st.randoms(use_true_random=False),
)
def test_same_outcome_in_any_chunking(
    role_and_data: tuple[Role, bytes],
    max_size: int | None,
    max_fragments: int | None,
    rng: random.Random,
) -> None:
    role, data = role_and_data
    whole = outcome(run(role, data, "whole", rng, max_size=max_size, max_fragments=max_fragments))
    assert (
        outcome(run(role, data, "bytewise", rng, max_size=max_size, max_fragments=max_fragments))
        == whole
    )
    assert (
        outcome(run(role, data, "random", rng, max_size=max_size, max_fragments=max_fragments))
        == whole
    )


@settings(max_examples=100, deadline=None)
@given(
    role_and_data=roles_and_inputs,
    max_size=max_sizes,
    max_fragments=max_fragment_counts,
    rng=st.randoms(use_true_random=False),
)
def test_streaming_same_outcome_in_any_chunking(
    role_and_data: tuple[Role, bytes],
    max_size: int | None,
    max_fragments: int | None,
    rng: random.Random,
) -> None:
    """Streamed pieces depend on the chunking; what they add up to does not."""
    role, data = role_and_data
    plain = run(role, data, "whole", rng, max_size=max_size, max_fragments=max_fragments)
    whole = run(
        role, data, "whole", rng, max_size=max_size, max_fragments=max_fragments, streaming=True
    )
    bytewise = run(
        role, data, "bytewise", rng, max_size=max_size, max_fragments=max_fragments, streaming=True
    )
    error_codes = {
        None if conn.error is None else conn.error.code for conn in (plain, whole, bytewise)
    }
    assert len(error_codes) == 1
    if plain.error is None:
        expected = plain.events()
        for conn in (whole, bytewise):
            assert reassemble(drop_open_message(conn.events())) == expected


def drop_open_message(events: list[Event]) -> list[Event]:
    """Leave out the fragments of a message the input ended in the middle of."""
    start = None
    for index, event in enumerate(events):
        if isinstance(event, Fragment):
            if event.first:
                start = index
            if event.last:
                start = None
    if start is None:
        return events
    return events[:start] + [event for event in events[start:] if not isinstance(event, Fragment)]
