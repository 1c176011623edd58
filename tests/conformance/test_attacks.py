"""Hostile peers: memory and time stay bounded, and the connection gets the right close code."""

from __future__ import annotations

import asyncio

from tests.conformance.attacks import KiB, endless_message, expect_pongs, flood_pings
from tests.conformance.conftest import Harness
from tether.protocol.frames import Opcode


async def test_ping_flood_from_peer_that_never_reads(harness: Harness) -> None:
    # Every ping gets a pong. A peer that floods pings and reads nothing
    # must not grow tether's write buffer without bound: tether stops
    # reading until its pongs drain, and the flood backs up at the peer.
    write_limit = 32 * KiB
    peer = await harness.open(write_limit=write_limit)
    buffered = harness.write_buffer(await harness.connection())
    peer.stop_reading()
    sizes = [0]
    bursts = await flood_pings(peer, lambda: sizes.append(buffered()))
    peak = max(*sizes, buffered())
    # Two write limits and the pongs of one read; without the bound this
    # reached the size of the whole flood.
    assert peak <= 2 * write_limit + 512 * KiB, peak
    # Once the peer reads again, everything is answered and the connection works.
    peer.resume_reading()
    async with asyncio.timeout(30):
        await peer.writer.drain()
    await expect_pongs(peer, bursts * 1000)
    await harness.finish(peer)


async def test_frame_announcing_2_to_63_bytes(harness: Harness) -> None:
    peer = await harness.open()
    await peer.write(peer.frame(Opcode.BINARY, b"", length=(1 << 63) - 1, length_bytes=8))
    await peer.expect_failure(1009)


async def test_never_ending_fragmented_message(harness: Harness) -> None:
    # Fragments keep coming and the message never ends: max_size stops it.
    peer = await harness.open(max_size=64 * KiB)
    await endless_message(peer, bytes(1000))  # 100 KB at most: past max_size.


async def test_flood_of_empty_fragments(harness: Harness) -> None:
    # Empty fragments add nothing to the size: the fragment cap stops them.
    peer = await harness.open(max_size=16 * KiB)
    # 100,000 fragments at most: over the cap of max(1024, max_size / 16).
    await endless_message(peer, b"", per_write=1000)


async def test_many_tiny_fragments_within_limits(harness: Harness) -> None:
    peer = await harness.open()
    message = bytes(range(256)) * 20
    await peer.send_message(message, fragment=1)
    await peer.expect_echo(message)
    await harness.finish(peer)
