"""More hostile peers against the asyncio server: decompression bombs, a peer that vanishes.

As in test_attacks_handshake, a bystander client connects to the same server
before the attack and exchanges a message after it (see
:mod:`tests.conformance.servers`). The cases that the threading server
passes the same way are written once, in :mod:`tests.conformance.attacks`,
and test_attacks_sync plays them against it.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from contextlib import suppress

from tests.conformance.attacks import (
    NO_CONTEXT_TAKEOVER,
    SMALL_BOMB,
    SMALL_BOMBS_OPTIONS,
    MiB,
    decompression_bomb_in_one_message,
    half_open_connection_closed_by_keepalive,
    small_bombs,
)
from tests.conformance.conftest import Harness
from tests.conformance.servers import DEADLINE, attack, check_unanswered_close
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConnectionClosed


async def test_decompression_bomb_in_one_message() -> None:
    await decompression_bomb_in_one_message("asyncio")


async def test_many_small_decompression_bombs() -> None:
    # Each message is 60,000 zero bytes compressed to about 60: under
    # max_size, so each one is legal, but the stream inflates to 360 MB. The
    # handler reads nothing at first: the queue fills, tether stops reading,
    # and the rest waits, compressed, in the kernel.
    burst = 3000
    count = 2 * burst
    release = asyncio.Event()
    received: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        async with asyncio.timeout(DEADLINE):
            await release.wait()
        with suppress(ConnectionClosed):
            async for message in ws:
                assert message == bytes(SMALL_BOMB)
                received.append(len(message))

    async with attack(handler, extensions=NO_CONTEXT_TAKEOVER, **SMALL_BOMBS_OPTIONS) as (_, peer):
        bombs = small_bombs(peer, burst)
        tracemalloc.start()
        try:
            sent = 0
            while sent < count:
                # The whole burst goes to the transport before the wait.
                sent += burst
                try:
                    await asyncio.wait_for(peer.write(bombs), 0.5)
                except TimeoutError:
                    break  # tether stopped reading: the kernel buffers are full.
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # tether inflates no more messages than its queue holds: the rest of
        # a read waits compressed in the engine (the message budget), then in
        # the kernel. The queue's max_queue * max_size is 256 KiB; what else
        # is traced is the peer's own buffers, about 1 MiB.
        assert peak < 4 * MiB, peak
        # Every message is delivered, unchanged, once the handler reads.
        release.set()
        async with asyncio.timeout(DEADLINE):
            await peer.writer.drain()
        await peer.send_close(1000)
        # The close comes after the handler has read every message: 360 MB
        # to inflate, seconds of CPU on a busy machine, so the wait is the
        # case's DEADLINE rather than the peer's wait for one frame.
        await peer.expect_close(1000, DEADLINE)
        assert len(received) == sent


async def test_half_open_connection_closed_by_keepalive() -> None:
    await half_open_connection_closed_by_keepalive("asyncio")


async def test_half_open_server_closed_by_client_keepalive(harness: Harness) -> None:
    # The same against tether in both roles, through the shared harness.
    peer = await harness.open(ping_interval=0.1, ping_timeout=0.1, close_timeout=0.2)
    peer.stop_reading()
    ws = await harness.connection()
    async with asyncio.timeout(DEADLINE):
        await ws.wait_closed()
    check_unanswered_close(ws, 1011)
