"""Attacks after the handshake, written once and played against each of tether's servers.

Where the asyncio server and the threading server defend the same way, the
whole case is here, taking the server's kind: test_attacks_more runs it
against the asyncio server, on each event loop, and test_attacks_sync
against the threading server, on the default loop only (the code under test
runs in the server's threads; the loop only drives the raw peer). Where
their defences differ, the cases differ too, and share the attack's steps
from here: the endless message, the ping flood, the small bombs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.conformance.peer import DeflateParams, Peer
from tests.conformance.servers import (
    ServerKind,
    Tracing,
    check_unanswered_close,
    echo_attack,
)
from tether.protocol.frames import RSV1, Opcode

__all__ = [
    "FLOOD_BURSTS",
    "NO_CONTEXT_TAKEOVER",
    "SMALL_BOMB",
    "SMALL_BOMBS_OPTIONS",
    "KiB",
    "MiB",
    "decompression_bomb_in_one_message",
    "endless_message",
    "expect_pongs",
    "flood_pings",
    "half_open_connection_closed_by_keepalive",
    "small_bombs",
]

KiB = 1 << 10
MiB = 1 << 20


# Whole cases


async def decompression_bomb_in_one_message(kind: ServerKind) -> None:
    """16 MiB of zeros compress to 16 KiB: tether must stop inflating at max_size.

    Not inflate everything and then compare. test_deflate checks the close
    code in both roles; this checks the memory.
    """
    options: dict[str, Any] = {"compression": "deflate", "max_size": 64 * KiB}
    async with echo_attack(kind, extensions=DeflateParams().header(), **options) as target:
        peer = target.peer
        bomb = b"".join(peer.message_frames(bytes(16 * MiB), compress=True))
        assert len(bomb) < 32 * KiB, len(bomb)
        with Tracing() as tracing:
            await peer.write(bomb)
            await peer.expect_failure(1009)
        # max_size inflated, zlib's window and a few reads: 0.5 MB. Inflating
        # the whole bomb would take 16 MiB.
        assert tracing.peak < 1 * MiB, tracing.peak


async def half_open_connection_closed_by_keepalive(kind: ServerKind) -> None:
    """The peer vanishes without a FIN: it reads nothing and answers no ping.

    The server's keepalive notices and fails the connection with 1011; the
    peer never answers the close either, so close_timeout ends TCP.
    """
    # ping_timeout gives the bystander's pongs time to make it on a loaded
    # machine too: the threading server's pings and pongs go through threads.
    options: dict[str, Any] = {"ping_interval": 0.1, "ping_timeout": 0.5, "close_timeout": 0.2}
    async with echo_attack(kind, **options) as target:
        target.peer.stop_reading()
        ws = await target.connection()
        await target.wait_closed(ws)
        check_unanswered_close(ws, 1011)
        assert ws not in target.server.connections
        # The bystander answered every ping meanwhile: it is still open.
        assert len(target.server.connections) == 1


# Steps of the cases that differ


async def endless_message(peer: Peer, fragment: bytes, per_write: int = 1) -> None:
    """Start a message, then send ``fragment``s, ``per_write`` at a time, until tether fails it.

    A hundred writes at most; tether must fail the connection with 1009
    (message too big) long before.
    """
    await peer.send(Opcode.BINARY, fragment, fin=False)
    fragments = peer.frame(Opcode.CONT, fragment, fin=False) * per_write
    for _ in range(100):
        await peer.write(fragments)
        if peer.close is not None or peer.write_failed:
            break
    await peer.expect_failure(1009)


FLOOD_BURSTS = 160
"""A bound on the ping flood, in bursts of 1,000 pings: 21 MB in all."""


async def flood_pings(peer: Peer, after_burst: Callable[[], object] | None = None) -> int:
    """Write bursts of 1,000 pings until tether stops reading; return the bursts written.

    The caller has stopped reading: tether's pongs back up, and it must stop
    reading in turn before the whole flood is in. A burst that takes longer
    than 0.25 s to write means the kernel buffers are full. ``after_burst``
    runs after each burst written in full, to measure what piles up.
    """
    burst = peer.frame(Opcode.PING, bytes(125)) * 1000
    bursts = 0
    while bursts < FLOOD_BURSTS:
        bursts += 1
        try:
            await asyncio.wait_for(peer.write(burst), 0.25)
        except TimeoutError:
            break
        if after_burst is not None:
            after_burst()
    assert bursts < FLOOD_BURSTS, "tether read the whole flood"
    return bursts


async def expect_pongs(peer: Peer, count: int) -> None:
    """Send a text message; check that exactly ``count`` pongs come before its echo."""
    await peer.send_message("still there")
    pongs = 0
    while True:
        frame = await peer.next_frame()
        if frame.opcode != Opcode.PONG:
            break
        pongs += 1
    assert pongs == count
    assert frame.opcode == Opcode.TEXT
    assert frame.data == b"still there"


SMALL_BOMB = 60_000
"""Zero bytes in each small bomb: about 60 compressed, each message legal."""

SMALL_BOMBS_OPTIONS: dict[str, Any] = {
    "compression": "deflate",
    "max_size": 64 * KiB,
    "max_queue": 4,
}
"""The server's options against the small bombs: its queue holds
max_queue * max_size, 256 KiB, of inflated messages at most."""

NO_CONTEXT_TAKEOVER = DeflateParams(client_no_context_takeover=True).header()
"""The peer's offer for the small bombs: every message compresses the same."""


def small_bombs(peer: Peer, count: int) -> bytes:
    """``count`` messages of :data:`SMALL_BOMB` zero bytes, compressed, as frames."""
    assert peer.deflate is not None
    assert peer.deflate.local_reset
    payload = peer.deflate.compress(bytes(SMALL_BOMB))
    assert len(payload) * 500 < SMALL_BOMB, len(payload)
    return peer.frame(Opcode.BINARY, payload, rsv=RSV1) * count
