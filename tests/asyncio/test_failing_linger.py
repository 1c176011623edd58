"""Failing on the peer's data must not destroy the close frame with a TCP reset.

Found with websocket-client: after a message over ``max_size``, it got
ECONNRESET instead of the 1009 close frame, because the server closed its
socket with the rest of the message unread and the kernel answered with a RST.
"""

from __future__ import annotations

import asyncio

from tether.asyncio.server import ServerConnection
from tether.protocol.events import CloseReceived

from .conftest import ServerFactory
from .raw_peer import raw_client


async def test_peer_sending_too_much_reads_the_1009_close_frame(
    start_server: ServerFactory,
) -> None:
    closed: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closed.set_result(ws)

    server = await start_server(handler, max_size=1024, compression=None)
    host, port = next(iter(server.sockets)).getsockname()[:2]
    peer = await raw_client(host, port)
    # Written at once: the server fails on the frame header while most of the
    # payload is still on its way or unread in its socket.
    peer.engine.send_binary(b"\x00" * (4 * 1024 * 1024))
    await peer.flush()
    event = await peer.next_event()
    assert isinstance(event, CloseReceived)
    assert event.close.code == 1009
    # The server half-closed and dropped what kept coming; it ends when the peer closes.
    await peer.wait_eof()
    await peer.close()
    async with asyncio.timeout(5):
        ws = await closed
    assert ws.protocol.close_sent is not None
    assert ws.protocol.close_sent.code == 1009
