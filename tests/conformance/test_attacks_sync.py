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
attack (see :mod:`tests.conformance.servers`). The cases the asyncio server
passes the same way are written once, in :mod:`tests.conformance.attacks`;
the others share the attack's steps from there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress

import pytest

import tether.sync
from tests.conformance.attacks import (
    NO_CONTEXT_TAKEOVER,
    SMALL_BOMB,
    SMALL_BOMBS_OPTIONS,
    KiB,
    MiB,
    decompression_bomb_in_one_message,
    endless_message,
    expect_pongs,
    flood_pings,
    half_open_connection_closed_by_keepalive,
    small_bombs,
)
from tests.conformance.servers import (
    DEADLINE,
    Tracing,
    check_unanswered_close,
    sync_attack,
    sync_echo,
)
from tether.exceptions import ConnectionClosed, ConnectionClosedError
from tether.protocol.frames import Opcode

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])


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
    await decompression_bomb_in_one_message("threading")


async def test_many_small_decompression_bombs() -> None:
    # Each message is 60,000 zero bytes compressed to about 60: under
    # max_size, so each one is legal, but 2,000 of them inflate to 120 MB and
    # one read of 64 KiB holds a thousand. The handler reads nothing at
    # first: the reader thread inflates no more than the queue holds and
    # keeps the rest of its read compressed, then stops reading.
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
                assert message == bytes(SMALL_BOMB)
                received.append(len(message))
        finally:
            done.set()

    async with sync_attack(handler, extensions=NO_CONTEXT_TAKEOVER, **SMALL_BOMBS_OPTIONS) as (
        _,
        peer,
    ):
        bombs = small_bombs(peer, count)
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
        # The close comes after the handler has read every message (120 MB
        # to inflate): the case's DEADLINE, not the peer's wait for a frame.
        await peer.expect_close(1000, DEADLINE)
        # The server ends TCP first and reads on until the peer's end, which
        # ends the handler's iteration: the peer sends it, as a client does.
        await peer.expect_eof(DEADLINE)
        peer.close_tcp()
        await wait_event(done)
        assert len(received) == count


# Lengths and fragments


async def test_frame_announcing_2_to_63_bytes() -> None:
    async with sync_attack(sync_echo) as (_, peer):
        with Tracing() as tracing:
            await peer.write(peer.frame(Opcode.BINARY, b"", length=(1 << 63) - 1))
            await peer.expect_failure(1009)
        # Nothing is allocated for the announced length.
        assert tracing.peak < 1 * MiB, tracing.peak


async def test_never_ending_fragmented_message() -> None:
    # Fragments keep coming and the message never ends: max_size stops it.
    async with sync_attack(sync_echo, max_size=64 * KiB) as (_, peer):
        with Tracing() as tracing:
            await endless_message(peer, bytes(1000))  # 100 KB at most: past max_size.
        # max_size of fragments at most, and a few reads.
        assert tracing.peak < 1 * MiB, tracing.peak


async def test_flood_of_empty_fragments() -> None:
    # Empty fragments add nothing to the size: the fragment cap stops them.
    async with sync_attack(sync_echo, max_size=16 * KiB) as (_, peer):
        with Tracing() as tracing:
            # 100,000 fragments at most: over the cap of max(1024, max_size / 16).
            await endless_message(peer, b"", per_write=1000)
        assert tracing.peak < 1 * MiB, tracing.peak


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

    async with sync_attack(handler) as (_, peer):
        peer.stop_reading()
        await peer.send_message("go")
        await wait_event(sending)
        # Let the write fill the kernel buffers and get stuck.
        await asyncio.sleep(0.2)
        with Tracing() as tracing:
            bursts = await flood_pings(peer)
        # REPLY_LIMIT and one read's pongs at the server, one burst at the
        # peer; without the limit, the pongs of the whole flood.
        assert tracing.peak < 1 * MiB, tracing.peak
        # Once the peer reads again, every ping is answered and the
        # connection works.
        peer.resume_reading()
        async with asyncio.timeout(DEADLINE):
            await peer.writer.drain()
        assert await peer.next_message() == large
        await expect_pongs(peer, bursts * 1000)
        await peer.send_close(1000)
        await peer.expect_close(1000)
        await peer.expect_eof()


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

    async with sync_attack(handler, close_timeout=0.3) as (_, peer):
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

    async with sync_attack(handler, close_timeout=0.3) as (_, peer):
        await peer.expect_close(1000)
        await peer.expect_eof(DEADLINE)
        await wait_event(returned)
        (ws,) = connections
        check_unanswered_close(ws, 1000)


async def test_half_open_peer_closed_by_keepalive() -> None:
    await half_open_connection_closed_by_keepalive("threading")
