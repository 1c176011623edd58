"""Stateful property test of the protocol engine: a client and a server wired together.

A hypothesis state machine sends whole and fragmented messages, pings, pongs
and close frames from either side, moves the bytes across in random pieces,
sometimes corrupts them on the way (a flipped bit, a truncation, injected
bytes) and ends TCP. After every step it checks that:

- nothing but :class:`InvalidState` escapes a send made in the wrong state,
  and nothing at all escapes ``receive_data`` or ``receive_eof``;
- over an intact direction, the receiver gets exactly the events the sender
  wrote, in order, up to the first close frame;
- over a corrupted direction, the receiver either keeps going or has failed
  with close code 1002, 1007 or 1009 and set ``error``; the events it made
  from the damaged bytes are not checked, since a flipped payload bit is
  undetectable (WebSocket frames carry no checksum);
- the receive buffer stays bounded;
- an engine that is CLOSED or asks to close TCP writes nothing more.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from tether.exceptions import InvalidState
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role, State, truncate_reason
from tether.protocol.events import CloseReceived, Event, Message, Ping, Pong

MAX_SIZE = 65536
# A compressed frame may wait whole in the buffer, with a 14-byte header.
BUFFER_LIMIT = MAX_SIZE + (MAX_SIZE >> 10) + 64 + 14
FAILURE_CODES = frozenset({1002, 1007, 1009})
CLIENT, SERVER = 0, 1

sides = st.sampled_from([CLIENT, SERVER])
contents = st.one_of(st.text(max_size=80), st.binary(max_size=200))
cut_points = st.lists(st.integers(min_value=0, max_value=400), max_size=4)
compress_choices = st.sampled_from([None, False])
control_payloads = st.binary(max_size=125)
closes = st.one_of(
    st.just((1005, "")),
    st.tuples(st.sampled_from([1000, 1001, 1011, 3000, 4999]), st.text(max_size=20)),
)
chunk_sizes = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=8)


@dataclass
class Link:
    """One direction of the connection: what its sender wrote and its receiver got."""

    wire: bytearray = field(default_factory=bytearray)
    expected: list[Event] = field(default_factory=list)
    received: list[Event] = field(default_factory=list)
    corrupted: bool = False
    eof: bool = False

    def expected_until_close(self) -> list[Event]:
        """The expected events up to the first close frame, after which a receiver reads nothing."""
        for index, event in enumerate(self.expected):
            if isinstance(event, CloseReceived):
                return self.expected[: index + 1]
        return self.expected


@dataclass
class Outgoing:
    """A fragmented message being sent one frame per step."""

    text: bool
    data: str | bytes
    pieces: list[bytes]


def split(payload: bytes, cuts: list[int]) -> list[bytes]:
    """Cut ``payload`` into frames at the given offsets, anywhere, even inside a character."""
    points = sorted({cut % (len(payload) + 1) for cut in cuts})
    bounds = [0, *points, len(payload)]
    return [payload[start:end] for start, end in itertools.pairwise(bounds)]


class EngineMachine(RuleBasedStateMachine):
    """A client engine and a server engine exchanging bytes through two links."""

    def __init__(self) -> None:
        super().__init__()
        self.conns: list[Connection] = []
        # links[side] carries what conns[side] writes to conns[1 - side].
        self.links = [Link(), Link()]
        self.frozen = [False, False]
        self.outgoing: list[Outgoing | None] = [None, None]

    @initialize(
        deflate=st.booleans(),
        no_context_takeover=st.tuples(st.booleans(), st.booleans()),
        window_bits=st.tuples(st.integers(8, 15), st.integers(8, 15)),
    )
    def start(
        self,
        deflate: bool,
        no_context_takeover: tuple[bool, bool],
        window_bits: tuple[int, int],
    ) -> None:
        """Build the two engines, both with permessage-deflate or neither."""
        for side, role in ((CLIENT, Role.CLIENT), (SERVER, Role.SERVER)):
            other = 1 - side
            extensions = (
                [
                    PerMessageDeflate(
                        remote_no_context_takeover=no_context_takeover[other],
                        local_no_context_takeover=no_context_takeover[side],
                        remote_max_window_bits=window_bits[other],
                        local_max_window_bits=window_bits[side],
                    )
                ]
                if deflate
                else []
            )
            self.conns.append(Connection(role, max_size=MAX_SIZE, extensions=extensions))

    # Bookkeeping

    def expect(self, side: int, event: Event) -> None:
        """Record that the peer of ``side`` should receive ``event``."""
        if not self.links[side].eof:
            self.links[side].expected.append(event)

    def collect(self, side: int) -> None:
        """Move what ``side`` wrote onto its link, checking it may still write."""
        output = b"".join(self.conns[side].data_to_send())
        assert not (self.frozen[side] and output), "wrote after closing"
        if not self.links[side].eof:
            self.links[side].wire += output
        conn = self.conns[side]
        if conn.state is State.CLOSED or conn.close_transport:
            self.frozen[side] = True

    def attempt(self, side: int, allowed: bool, action: Callable[[], None]) -> bool:
        """Run a send that should succeed when ``allowed`` and raise InvalidState otherwise."""
        if allowed:
            action()
        else:
            with pytest.raises(InvalidState):
                action()
        self.collect(side)
        return allowed

    def receive(self, side: int, data: bytes) -> None:
        """Feed ``data`` from the link of ``side`` to its peer; record what the peer answers."""
        receiver = 1 - side
        conn = self.conns[receiver]
        error_before = conn.error
        close_sent_before = conn.close_sent
        done_before = error_before is not None or conn.close_rcvd is not None
        conn.receive_data(data)
        events = conn.events()
        # Once failed or closed by the peer, an engine ignores what comes in.
        assert not (done_before and events)
        self.links[side].received += events
        for event in events:
            if isinstance(event, Ping):
                self.expect(receiver, Pong(event.data))
            elif isinstance(event, CloseReceived) and conn.close_rcvd_then_sent:
                assert conn.close_sent is not None
                self.expect(receiver, CloseReceived(conn.close_sent))
        if error_before is None and conn.error is not None and close_sent_before is None:
            # The engine failed while open: it says why in its close frame.
            failure = Close(conn.error.code, truncate_reason(str(conn.error)))
            assert conn.close_sent == failure
            self.expect(receiver, CloseReceived(failure))
        self.collect(receiver)

    def deliver_all(self, side: int, sizes: list[int]) -> bool:
        """Deliver every pending byte of a link; tell whether there was any."""
        pending = len(self.links[side].wire)
        self.deliver(side, pending, sizes)
        return pending > 0

    # Sending

    def can_start(self, side: int) -> bool:
        """Whether ``side`` may begin a new message."""
        return self.conns[side].state is State.OPEN and self.outgoing[side] is None

    @rule(side=sides, data=contents, cuts=cut_points, compress=compress_choices)
    def send_message(
        self, side: int, data: str | bytes, cuts: list[int], compress: bool | None
    ) -> None:
        """Send a whole message, in one frame or several."""
        conn = self.conns[side]
        if not self.can_start(side):
            self.attempt(side, False, lambda: conn.send_binary(b"x", compress=compress))
            return
        text = isinstance(data, str)
        pieces = split(data.encode() if isinstance(data, str) else data, cuts)
        for index, piece in enumerate(pieces):
            fin = index == len(pieces) - 1
            if index == 0:
                if text:
                    conn.send_text(piece, fin=fin, compress=compress)
                else:
                    conn.send_binary(piece, fin=fin, compress=compress)
            else:
                conn.send_continuation(piece, fin=fin)
        self.collect(side)
        self.expect(side, Message(data))

    @rule(side=sides, data=contents, cuts=cut_points, compress=compress_choices)
    def start_fragmented(
        self, side: int, data: str | bytes, cuts: list[int], compress: bool | None
    ) -> None:
        """Send the first frame of a message whose other frames come in later steps."""
        conn = self.conns[side]
        text = isinstance(data, str)
        pieces = split(data.encode() if isinstance(data, str) else data, cuts)
        if len(pieces) == 1:
            pieces.append(b"")
        first = pieces.pop(0)
        if text:
            sent = self.attempt(
                side,
                self.can_start(side),
                lambda: conn.send_text(first, fin=False, compress=compress),
            )
        else:
            sent = self.attempt(
                side,
                self.can_start(side),
                lambda: conn.send_binary(first, fin=False, compress=compress),
            )
        if sent:
            self.outgoing[side] = Outgoing(text, data, pieces)

    @rule(side=sides)
    def next_fragment(self, side: int) -> None:
        """Send the next frame of the fragmented message in progress."""
        conn = self.conns[side]
        outgoing = self.outgoing[side]
        if outgoing is None:
            self.attempt(side, False, lambda: conn.send_continuation(b"", fin=True))
            return
        piece = outgoing.pieces[0]
        fin = len(outgoing.pieces) == 1
        if self.attempt(
            side,
            conn.state is State.OPEN,
            lambda: conn.send_continuation(piece, fin=fin),
        ):
            outgoing.pieces.pop(0)
            if fin:
                self.outgoing[side] = None
                self.expect(side, Message(outgoing.data))

    @rule(side=sides, data=control_payloads)
    def send_ping(self, side: int, data: bytes) -> None:
        """Send a ping: the peer should see it, then answer it."""
        conn = self.conns[side]
        if self.attempt(side, conn.state is State.OPEN, lambda: conn.send_ping(data)):
            self.expect(side, Ping(data))

    @rule(side=sides, data=control_payloads)
    def send_pong(self, side: int, data: bytes) -> None:
        """Send an unsolicited pong."""
        conn = self.conns[side]
        if self.attempt(side, conn.state is State.OPEN, lambda: conn.send_pong(data)):
            self.expect(side, Pong(data))

    @rule(side=sides, close=closes)
    def send_close(self, side: int, close: tuple[int, str]) -> None:
        """Start the closing handshake."""
        conn = self.conns[side]
        code, reason = close
        if self.attempt(side, conn.state is State.OPEN, lambda: conn.send_close(code, reason)):
            self.expect(side, CloseReceived(Close(code, reason)))

    # Moving bytes

    @rule(side=sides, amount=st.integers(min_value=0, max_value=2000), sizes=chunk_sizes)
    def deliver(self, side: int, amount: int, sizes: list[int]) -> None:
        """Deliver some of the pending bytes of a link, in pieces of the given sizes."""
        link = self.links[side]
        data = bytes(link.wire[:amount])
        del link.wire[:amount]
        pos = 0
        for size in itertools.cycle(sizes):
            if pos >= len(data):
                break
            self.receive(side, data[pos : pos + size])
            pos += size

    @rule(side=sides, sizes=chunk_sizes)
    def deliver_everything(self, side: int, sizes: list[int]) -> None:
        """Deliver every pending byte of a link."""
        self.deliver_all(side, sizes)

    @rule(side=sides, position=st.integers(min_value=0), bit=st.integers(0, 7))
    def flip_bit(self, side: int, position: int, bit: int) -> None:
        """Flip one bit of the bytes in flight."""
        wire = self.links[side].wire
        if wire:
            wire[position % len(wire)] ^= 1 << bit
            self.links[side].corrupted = True

    @rule(side=sides, keep=st.integers(min_value=0))
    def truncate(self, side: int, keep: int) -> None:
        """Lose the tail of the bytes in flight; later bytes follow what is left."""
        wire = self.links[side].wire
        if wire:
            del wire[keep % len(wire) :]
            self.links[side].corrupted = True

    @rule(side=sides, position=st.integers(min_value=0), data=st.binary(min_size=1, max_size=20))
    def inject(self, side: int, position: int, data: bytes) -> None:
        """Insert random bytes among the bytes in flight."""
        wire = self.links[side].wire
        at = position % (len(wire) + 1)
        wire[at:at] = data
        self.links[side].corrupted = True

    @rule(side=sides, sizes=chunk_sizes)
    def end_tcp(self, side: int, sizes: list[int]) -> None:
        """The sender of a link closes TCP: its peer reads what is pending, then EOF."""
        link = self.links[side]
        if link.eof:
            return
        self.deliver_all(side, sizes)
        conn = self.conns[1 - side]
        conn.receive_eof()
        link.eof = True
        link.wire.clear()
        assert conn.events() == []
        self.collect(1 - side)
        assert conn.state is State.CLOSED
        assert conn.close_transport

    # Invariants

    @invariant()
    def links_are_consistent(self) -> None:
        """Check each receiver against what its peer sent, and its buffer's size."""
        if not self.conns:
            return
        for side in (CLIENT, SERVER):
            link = self.links[side]
            receiver = self.conns[1 - side]
            for event in link.received:
                assert isinstance(event, Message | Ping | Pong | CloseReceived)
                if isinstance(event, Message):
                    assert len(event.data) <= MAX_SIZE
            if link.corrupted:
                error = receiver.error
                if error is not None:
                    assert error.code in FAILURE_CODES
                    assert receiver.close_transport
                    assert receiver.close_sent is not None
            else:
                assert receiver.error is None
                expected = link.expected_until_close()
                if link.wire:
                    assert link.received == expected[: len(link.received)]
                else:
                    assert link.received == expected
            assert len(receiver._buffer) <= BUFFER_LIMIT

    @invariant()
    def states_are_consistent(self) -> None:
        """Check each engine's state against its close frames, EOF and failure."""
        for conn in self.conns:
            assert (conn.state is State.CLOSED) == conn.eof_received
            if not conn.eof_received:
                assert (conn.state is State.OPEN) == (conn.close_sent is None)
            if conn.error is not None:
                assert conn.close_transport
                assert conn.close_sent is not None
            assert conn.data_to_send() == []

    def teardown(self) -> None:
        """Deliver what is left over intact links, end TCP both ways: both engines close."""
        if not self.conns:
            return
        # Let both sides finish talking over intact wires: no corruption now.
        for _ in range(10):
            moved = self.deliver_all(CLIENT, [64])
            moved = self.deliver_all(SERVER, [64]) or moved
            if not moved:
                break
        else:
            raise AssertionError("engines keep talking")
        self.links_are_consistent()
        for side in (CLIENT, SERVER):
            self.end_tcp(side, [64])
        for conn in self.conns:
            assert conn.state is State.CLOSED
            assert conn.close_transport


EngineMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestEngineMachine = EngineMachine.TestCase
