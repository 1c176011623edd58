"""Every connection of a thread reads into one shared buffer (see tether.asyncio.connection)."""

from __future__ import annotations

import asyncio
import random

import tether
from tether.asyncio.connection import READ_BUFFER_SIZE
from tether.asyncio.server import Server, ServerConnection
from tether.protocol.events import Fragment, Message

from .conftest import ServerFactory, uri_of
from .raw_peer import raw_client


async def test_connections_of_a_thread_share_one_read_buffer(echo_server: Server) -> None:
    async with (
        tether.connect(uri_of(echo_server)) as first,
        tether.connect(uri_of(echo_server)) as second,
    ):
        assert isinstance(first, asyncio.BufferedProtocol)
        buffer = first.get_buffer(-1)
        assert len(buffer) == READ_BUFFER_SIZE
        assert second.get_buffer(65536) is buffer
        assert all(conn.get_buffer(-1) is buffer for conn in echo_server.connections)


async def test_reads_of_several_connections_interleave_safely(
    start_server: ServerFactory,
) -> None:
    """Messages trickle in on two connections at once: each gets its own bytes back."""
    received: dict[int, bytes] = {}

    async def keep(ws: ServerConnection) -> None:
        message = await ws.recv()
        assert isinstance(message, bytes)
        received[message[0]] = message
        await ws.send(message)

    server = await start_server(keep)
    port = next(iter(server.sockets)).getsockname()[1]
    peers = [await raw_client("127.0.0.1", port) for _ in range(2)]
    payloads = [bytes([tag]) + random.Random(tag).randbytes(150_000) for tag in (1, 2)]
    wires = []
    for peer, payload in zip(peers, payloads, strict=True):
        # Fragments and a ping in the middle: the server keeps partial state
        # of each connection between reads.
        peer.engine.send_binary(payload[:70_000], fin=False)
        peer.engine.send_ping(b"between")
        peer.engine.send_continuation(payload[70_000:], fin=True)
        wires.append(b"".join(peer.engine.data_to_send()))
    step = 997
    for start in range(0, max(map(len, wires)), step):
        for peer, wire in zip(peers, wires, strict=True):
            if start < len(wire):
                await peer.write(wire[start : start + step])
        # Let the server read one connection's bytes, then the other's.
        await asyncio.sleep(0)
    for peer, payload in zip(peers, payloads, strict=True):
        pieces: list[bytes] = []
        while True:
            event = await peer.next_event()
            if isinstance(event, Message):
                assert event.data == payload
                break
            if isinstance(event, Fragment):
                assert isinstance(event.data, bytes)
                pieces.append(event.data)
                if event.last:
                    break
        if pieces:
            assert b"".join(pieces) == payload
        await peer.close()
    assert received == {1: payloads[0], 2: payloads[1]}
