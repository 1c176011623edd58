"""Peers that stall the opening of a TLS connection: silent, partial, or one byte at a time.

Each one opens TCP and then misbehaves in one way; the other end must drop
it once ``open_timeout`` has passed. The behaviours:

- ``silent``: sends nothing at all;
- ``partial``: sends the 5-byte header of a TLS record announcing more, and
  nothing more;
- ``drip``: sends a real TLS hello one byte at a time, without end in sight
  (hundreds of bytes, one every ``drip`` seconds);
- ``drip-http``: completes TLS at once, then sends the HTTP handshake one
  byte at a time, each in a TLS record of its own.

The TLS side of the peers is an :class:`ssl.SSLObject` over memory buffers,
driven by hand over a plain asyncio stream, so that nothing is sent that
the test did not decide.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from contextlib import suppress

BEHAVIOURS = ("silent", "partial", "drip", "drip-http")

GRACE = 5.0
"""How long after ``open_timeout`` a stalled peer may still be connected: far
less than the 60 seconds asyncio's TLS allows by default, and than the time
a drip takes to finish."""

RECORD_HEADER = b"\x16\x03\x01\x02\x00"
"""A TLS handshake record header announcing 512 bytes that never come."""

REQUEST = (
    b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


@functools.cache
def insecure_client_context() -> ssl.SSLContext:
    """A client context that checks nothing: made once, as loading the CA store is slow."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class TLSOverStream:
    """TLS spoken by hand over an asyncio stream, record by record."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        server_side: bool,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=server_side,
            server_hostname=None if server_side else "localhost",
        )

    def first_flight(self) -> bytes:
        """The client's hello, which TLS writes before it has read anything."""
        with suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
        return self.outgoing.read()

    async def handshake(self) -> None:
        """Complete the TLS handshake at full speed."""
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            else:
                break
            await self.flush()
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionResetError("closed during the TLS handshake")
            self.incoming.write(data)
        await self.flush()

    async def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def drip(self, data: bytes, interval: float) -> None:
        """Send ``data`` one byte per TLS record, a record every ``interval`` seconds."""
        for byte in data:
            self.tls.write(bytes([byte]))
            await self.flush()
            await asyncio.sleep(interval)


async def drip_raw(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Write ``data`` one byte every ``interval`` seconds."""
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(interval)


async def until_dropped(reader: asyncio.StreamReader) -> None:
    """Read until the other end closes or resets the connection."""
    with suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def stall_server(
    host: str,
    port: int,
    behaviour: str,
    bound: float,
    *,
    interval: float = 0.1,
    silence: float = 0.0,
    stalling: Callable[[], None] = lambda: None,
) -> float:
    """Connect to a TLS server and stall its opening as ``behaviour`` says.

    With ``drip-http``, TLS starts after ``silence`` seconds. ``stalling`` is
    called once the peer has begun to stall (with ``drip-http``, once TLS is
    done), or is dropped before it could. Return how long the server took
    to drop the connection, from TCP's opening; fail if it did not within
    ``bound`` seconds.
    """
    reader, writer = await asyncio.open_connection(host, port)
    opened = time.monotonic()
    tls = TLSOverStream(reader, writer, insecure_client_context(), server_side=False)
    dripping: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(bound):
            if behaviour == "partial":
                writer.write(RECORD_HEADER)
            elif behaviour == "drip":
                dripping = asyncio.create_task(drip_raw(writer, tls.first_flight(), interval))
            elif behaviour == "drip-http":
                await asyncio.sleep(silence)
                try:
                    await tls.handshake()
                except (ConnectionError, ssl.SSLError):
                    stalling()
                    return time.monotonic() - opened  # Dropped in the middle of TLS.
                dripping = asyncio.create_task(tls.drip(REQUEST, interval))
            else:
                assert behaviour == "silent", behaviour
            stalling()
            await until_dropped(reader)
    except TimeoutError:
        raise AssertionError(f"{behaviour}: still connected after {bound} s") from None
    finally:
        await stop(dripping)
        writer.transport.abort()
    return time.monotonic() - opened


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel a dripping task and wait for it; the connection may be gone under it."""
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError, ConnectionError):
        await task


async def stall_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    behaviour: str,
    context: ssl.SSLContext,
    interval: float = 0.1,
) -> None:
    """Serve one connecting client as ``behaviour`` says, until it gives up.

    ``partial`` sends the header of a handshake record and stops; ``drip``
    sends a record header announcing 512 bytes and then the bytes one at a
    time; ``drip-http`` completes TLS, then sends the 101 response one byte
    at a time.
    """
    tls = TLSOverStream(reader, writer, context, server_side=True)
    dripping: asyncio.Task[None] | None = None
    try:
        if behaviour == "partial":
            writer.write(RECORD_HEADER)
        elif behaviour == "drip":
            dripping = asyncio.create_task(drip_raw(writer, RECORD_HEADER + bytes(512), interval))
        elif behaviour == "drip-http":
            await tls.handshake()
            dripping = asyncio.create_task(tls.drip(RESPONSE, interval))
        else:
            assert behaviour == "silent", behaviour
        await until_dropped(reader)
    except (ConnectionError, ssl.SSLError):
        pass  # The client gave up in the middle of TLS.
    finally:
        await stop(dripping)
        writer.transport.abort()
