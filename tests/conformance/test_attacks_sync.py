"""Hostile peers against the threading server: memory and time stay bounded, close codes are right.

The attacks of test_attacks and test_attacks_more, played against
:func:`tether.sync.serve`: decompression bombs, one big or many small; frames
announcing absurd lengths, messages that never end, floods of empty
fragments or of pings; a peer that never reads while the handler sends, one
that never answers the close, and one that vanishes without a FIN. Memory is
measured with tracemalloc, which traces every thread, the server's included.

The raw peer of :mod:`tests.conformance.peer` is asyncio-based: each case
drives it from an event loop while the server runs in its own threads. The
default loop is enough, since the code under test is the threading server.
Every case has a bystander that exchanges a message before and after the
attack (see :mod:`tests.conformance.servers`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress

import pytest

import tether.sync
from tests.conformance.peer import DeflateParams
from tests.conformance.servers import (
    DEADLINE,
    Tracing,
    check_keepalive_failure,
    open_peer,
    sync_echo,
    sync_server_with_bystander,
)
from tether.exceptions import ConnectionClosed, ConnectionClosedError
from tether.protocol.frames import RSV1, Opcode

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

KiB = 1 << 10
MiB = 1 << 20


async def wait_event(event: threading.Event) -> None:
    """Wait for ``event`` without blocking the loop; fail after :data:`DEADLINE`."""
    assert await asyncio.to_thread(event.wait, DEADLINE), "timed out"


async def wait_until(ready: Callable[[], bool]) -> bool:
    """Poll ``ready`` until it is true; return ``False`` if it isn't after :data:`DEADLINE`."""
    with suppress(TimeoutError):
        async with asyncio.timeout(DEADLINE):
            while not ready():
                await asyncio.sleep(0.01)
            return True
    return False


# Decompression bombs


async def test_decompression_bomb_in_one_message() -> None:
    # 16 MiB of zeros compress to 16 KiB: tether must stop inflating at
    # max_size, not inflate everything and then compare.
    max_size = 64 * KiB
    options = {"compression": "deflate", "max_size": max_size}
    with sync_server_with_bystander(sync_echo, **options) as (_, port):
        peer = await open_peer(port, DeflateParams().header())
        try:
            bomb = b"".join(peer.message_frames(bytes(16 * MiB), compress=True))
            assert len(bomb) < 32 * KiB, len(bomb)
            with Tracing() as tracing:
                await peer.write(bomb)
                await peer.expect_failure(1009)
            # max_size inflated, zlib's window and a few reads: 0.5 MB. Inflating
            # the whole bomb would take 16 MiB.
            assert tracing.peak < 1 * MiB, tracing.peak
        finally:
            await peer.stop()


async def test_many_small_decompression_bombs() -> None:
    # Each message is 60,000 zero bytes compressed to about 60: under
    # max_size, so each one is legal, but 2,000 of them inflate to 120 MB and
    # one read of 64 KiB holds a thousand. The handler reads nothing at
    # first: the reader thread inflates no more than the queue holds and
    # keeps the rest of its read compressed, then stops reading.
    max_size = 64 * KiB
    max_queue = 4
    size = 60_000
    count = 2000
    release = threading.Event()
    done = threading.Event()
    received: list[int] = []
    connections: list[tether.sync.ServerConnection] = []

    def handler(ws: tether.sync.ServerConnection) -> None:
        connections.append(ws)
        try:
            release.wait(DEADLINE)
            for message in ws:
                assert message == bytes(size)
                received.append(len(message))
        finally:
            done.set()

    options = {"compression": "deflate", "max_size": max_size, "max_queue": max_queue}
    with sync_server_with_bystander(handler, **options) as (_, port):
        peer = await open_peer(port, DeflateParams(client_no_context_takeover=True).header())
        try:
            assert peer.deflate is not None
            # Without context takeover every message compresses the same.
            payload = peer.deflate.compress(bytes(size))
            assert len(payload) * 500 < size, len(payload)
            bombs = peer.frame(Opcode.BINARY, payload, rsv=RSV1) * count
            with Tracing() as tracing:
                async with asyncio.timeout(DEADLINE):
                    await peer.write(bombs)
                # The queue fills, and the rest of the read waits compressed.
                held_back = await wait_until(
                    lambda: bool(connections) and connections[0].protocol.held_back
                )
            # The queue's max_queue * max_size is 256 KiB, one read 64 KiB,
            # the bombs at the peer 140 KB.
            assert tracing.peak < 1 * MiB, tracing.peak
            assert held_back, "the reader thread held nothing back"
            # Every message is delivered, unchanged, once the handler reads.
            release.set()
            await peer.send_close(1000)
            await peer.expect_close(1000)
            await wait_event(done)
            assert len(received) == count
        finally:
            await peer.stop()


