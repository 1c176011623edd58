"""The lean client of ``python -m bench.c100k --lean-clients``: cheap to receive with.

With 100,000 connections on one machine, the clients receive as many
messages as the servers send, on the same cores: if each received message
costs a client more than it costs the server to send it, the benchmark
measures its own clients. :class:`LeanClient` is still a WebSocket client:
the opening handshake goes through tether's Sans-I/O engine
(:class:`~tether.protocol.client.ClientProtocol`, with permessage-deflate
offered when asked), then it reads the server's frames itself, answers
pings with masked pongs and closes on a close frame. What it does not do
is anything the benchmark never receives: a fragmented or compressed
message, or a masked frame from the server, fails the connection loudly
(the run then fails its every-message-once check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tether.extensions.permessage_deflate import client_extensions
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import _OPEN
from tether.protocol.events import Message
from tether.protocol.frames import serialize_frame

__all__ = ["LeanClient", "ProtocolFailure"]

TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class ProtocolFailure(Exception):
    """A frame the lean client does not read: the run is not measuring what it says."""


class LeanClient(asyncio.Protocol):
    """One connection: handshake through the engine, then frames read by hand.

    ``on_text`` is called with the payload of each text message, decoded.
    ``opened`` is resolved once the handshake succeeded, or failed with why.
    """

    __slots__ = ("buffer", "engine", "failed", "on_text", "opened", "transport")

    def __init__(
        self, uri: str, deflate: bool, on_text: Callable[[str], None], opened: asyncio.Future[None]
    ) -> None:
        self.engine: ClientProtocol | None = ClientProtocol(
            uri, extensions=client_extensions("deflate" if deflate else None, None)
        )
        self.on_text = on_text
        self.opened = opened
        self.buffer = b""
        self.failed: ProtocolFailure | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        engine = self.engine
        assert engine is not None
        engine.send_request(engine.connect())
        transport.writelines(engine.data_to_send())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        engine = self.engine
        if engine is not None:
            self._handshake(engine, data)
            return
        buffer = self.buffer + data if self.buffer else data
        size = len(buffer)
        pos = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4])
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 10])
                header = 10
            end = pos + header + length
            if end > size:
                break
            if second & 0x80 or first & 0x70 or not first & 0x80:
                self._fail(f"unexpected frame header {first:#04x} {second:#04x}")
                return
            opcode = first & 0x0F
            payload = buffer[pos + header : end]
            pos = end
            if opcode == TEXT:
                self.on_text(payload.decode())
            elif opcode == PING:
                assert self.transport is not None
                self.transport.write(serialize_frame(PONG, payload, mask=True))
            elif opcode == CLOSE:
                assert self.transport is not None
                self.transport.close()
                return
            elif opcode != PONG:
                self._fail(f"unexpected opcode {opcode:#x}")
                return
        self.buffer = buffer[pos:] if pos < size else b""

    def _handshake(self, engine: ClientProtocol, data: bytes) -> None:
        engine.receive_data(data)
        events = engine.events()
        if engine.state is _OPEN:
            # From here on, frames are read here; the engine is dropped.
            self.engine = None
            if not self.opened.done():
                self.opened.set_result(None)
            # What came with the response was read by the engine.
            for event in events:
                if isinstance(event, Message) and isinstance(event.data, str):
                    self.on_text(event.data)
            assert self.transport is not None
            self.transport.writelines(engine.data_to_send())
        elif engine.handshake_exc is not None and not self.opened.done():
            self.opened.set_exception(engine.handshake_exc)

    def _fail(self, reason: str) -> None:
        self.failed = ProtocolFailure(reason)
        assert self.transport is not None
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
