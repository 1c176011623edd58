"""Hostile peers: memory and time stay bounded, and the connection gets the right close code."""

from __future__ import annotations

import asyncio

from tests.conformance.conftest import Harness
from tether.protocol.frames import Opcode

KiB = 1 << 10
MiB = 1 << 20


async def test_ping_flood_from_peer_that_never_reads(harness: Harness) -> None:
    # Every ping gets a pong. A peer that floods pings and reads nothing
    # must not grow tether's write buffer without bound: tether stops
    # reading until its pongs drain, and the flood backs up at the peer.
    write_limit = 32 * KiB
    peer = await harness.open(write_limit=write_limit)
    ws = await harness.connection()
    assert ws.transport is not None
    peer.stop_reading()
    burst = peer.frame(Opcode.PING, bytes(125)) * 1000
    bursts = 0
    peak = 0
    while bursts < 160:  # At most 21 MB of pings.
        bursts += 1
        try:
            await asyncio.wait_for(peer.write(burst), 0.25)
        except TimeoutError:
            break  # tether stopped reading: the kernel buffers are full.
        peak = max(peak, ws.transport.get_write_buffer_size())
    peak = max(peak, ws.transport.get_write_buffer_size())
    # Two write limits and the pongs of one read; without the bound this
    # reached the size of the whole flood.
    assert peak <= 2 * write_limit + 512 * KiB, peak
    assert bursts < 160, "tether read the whole flood"
    # Once the peer reads again, everything is answered and the connection works.
    peer.resume_reading()
    async with asyncio.timeout(30):
        await peer.writer.drain()
    await peer.send_message("still there")
    pongs = 0
    while True:
        frame = await peer.next_frame()
        if frame.opcode != Opcode.PONG:
            break
        pongs += 1
    assert pongs == bursts * 1000
    assert frame.opcode == Opcode.TEXT
    assert frame.data == b"still there"
    await harness.finish(peer)


async def test_frame_announcing_2_to_63_bytes(harness: Harness) -> None:
    peer = await harness.open()
    await peer.write(peer.frame(Opcode.BINARY, b"", length=(1 << 63) - 1, length_bytes=8))
    await peer.expect_failure(1009)


async def test_never_ending_fragmented_message(harness: Harness) -> None:
    # Fragments keep coming and the message never ends: max_size stops it.
    peer = await harness.open(max_size=64 * KiB)
    await peer.send(Opcode.BINARY, bytes(1000), fin=False)
    fragment = peer.frame(Opcode.CONT, bytes(1000), fin=False)
    for _ in range(100):  # 100 KB: past max_size.
        await peer.write(fragment)
        if peer.close is not None or peer.write_failed:
            break
    await peer.expect_failure(1009)


async def test_flood_of_empty_fragments(harness: Harness) -> None:
    # Empty fragments add nothing to the size: the fragment cap stops them.
    peer = await harness.open(max_size=16 * KiB)
    await peer.send(Opcode.BINARY, b"", fin=False)
    empty = peer.frame(Opcode.CONT, b"", fin=False) * 1000
    for _ in range(100):  # 100,000 fragments: over the cap of max(1024, max_size / 16).
        await peer.write(empty)
        if peer.close is not None or peer.write_failed:
            break
    await peer.expect_failure(1009)


async def test_many_tiny_fragments_within_limits(harness: Harness) -> None:
    peer = await harness.open()
    message = bytes(range(256)) * 20
    await peer.send_message(message, fragment=1)
    await peer.expect_echo(message)
    await harness.finish(peer)