# Lengths and fragments


async def test_frame_announcing_2_to_63_bytes() -> None:
    with sync_server_with_bystander(sync_echo) as (_, port):
        peer = await open_peer(port)
        try:
            with Tracing() as tracing:
                await peer.write(peer.frame(Opcode.BINARY, b"", length=(1 << 63) - 1))
                await peer.expect_failure(1009)
            # Nothing is allocated for the announced length.
            assert tracing.peak < 1 * MiB, tracing.peak
        finally:
            await peer.stop()


async def test_never_ending_fragmented_message() -> None:
    # Fragments keep coming and the message never ends: max_size stops it.
    max_size = 64 * KiB
    with sync_server_with_bystander(sync_echo, max_size=max_size) as (_, port):
        peer = await open_peer(port)
        try:
            with Tracing() as tracing:
                await peer.send(Opcode.BINARY, bytes(1000), fin=False)
                fragment = peer.frame(Opcode.CONT, bytes(1000), fin=False)
                for _ in range(100):  # 100 KB: past max_size.
                    await peer.write(fragment)
                    if peer.close is not None or peer.write_failed:
                        break
                await peer.expect_failure(1009)
            # max_size of fragments at most, and a few reads.
            assert tracing.peak < 1 * MiB, tracing.peak
        finally:
            await peer.stop()


async def test_flood_of_empty_fragments() -> None:
    # Empty fragments add nothing to the size: the fragment cap stops them.
    with sync_server_with_bystander(sync_echo, max_size=16 * KiB) as (_, port):
        peer = await open_peer(port)
        try:
            empty = peer.frame(Opcode.CONT, b"", fin=False) * 1000
            with Tracing() as tracing:
                await peer.send(Opcode.BINARY, b"", fin=False)
                # 100,000 fragments: over the cap of max(1024, max_size / 16).
                for _ in range(100):
                    await peer.write(empty)
                    if peer.close is not None or peer.write_failed:
                        break
                await peer.expect_failure(1009)
            assert tracing.peak < 1 * MiB, tracing.peak
        finally:
            await peer.stop()


# Peers that do not read


async def test_ping_flood_from_peer_that_never_reads() -> None:
    # Every ping gets a pong. The peer floods pings and reads nothing, while
    # the handler's write of a large message is stuck for the same reason:
    # the reader thread can't write the pongs itself, so they pile up in
    # memory. Past REPLY_LIMIT it stops reading until the write goes
    # through, and the flood backs up at the peer.
    large = bytes(32 * MiB)
    sending = threading.Event()

    def handler(ws: tether.sync.ServerConnection) -> None:
        with suppress(ConnectionClosed):
            assert ws.recv(timeout=DEADLINE) == "go"
            sending.set()
            ws.send(large)
        sync_echo(ws)

    with sync_server_with_bystander(handler) as (_, port):
        peer = await open_peer(port)
        try:
            peer.stop_reading()
            await peer.send_message("go")
            await wait_event(sending)
            # Let the write fill the kernel buffers and get stuck.
            await asyncio.sleep(0.2)
            burst = peer.frame(Opcode.PING, bytes(125)) * 1000
            bursts = 0
            with Tracing() as tracing:
                while bursts < 160:  # At most 21 MB of pings.
                    bursts += 1
                    try:
                        await asyncio.wait_for(peer.write(burst), 0.25)
                    except TimeoutError:
                        break  # tether stopped reading: the kernel buffers are full.
            assert bursts < 160, "tether read the whole flood"
            # REPLY_LIMIT and one read's pongs at the server, one burst at the
            # peer; without the limit, the pongs of the whole flood.
            assert tracing.peak < 1 * MiB, tracing.peak
            # Once the peer reads again, every ping is answered and the
            # connection works.
            peer.resume_reading()
            async with asyncio.timeout(DEADLINE):
                await peer.writer.drain()
            assert await peer.next_message() == large
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
            await peer.send_close(1000)
            await peer.expect_close(1000)
            await peer.expect_eof()
        finally:
            await peer.stop()


