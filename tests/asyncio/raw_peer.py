"""A hand-driven WebSocket peer for tests: it does only what the test tells it.

The opening handshake is written and checked by hand; frames are encoded and
decoded with a bare protocol engine, whose automatic answers (pongs, the echo
of a close frame) are never written unless the test calls :meth:`flush`. So
the peer can stay silent, never answer a ping or a close, or send a message
fragment by fragment with pauses in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from tests.behaviour.raw import (
    EngineSide,
    accept_response,
    check_accepted,
    client_request,
    split_head,
)
from tether.protocol.connection import Role
from tether.protocol.events import Event

__all__ = ["RawPeer", "raw_client", "raw_server"]

READ_TIMEOUT = 5.0
"""How long the peer waits for bytes before the test is declared stuck."""


class RawPeer(EngineSide):
    """One end of a WebSocket connection driven by the test, after the handshake."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        role: Role,
        leftover: bytes = b"",
    ) -> None:
        self.reader = reader
        self.writer = writer
        super().__init__(role, leftover)

    async def flush(self) -> None:
        """Write the frames the test put into the engine with its send methods."""
        # One write: writelines skips flow control on some CPythons (gh-127655).
        self.writer.write(b"".join(self.engine.data_to_send()))
        await self.writer.drain()

    async def write(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)
        await self.writer.drain()

    async def next_event(self, timeout: float = READ_TIMEOUT) -> Event:
        """Return the next event decoded from what the other side sent.

        Raise :class:`TimeoutError` if nothing comes within ``timeout`` and
        :class:`EOFError` if the other side closes TCP first.
        """
        async with asyncio.timeout(timeout):
            while not self._pending:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("the other side closed the connection")
                self._feed(data)
        return self._pending.pop(0)

    async def wait_eof(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Read until the other side closes TCP; return the bytes read meanwhile."""
        chunks = []
        async with asyncio.timeout(timeout):
            while data := await self.reader.read(65536):
                chunks.append(data)
        return b"".join(chunks)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        transport = self.writer.transport
        transport.abort()

    async def close(self) -> None:
        """Close TCP, ignoring an already broken connection."""
        self.writer.close()
        with suppress(OSError):
            await self.writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> tuple[list[str], bytes]:
    """Read an HTTP head; return its lines and the bytes that came after it."""
    buffer = b""
    async with asyncio.timeout(READ_TIMEOUT):
        while (head := split_head(buffer)) is None:
            data = await reader.read(4096)
            if not data:
                raise EOFError("connection closed during the handshake")
            buffer += data
    return head


async def raw_client(host: str, port: int, path: str = "/") -> RawPeer:
    """Open a connection to a WebSocket server and do the client's handshake by hand."""
    reader, writer = await asyncio.open_connection(host, port)
    request, key = client_request(host, port, path)
    writer.write(request)
    await writer.drain()
    lines, rest = await _read_head(reader)
    check_accepted(lines, key)
    return RawPeer(reader, writer, Role.CLIENT, rest)


@asynccontextmanager
async def raw_server(
    on_request: Callable[[list[str]], None] | None = None,
) -> AsyncIterator[tuple[str, asyncio.Queue[RawPeer]]]:
    """Listen on loopback and accept WebSocket handshakes by hand.

    Yield the ``ws://`` URI and a queue that gets a :class:`RawPeer` for each
    client once its handshake is done. Connections stay open until the block
    ends, whatever the peers do.
    """
    peers: asyncio.Queue[RawPeer] = asyncio.Queue()
    accepted: list[RawPeer] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines, rest = await _read_head(reader)
        if on_request is not None:
            on_request(lines)
        writer.write(accept_response(lines))
        await writer.drain()
        peer = RawPeer(reader, writer, Role.SERVER, rest)
        accepted.append(peer)
        await peers.put(peer)
        # Returning would leave the stream to the garbage collector: hold it.
        await done.wait()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield f"ws://{host}:{port}/", peers
    finally:
        done.set()
        for peer in accepted:
            peer.abort()
        server.close()
        await server.wait_closed()
