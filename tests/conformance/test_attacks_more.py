"""More hostile peers: decompression bombs, and a peer that vanishes without a FIN.

As in test_attacks_handshake, a bystander client connects to the same server
before the attack and exchanges a message after it (see
:mod:`tests.conformance.servers`).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from contextlib import suppress

from tests.conformance.conftest import Harness
from tests.conformance.peer import DeflateParams
from tests.conformance.servers import (
    DEADLINE,
    Tracing,
    check_keepalive_failure,
    echo,
    open_peer,
    server_with_bystander,
)
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConnectionClosed
from tether.protocol.frames import RSV1, Opcode

KiB = 1 << 10
MiB = 1 << 20


async def test_decompression_bomb_in_one_message() -> None:
    # test_deflate checks the close code in both roles; this checks the
    # memory: 16 MiB of zeros compress to 16 KiB, and tether must stop
    # inflating at max_size, not inflate everything and then compare.
    max_size = 64 * KiB
    options = {"compression": "deflate", "max_size": max_size}
    async with server_with_bystander(echo, **options) as (_, port):
        peer = await open_peer(port, DeflateParams().header())
        try:
            bomb = b"".join(peer.message_frames(bytes(16 * MiB), compress=True))
            assert len(bomb) < 32 * KiB, len(bomb)
            with Tracing() as tracing:
                await peer.write(bomb)
                await peer.expect_failure(1009)
            # max_size inflated, zlib's window and a few reads.
            assert tracing.peak < 1 * MiB, tracing.peak
        finally:
            # tether waits for the peer to close TCP after failing: don't
            # make it wait for close_timeout.
            await peer.stop()


async def test_many_small_decompression_bombs() -> None:
    # Each message is 60,000 zero bytes compressed to about 60: under
    # max_size, so each one is legal, but the stream inflates to 360 MB. The
    # handler reads nothing at first: the queue fills, tether stops reading,
    # and the rest waits, compressed, in the kernel.
    max_size = 64 * KiB
    max_queue = 4
    size = 60_000
    burst = 3000
    count = 2 * burst
    release = asyncio.Event()
    received: list[int] = []

    async def handler(ws: ServerConnection) -> None:
        async with asyncio.timeout(DEADLINE):
            await release.wait()
        with suppress(ConnectionClosed):
            async for message in ws:
                assert message == bytes(size)
                received.append(len(message))

    options = {"compression": "deflate", "max_size": max_size, "max_queue": max_queue}
    async with server_with_bystander(handler, **options) as (_, port):
        offer = DeflateParams(client_no_context_takeover=True).header()
        peer = await open_peer(port, offer)
        assert peer.deflate is not None
        assert peer.deflate.local_reset
        # Without context takeover every message compresses the same.
        payload = peer.deflate.compress(bytes(size))
        assert len(payload) * 500 < size, len(payload)
        bombs = b"".join(peer.frame(Opcode.BINARY, payload, rsv=RSV1) for _ in range(burst))
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
        await peer.expect_close(1000)
        assert len(received) == sent


async def test_half_open_connection_closed_by_keepalive() -> None:
    # The peer vanishes without a FIN: it reads nothing and answers no ping.
    # The server's keepalive notices and fails the connection with 1011;
    # the peer never answers the close either, so close_timeout ends TCP.
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        with suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    options = {"ping_interval": 0.1, "ping_timeout": 0.1, "close_timeout": 0.2}
    async with server_with_bystander(handler, **options) as (server, port):
        peer = await open_peer(port)
        peer.stop_reading()
        async with asyncio.timeout(DEADLINE):
            while not connections:
                await asyncio.sleep(0.01)
            ws = connections[0]
            await ws.wait_closed()
        check_keepalive_failure(ws)
        assert ws not in server.connections
        # The bystander answered every ping meanwhile: it is still open.
        assert len(server.connections) == 1
        peer.abort()


async def test_half_open_server_closed_by_client_keepalive(harness: Harness) -> None:
    # The same against tether in both roles, through the shared harness.
    peer = await harness.open(ping_interval=0.1, ping_timeout=0.1, close_timeout=0.2)
    peer.stop_reading()
    ws = await harness.connection()
    async with asyncio.timeout(DEADLINE):
        await ws.wait_closed()
    check_keepalive_failure(ws)
