"""How a server ends TCP after the closing handshake: it must not reset it.

RFC 6455 section 5.5.2 makes a client answer a ping that reaches it after it
sent its close frame, so a pong may follow the client's close frame while the
server is already closing. A socket closed with such bytes unread, or one that
receives them once closed, makes the kernel reset TCP: it drops what the
server had not yet delivered, its close frame included, and the client ends
with 1006 instead of 1000 (on a lossy link, a close frame lost once is never
sent again). So the server half-closes and reads on until the client closes.

Here a client that reads nothing keeps the server's close frame in its
buffers, behind a large echo, while the crossing pong arrives: no loss needed.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import tether
import tether.sync
from tether.asyncio.server import ServerConnection
from tether.protocol.connection import Connection, Role
from tether.protocol.events import CloseReceived, Message
from tether.protocol.frames import Opcode, serialize_frame
from tether.sync.server import ServerConnection as SyncServerConnection

from .raw_peer import READ_TIMEOUT, RawPeer, raw_client

ECHO_SIZE = 1_000_000
"""Far more than the client's small receive buffer and the server's send
buffer hold: most of the echo, and the close frame after it, stay in the
server's transport until the client reads."""


async def slow_reading_client(port: int) -> RawPeer:
    """A raw client with a small receive buffer, so that the server's bytes wait on its side."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await raw_client("127.0.0.1", port, sock=sock)


async def test_pong_after_the_clients_close_frame_does_not_reset_tcp() -> None:
    echoed = asyncio.Event()

    async def echo(ws: ServerConnection) -> None:
        async for data in ws:
            ws.send_nowait(data)
            echoed.set()

    async with tether.serve(echo, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = await slow_reading_client(port)
        (server_side,) = server.connections
        payload = bytes(range(256)) * (ECHO_SIZE // 256)
        client.engine.send_binary(payload)
        await client.flush()
        async with asyncio.timeout(READ_TIMEOUT):
            await echoed.wait()
        client.engine.send_close(1000, "done")
        await client.flush()
        # The server read the close frame and answered it behind the echo,
        # which waits in its buffers since the client reads nothing yet.
        async with asyncio.timeout(READ_TIMEOUT):
            while server_side.protocol.close_rcvd is None:
                await asyncio.sleep(0.01)
        # The pong of a ping that crossed the client's close frame.
        await client.write(serialize_frame(Opcode.PONG.value, b"", mask=True))
        # Everything the server sent arrives, then a clean EOF: no reset.
        received = await client.wait_eof()
        decoder = Connection(Role.CLIENT, max_size=None)
        decoder.receive_data(received)
        events = decoder.events()
        message, close = events
        assert isinstance(message, Message)
        assert message.data == payload
        assert isinstance(close, CloseReceived)
        assert close.close.code == 1000
        await client.close()
        async with asyncio.timeout(READ_TIMEOUT):
            await server_side.wait_closed()
        assert server_side.close_code == 1000


async def test_threading_server_also_reads_on_after_the_closing_handshake() -> None:
    handler_ended = threading.Event()
    connections: list[SyncServerConnection] = []

    def echo_sync(ws: SyncServerConnection) -> None:
        connections.append(ws)
        try:
            for data in ws:
                ws.send(data)
        finally:
            handler_ended.set()

    server = tether.sync.serve(echo_sync, "127.0.0.1", 0, compression=None)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    loop = asyncio.get_running_loop()
    try:
        client = await slow_reading_client(server.socket.getsockname()[1])
        payload = bytes(range(256)) * (ECHO_SIZE // 256)
        client.engine.send_binary(payload)
        await client.flush()
        # The echo is on its way: the handler's send now waits for a client
        # that reads no more, and the server's reader takes the close frame.
        async with asyncio.timeout(READ_TIMEOUT):
            first = await client.reader.read(65536)
        client.engine.send_close(1000, "done")
        await client.flush()
        async with asyncio.timeout(READ_TIMEOUT):
            while not connections or connections[0].protocol.close_rcvd is None:
                await asyncio.sleep(0.01)
        await client.write(serialize_frame(Opcode.PONG.value, b"", mask=True))
        received = first + await client.wait_eof()
        decoder = Connection(Role.CLIENT, max_size=None)
        decoder.receive_data(received)
        message, close = decoder.events()
        assert isinstance(message, Message)
        assert message.data == payload
        assert isinstance(close, CloseReceived)
        assert close.close.code == 1000
        await client.close()
        assert await loop.run_in_executor(None, handler_ended.wait, READ_TIMEOUT)
        (server_side,) = connections
        assert server_side.close_code == 1000
    finally:
        await loop.run_in_executor(None, server.shutdown)
        serving.join(READ_TIMEOUT)
