"""The lean client of the c100k benchmark against a real tether server.

It must stay a WebSocket client: the handshake through tether's engine (with
permessage-deflate negotiated when offered), every text message read once,
the server's keepalive pings answered, and anything it does not read (here a
fragmented message) failing the connection rather than passing unnoticed.
"""

from __future__ import annotations

import asyncio

from bench.c100k_lean import LeanClient

import tether

TIMEOUT = 5


async def open_lean(
    server: tether.Server, received: list[str], deflate: bool = False
) -> tuple[asyncio.Transport, LeanClient]:
    loop = asyncio.get_running_loop()
    opened = loop.create_future()
    port = next(iter(server.sockets)).getsockname()[1]
    transport, client = await loop.create_connection(
        lambda: LeanClient(f"ws://127.0.0.1:{port}/", deflate, received.append, opened),
        "127.0.0.1",
        port,
    )
    async with asyncio.timeout(TIMEOUT):
        await opened
        while not server.connections:
            await asyncio.sleep(0.01)
    return transport, client


async def hold(ws: tether.ServerConnection) -> None:
    await ws.wait_closed()


async def test_messages_and_pings() -> None:
    received: list[str] = []
    async with tether.serve(hold, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.5) as server:
        transport, client = await open_lean(server, received, deflate=True)
        (conn,) = server.connections
        # permessage-deflate was negotiated, and broadcasts still come plain.
        assert conn.protocol.extensions
        # Several keepalive rounds: each pong reschedules the next ping.
        await asyncio.sleep(0.4)
        assert conn.latency > 0
        big = "é" * 40_000
        for text in ("one", big, "three"):
            assert tether.broadcast(server.connections, text) == 1
        async with asyncio.timeout(TIMEOUT):
            while len(received) < 3:
                await asyncio.sleep(0.01)
        assert received == ["one", big, "three"]
        assert client.failed is None
        assert conn.protocol.state is tether.State.OPEN
        transport.abort()


async def test_a_fragmented_message_fails_the_connection() -> None:
    received: list[str] = []
    async with tether.serve(hold, "127.0.0.1", 0) as server:
        transport, client = await open_lean(server, received)
        (conn,) = server.connections
        await conn.send(["frag", "ment"])
        async with asyncio.timeout(TIMEOUT):
            while not transport.is_closing():
                await asyncio.sleep(0.01)
        assert client.failed is not None
        assert received == []