@pytest.mark.parametrize("end", ["peer-drops-tcp", "close-timeout"])
async def test_send_blocks_while_peer_never_reads(end: str) -> None:
    # The handler sends 1 MiB messages to a peer that reads none: once the
    # kernel buffers are full, send blocks instead of queueing the rest in
    # memory. It unblocks with ConnectionClosed when TCP drops, or when
    # close() gives up on the peer after close_timeout.
    count = 64
    message = bytes(1 * MiB)
    sent: list[int] = []
    outcome: list[BaseException] = []
    opened = threading.Event()
    done = threading.Event()
    connections: list[tether.sync.ServerConnection] = []

    def handler(ws: tether.sync.ServerConnection) -> None:
        connections.append(ws)
        opened.set()
        try:
            for index in range(count):
                ws.send(message)
                sent.append(index)
        except ConnectionClosed as exc:
            outcome.append(exc)
        finally:
            done.set()

    with sync_server_with_bystander(handler, close_timeout=0.3) as (_, port):
        peer = await open_peer(port)
        try:
            peer.stop_reading()
            with Tracing() as tracing:
                await wait_event(opened)
                await wait_stalled(lambda: len(sent))
            assert not done.is_set(), outcome
            assert len(sent) < count, "send never blocked"
            # The message being sent and its frame; none queued behind it.
            assert tracing.peak < 3 * len(message), tracing.peak
            if end == "peer-drops-tcp":
                peer.abort()
            else:
                # close() can't even write its close frame: close_timeout ends it.
                async with asyncio.timeout(DEADLINE):
                    await asyncio.to_thread(connections[0].close)
            await wait_event(done)
            (exc,) = outcome
            assert isinstance(exc, ConnectionClosedError), exc
            assert exc.rcvd is None, exc
        finally:
            await peer.stop()


async def wait_stalled(progress: Callable[[], int], still: float = 0.3) -> None:
    """Wait until ``progress()`` stops changing for ``still`` seconds; fail after DEADLINE."""
    async with asyncio.timeout(DEADLINE):
        last = progress()
        while True:
            await asyncio.sleep(still)
            now = progress()
            if now == last:
                return
            last = now


# Peers that do not answer


async def test_peer_never_answers_the_close() -> None:
    # The handler closes; the peer reads the close frame and answers nothing.
    # close_timeout ends the wait, and the server closes TCP.
    connections: list[tether.sync.ServerConnection] = []
    returned = threading.Event()

    def handler(ws: tether.sync.ServerConnection) -> None:
        connections.append(ws)
        ws.close()
        returned.set()

    with sync_server_with_bystander(handler, close_timeout=0.3) as (_, port):
        peer = await open_peer(port)
        try:
            await peer.expect_close(1000)
            await peer.expect_eof(DEADLINE)
            await wait_event(returned)
            (ws,) = connections
            closed = ws.protocol.close_exc()
            assert isinstance(closed, ConnectionClosedError), closed
            assert closed.sent is not None, closed
            assert closed.sent.code == 1000, closed
            assert closed.rcvd is None, closed
            assert ws.close_code == 1006
        finally:
            await peer.stop()


async def test_half_open_peer_closed_by_keepalive() -> None:
    # The peer vanishes without a FIN: it reads nothing and answers no ping.
    # Keepalive notices and fails the connection with 1011; the peer never
    # answers the close either, so close_timeout ends TCP.
    connections: list[tether.sync.ServerConnection] = []
    opened = threading.Event()

    def handler(ws: tether.sync.ServerConnection) -> None:
        connections.append(ws)
        opened.set()
        sync_echo(ws)

    # The bystander's pongs must make it in time on a loaded machine too.
    options = {"ping_interval": 0.1, "ping_timeout": 0.5, "close_timeout": 0.2}
    with sync_server_with_bystander(handler, **options) as (server, port):
        peer = await open_peer(port)
        try:
            peer.stop_reading()
            await wait_event(opened)
            (ws,) = connections
            assert await asyncio.to_thread(ws.wait_closed, DEADLINE)
            check_keepalive_failure(ws)
            assert ws not in server.connections
            # The bystander answered every ping meanwhile: it is still open.
            assert len(server.connections) == 1
        finally:
            await peer.stop()
