"""A large binary message in one frame is written into one payload as it arrives.

Its pieces are not kept and joined: once a quarter of the frame is there, the
engine makes the whole payload and writes each later piece into it (unmasked
on the way for a server). Until then pieces are gathered as usual, so a peer
cannot make the engine hold more than four times what it sent.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from tests.protocol.connection_helpers import Peer, feed, header_size
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Fragment, Message, Ping
from tether.protocol.masking import apply_mask

SIZE = 300_000


def payload_of(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def pieces(frame: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``frame`` after its header into pieces of ``sizes``, then one piece of the rest."""
    cut = header_size(frame)
    result = [frame[:cut]]
    for size in sizes:
        result.append(frame[cut : cut + size])
        cut += size
    result.append(frame[cut:])
    return result


@pytest.mark.parametrize(
    "sizes",
    [
        pytest.param([], id="all at once after the header"),
        pytest.param([50_000, 50_000, 100_000], id="a quarter reached on the second piece"),
        pytest.param([100] * 10 + [5000] * 3 + [64_000], id="small and large pieces first"),
        pytest.param([1] * 7 + [80_000], id="a quarter in one piece"),
        pytest.param([SIZE // 4 - 1, 1, 1], id="exactly a quarter"),
    ],
)
def test_large_binary_message_arrives_whole(role: Role, sizes: list[int]) -> None:
    conn, peer = Connection(role), Peer(role)
    payload = payload_of(SIZE)
    for piece in pieces(peer.binary(payload), sizes):
        conn.receive_data(piece)
    assert conn.events() == [Message(payload)]


def test_large_message_between_other_frames(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    payload = payload_of(SIZE)
    wire = peer.binary(b"before") + peer.binary(payload) + peer.ping(b"p") + peer.text("after")
    feed(conn, wire, "random", random.Random(7))
    assert conn.events() == [Message(b"before"), Message(payload), Ping(b"p"), Message("after")]


@pytest.mark.parametrize("size", [65_535, 65_536, 1 << 20])
def test_sizes_around_the_threshold(role: Role, size: int) -> None:
    conn, peer = Connection(role, max_size=None), Peer(role)
    payload = payload_of(size)
    for piece in pieces(peer.binary(payload), [size // 3, 1000]):
        conn.receive_data(piece)
    assert conn.events() == [Message(payload)]


def test_text_and_fragmented_messages_are_gathered_as_before(role: Role) -> None:
    conn, peer = Connection(role), Peer(role)
    text = "é" * (SIZE // 2)
    half = payload_of(SIZE)
    wire = peer.text(text) + peer.binary(half, fin=False) + peer.cont(half)
    feed(conn, wire, "random", random.Random(3))
    assert conn.events() == [Message(text), Message(half + half)]


def test_streaming_keeps_fragments(role: Role) -> None:
    conn, peer = Connection(role, streaming=True), Peer(role)
    payload = payload_of(SIZE)
    wire = peer.binary(payload, fin=False) + peer.cont(b"", fin=True)
    for piece in pieces(wire, [100_000]):
        conn.receive_data(piece)
    fragments = [event for event in conn.events() if isinstance(event, Fragment)]
    assert len(fragments) >= 2
    assert b"".join(event.data for event in fragments if isinstance(event.data, bytes)) == payload


def test_the_budget_counts_a_message_written_into_a_payload(role: Role) -> None:
    # With an extension, the layer above sets a budget; an uncompressed
    # message still takes the payload path and counts against it.
    conn = Connection(role, extensions=[PerMessageDeflate(False, False, 15, 15)])
    peer = Peer(role)
    payload = payload_of(SIZE)
    conn.message_budget = 2
    for piece in pieces(peer.binary(payload), [SIZE // 2]):
        conn.receive_data(piece)
    assert conn.events() == [Message(payload)]
    assert conn.message_budget == 1


def test_a_peer_cannot_make_the_engine_hold_a_whole_frame_early(role: Role) -> None:
    conn = Connection(role, max_size=None)
    size = 64 << 20
    key = b"\x01\x02\x03\x04"

    def wire(data: bytes) -> bytes:
        return data if role is Role.CLIENT else apply_mask(data, key)

    # The start of a frame announcing 64 MiB, masked as a client masks.
    if role is Role.SERVER:
        header = bytes([0x82, 0xFF]) + size.to_bytes(8, "big") + key
    else:
        header = bytes([0x82, 0x7F]) + size.to_bytes(8, "big")
    tracemalloc.start()
    try:
        conn.receive_data(header + wire(payload_of(1000)))
        # 1,000 bytes of it: the engine holds about what came, not the frame.
        held, _ = tracemalloc.get_traced_memory()
        assert held < 100_000
        rest = wire(bytes(size // 4))
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        conn.receive_data(rest)
        # Past a quarter of the frame, it holds the whole payload (the first
        # 1,000 bytes moved into it).
        held, _ = tracemalloc.get_traced_memory()
        assert held - before > size - 10_000
    finally:
        tracemalloc.stop()
    assert conn.events() == []
