"""An adversarial WebSocket peer with full control of the bytes on the wire.

The peer plays the client (it connects to tether's server) or the server (it
accepts tether's client). It writes the opening handshake by hand, and
afterwards any frame at all: any opcode, RSV bits and FIN flag, any length
encoding including non-minimal ones, masked or not with a chosen key. Writes
may be split at any byte with pauses in between. The peer can stop reading
and drop TCP.

A background task reads everything tether sends, parses it as frames (with
:func:`tether.protocol.frames.parse_frame`, any RSV bits allowed so that the
test sees them) and records: the frames, the first close frame, whether
tether closed TCP, and any bytes that came after the close frame, which
must be none.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import cast

from tether.exceptions import ProtocolError
from tether.protocol.close import Close
from tether.protocol.frames import RSV1, RSV_BITS, Frame, Opcode, parse_frame
from tether.protocol.handshake import accept_key

__all__ = [
    "DeflateParams",
    "Peer",
    "PeerServer",
    "ReadHead",
    "Responder",
    "accept_lines",
    "accept_response",
    "connect_peer",
    "encode_frame",
    "peer_server",
    "read_head",
]

READ_TIMEOUT = 5.0
"""How long the peer waits for something from tether before the case fails."""

TAIL = b"\x00\x00\xff\xff"


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool,
    key: bytes | None = None,
    length_bytes: int | None = None,
    length: int | None = None,
) -> bytes:
    """Build a frame exactly as asked, valid or not.

    ``rsv`` is the reserved bits as they stand in the first byte. With
    ``mask``, ``key`` (random by default) masks the payload. ``length_bytes``
    picks the length encoding: 0 for the 7-bit field, 2 for 16 bits, 8 for
    64 bits; ``None`` for the shortest, as RFC 6455 section 5.2 asks of
    senders. ``length`` announces a length other than the payload's.
    """
    size = len(payload) if length is None else length
    if length_bytes is None:
        length_bytes = 0 if size < 126 else 2 if size < 0x10000 else 8
    mask_bit = 0x80 if mask else 0
    header = bytearray([(0x80 if fin else 0) | rsv | opcode])
    if length_bytes == 0:
        header.append(mask_bit | size)
    elif length_bytes == 2:
        header.append(mask_bit | 126)
        header += size.to_bytes(2, "big")
    else:
        header.append(mask_bit | 127)
        header += size.to_bytes(8, "big")
    if not mask:
        return bytes(header) + payload
    if key is None:
        key = os.urandom(4)
    header += key
    # Masking written out here rather than borrowed from tether: the peer
    # must not share a bug with the code under test.
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )
    return bytes(header) + masked


@dataclass(frozen=True)
class DeflateParams:
    """One set of permessage-deflate parameters (RFC 7692 section 7.1).

    ``client_max_window_bits`` is ``True`` for the bare parameter of an offer.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = None

    def header(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value that carries these parameters."""
        parts = ["permessage-deflate"]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits is not None:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits is True:
            parts.append("client_max_window_bits")
        elif self.client_max_window_bits:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)

    @classmethod
    def parse(cls, value: str) -> DeflateParams:
        """Read a ``Sec-WebSocket-Extensions`` value; :class:`ValueError` if it is no valid one."""
        name, *params = [part.strip() for part in value.split(";")]
        if name != "permessage-deflate":
            raise ValueError(value)
        found: dict[str, str | None] = {}
        for param in params:
            key, sep, bits = param.partition("=")
            if key in found:
                raise ValueError(value)
            found[key] = bits if sep else None
        flags = {"server_no_context_takeover", "client_no_context_takeover"}
        windows = {"server_max_window_bits", "client_max_window_bits"}
        if not set(found) <= flags | windows:
            raise ValueError(value)
        if any(found[key] is not None for key in flags & set(found)):
            raise ValueError(value)
        bits_values: dict[str, int | bool] = {}
        for key in windows & set(found):
            raw = found[key]
            if raw is None:
                bits_values[key] = True
            elif raw in {str(bits) for bits in range(8, 16)}:
                bits_values[key] = int(raw)
            else:
                raise ValueError(value)
        smwb = bits_values.get("server_max_window_bits")
        if smwb is True or smwb is False:
            raise ValueError(value)
        return cls(
            "server_no_context_takeover" in found,
            "client_no_context_takeover" in found,
            smwb,
            bits_values.get("client_max_window_bits"),
        )


class _Deflate:
    """The peer's side of permessage-deflate, written with zlib directly."""

    def __init__(self, params: DeflateParams, *, client: bool) -> None:
        smwb = params.server_max_window_bits or 15
        cmwb = params.client_max_window_bits
        cmwb = 15 if cmwb is None or cmwb is True else cmwb
        if client:
            self.local_bits, self.remote_bits = cmwb, smwb
            self.local_reset = params.client_no_context_takeover
            self.remote_reset = params.server_no_context_takeover
        else:
            self.local_bits, self.remote_bits = smwb, cmwb
            self.local_reset = params.server_no_context_takeover
            self.remote_reset = params.client_no_context_takeover
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None

    def compress(self, data: bytes) -> bytes:
        if self._compressor is None:
            self._compressor = zlib.compressobj(9, zlib.DEFLATED, -self.local_bits)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        if self.local_reset:
            self._compressor = None
        return out[:-4]

    def decompress(self, data: bytes) -> bytes:
        """Decompress one whole message; a zlib error means tether broke the agreement."""
        if self._decompressor is None:
            # The remote window exactly: a larger one used by tether fails here.
            self._decompressor = zlib.decompressobj(-self.remote_bits)
        decompressor = self._decompressor
        # zlib only checks distances against the window for output already
        # handed out: inflating a few bytes at a time makes it check them all.
        pieces = []
        pending = data + TAIL
        while pending:
            pieces.append(decompressor.decompress(pending, 64))
            pending = decompressor.unconsumed_tail
        out = b"".join(pieces)
        if self.remote_reset:
            self._decompressor = None
        return out


@dataclass
class ReadHead:
    """An HTTP head as read off the wire."""

    start_line: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    rest: bytes = b""

    def get(self, name: str) -> list[str]:
        """Every value of header ``name``."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


async def read_head(reader: asyncio.StreamReader) -> ReadHead:
    """Read an HTTP request or response head; keep what follows it in ``rest``."""
    buffer = b""
    async with asyncio.timeout(READ_TIMEOUT):
        while b"\r\n\r\n" not in buffer:
            data = await reader.read(4096)
            if not data:
                raise EOFError(f"connection closed during the handshake: {buffer!r}")
            buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return ReadHead(start, headers, rest)


class Peer:
    """One end of a connection to tether, driven byte by byte by the test.

    ``client`` tells which role the peer plays: a client masks its frames and
    expects tether's to be unmasked, a server the reverse.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client: bool,
        leftover: bytes = b"",
        deflate: DeflateParams | None = None,
        head: ReadHead | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.client = client
        self.head = head
        """The handshake head tether sent: its response, or its request."""
        self.deflate = None if deflate is None else _Deflate(deflate, client=client)
        self.frames: list[Frame] = []
        """Every frame tether sent, in order."""
        self.close: Close | None = None
        """The close frame tether sent, parsed."""
        self.close_index: int | None = None
        """The position of tether's close frame in :attr:`frames`."""
        self.after_close = bytearray()
        """Bytes tether sent after its close frame: must stay empty."""
        self.eof = False
        """Whether tether closed TCP."""
        self.reset = False
        """Whether TCP ended with a reset rather than an orderly FIN."""
        self.eof_before_close = False
        """Whether TCP ended before tether's close frame."""
        self.write_failed = False
        """Whether a write hit a connection tether had already closed."""
        self.garbage: ProtocolError | None = None
        """A frame from tether that broke RFC 6455, if any."""
        self._next = 0
        self._buffer = bytearray(leftover)
        self._changed = asyncio.Event()
        self._pump = asyncio.get_running_loop().create_task(self._read_loop())

    # Reading

    async def _read_loop(self) -> None:
        self._parse()
        while True:
            try:
                data = await self.reader.read(1 << 18)
            except ConnectionError:
                self.reset = True
                data = b""
            if not data:
                self.eof = True
                self.eof_before_close = self.close is None
                self._changed.set()
                return
            self._buffer += data
            self._parse()

    def _parse(self) -> None:
        buffer = self._buffer
        pos = 0
        while self.close is None and self.garbage is None:
            try:
                parsed = parse_frame(buffer, pos, expect_mask=not self.client, allowed_rsv=RSV_BITS)
            except ProtocolError as exc:
                self.garbage = exc
                break
            if parsed is None:
                break
            frame, used = parsed
            pos += used
            self.frames.append(frame)
            if frame.opcode == Opcode.CLOSE:
                self.close_index = len(self.frames) - 1
                self.close = Close.parse(frame.data)
        del buffer[:pos]
        if self.close is not None and buffer:
            self.after_close += buffer
            buffer.clear()
        self._changed.set()

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not ready():
                    if self.garbage is not None:
                        raise AssertionError(f"tether sent an invalid frame: {self.garbage}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"waited {timeout} s for {what}; got frames {self.frames[self._next :]!r}, "
                f"eof={self.eof}"
            ) from None

    async def next_frame(self, timeout: float = READ_TIMEOUT) -> Frame:
        """Return the next frame tether sent, waiting for it."""
        await self._wait(lambda: len(self.frames) > self._next or self.eof, timeout, "a frame")
        if len(self.frames) <= self._next:
            raise AssertionError("tether closed TCP instead of sending a frame")
        frame = self.frames[self._next]
        self._next += 1
        return frame

    async def next_message(self, timeout: float = READ_TIMEOUT) -> str | bytes:
        """Return the next data message, reassembled and decompressed.

        Any other frame on the way fails the test: the cases send no ping
        that tether's answer could interleave with.
        """
        first = await self.next_frame(timeout)
        assert first.opcode in (Opcode.TEXT, Opcode.BINARY), first
        assert not first.rsv2, first
        assert not first.rsv3, first
        compressed = first.rsv1
        assert not compressed or self.deflate is not None, "RSV1 without permessage-deflate"
        pieces = [first.data]
        frame = first
        while not frame.fin:
            frame = await self.next_frame(timeout)
            assert frame.opcode == Opcode.CONT, frame
            assert frame.rsv == 0, frame
            pieces.append(frame.data)
        data = b"".join(pieces)
        if compressed:
            assert self.deflate is not None
            data = self.deflate.decompress(data)
        return data.decode() if first.opcode == Opcode.TEXT else data

    async def expect_echo(self, message: str | bytes, timeout: float = READ_TIMEOUT) -> None:
        """Check that the next message from tether is ``message``, same type, same bytes."""
        echoed = await self.next_message(timeout)
        assert type(echoed) is type(message), (type(echoed), type(message))
        if echoed != message:
            raise AssertionError(f"echo differs: {len(echoed)} bytes for {len(message)}")

    async def expect_pong(self, payload: bytes, timeout: float = READ_TIMEOUT) -> None:
        """Check that the next frame is a pong carrying ``payload``."""
        frame = await self.next_frame(timeout)
        assert frame.opcode == Opcode.PONG, frame
        assert frame.data == payload, frame

    async def expect_close(
        self, code: int, timeout: float = READ_TIMEOUT, reason: str | None = None
    ) -> Close:
        """Check that tether's next frame is a close frame with ``code`` (and ``reason``)."""
        frame = await self.next_frame(timeout)
        assert frame.opcode == Opcode.CLOSE, f"expected a close frame, got {frame!r}"
        assert self.close is not None
        assert self.close.code == code, f"expected close code {code}, got {self.close}"
        if reason is not None:
            assert self.close.reason == reason, self.close
        return self.close

    async def expect_eof(self, timeout: float = READ_TIMEOUT) -> None:
        """Wait until tether closes TCP; check nothing came after its close frame."""
        await self._wait(lambda: self.eof, timeout, "tether to close TCP")
        self.check_quiet()

    async def expect_no_eof(self, grace: float = 0.05) -> None:
        """Check that tether keeps TCP open for ``grace`` seconds: a client waits for the server."""
        with suppress(AssertionError):
            await self._wait(lambda: self.eof, grace, "tether not to close TCP")
        assert not self.eof, "tether closed TCP, but a client must wait for the server"

    def check_quiet(self) -> None:
        """Check that nothing followed the close frame and no frame is left unread."""
        assert self.garbage is None, self.garbage
        assert not self.after_close, f"tether sent {bytes(self.after_close)!r} after closing"
        assert self._next == len(self.frames), f"unexpected frames {self.frames[self._next :]!r}"

    async def expect_failure(self, code: int, timeout: float = READ_TIMEOUT) -> Close:
        """Check that tether failed the connection: close frame with ``code``, then TCP closed."""
        close = await self.expect_close(code, timeout)
        await self.expect_eof(timeout)
        assert not self.eof_before_close
        return close

    def stop_reading(self) -> None:
        """Leave tether's bytes in the kernel: its writes will back up."""
        cast(asyncio.Transport, self.writer.transport).pause_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`stop_reading`."""
        cast(asyncio.Transport, self.writer.transport).resume_reading()

    # Writing

    async def write(self, data: bytes, split: Sequence[int] = (), pause: float = 0.0) -> None:
        """Write ``data``, in separate writes cut at the offsets in ``split``.

        Each piece is drained before the next, with ``pause`` seconds in
        between. A write to a connection that tether already dropped sets
        :attr:`write_failed` instead of raising: failing fast is tether's job.
        """
        bounds = [0, *sorted(split), len(data)]
        for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
            if index and pause:
                await asyncio.sleep(pause)
            if start == stop:
                continue
            if self.writer.transport.is_closing():
                self.write_failed = True
                return
            try:
                self.writer.write(data[start:stop])
                await self.writer.drain()
            except ConnectionError:
                self.write_failed = True
                return

    def frame(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool | None = None,
        key: bytes | None = None,
        length_bytes: int | None = None,
        length: int | None = None,
    ) -> bytes:
        """Encode a frame, masked by default when the peer is the client."""
        return encode_frame(
            opcode,
            payload,
            fin=fin,
            rsv=rsv,
            mask=self.client if mask is None else mask,
            key=key,
            length_bytes=length_bytes,
            length=length,
        )

    async def send(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        fin: bool = True,
        rsv: int = 0,
        mask: bool | None = None,
        key: bytes | None = None,
        length_bytes: int | None = None,
        split: Sequence[int] = (),
        pause: float = 0.0,
    ) -> None:
        """Encode a frame and write it; see :meth:`frame` and :meth:`write`."""
        data = self.frame(
            opcode, payload, fin=fin, rsv=rsv, mask=mask, key=key, length_bytes=length_bytes
        )
        await self.write(data, split, pause)

    def message_frames(
        self,
        message: str | bytes,
        *,
        fragment: int | None = None,
        compress: bool = False,
        cuts: Sequence[int] | None = None,
        text: bool | None = None,
    ) -> list[bytes]:
        """Encode a message as frames: whole, in pieces of ``fragment`` bytes or cut at ``cuts``.

        With ``compress`` the message is compressed first and the compressed
        bytes are cut; RSV1 is on the first frame only. ``text`` overrides
        the opcode that the type of ``message`` implies, to send any bytes
        as text.
        """
        if text is None:
            text = isinstance(message, str)
        data = message.encode() if isinstance(message, str) else message
        if compress:
            assert self.deflate is not None
            data = self.deflate.compress(data)
        if cuts is None:
            step = fragment or max(len(data), 1)
            cuts = range(step, len(data), step)
        bounds = [0, *cuts, len(data)]
        frames = []
        for index, (start, stop) in enumerate(itertools.pairwise(bounds)):
            first = index == 0
            frames.append(
                self.frame(
                    (Opcode.TEXT if text else Opcode.BINARY) if first else Opcode.CONT,
                    data[start:stop],
                    fin=index == len(bounds) - 2,
                    rsv=RSV1 if compress and first else 0,
                )
            )
        return frames

    async def send_message(
        self,
        message: str | bytes,
        *,
        fragment: int | None = None,
        compress: bool = False,
        cuts: Sequence[int] | None = None,
        text: bool | None = None,
    ) -> None:
        """Send a message in one write; see :meth:`message_frames`."""
        frames = self.message_frames(
            message, fragment=fragment, compress=compress, cuts=cuts, text=text
        )
        await self.write(b"".join(frames))

    async def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        """Send a close frame; ``None`` sends one with no payload."""
        payload = b"" if code is None else code.to_bytes(2, "big") + reason.encode()
        await self.send(Opcode.CLOSE, payload)

    async def roundtrip(self) -> None:
        """Send a ping and wait for its pong: tether has processed all bytes sent before."""
        payload = os.urandom(8)
        await self.send(Opcode.PING, payload)
        await self.expect_pong(payload)

    # Closing

    def abort(self) -> None:
        """Drop TCP at once."""
        self.writer.transport.abort()

    def close_tcp(self) -> None:
        """Close TCP in order, with a FIN."""
        self.writer.transport.close()

    async def stop(self) -> None:
        """Drop the connection and the reading task; for teardown.

        Return once the socket is closed: a threading server in the same
        process may be waiting for it while the caller blocks the loop.
        """
        self.abort()
        self._pump.cancel()
        with suppress(asyncio.CancelledError):
            await self._pump
        with suppress(Exception):
            async with asyncio.timeout(READ_TIMEOUT):
                await self.writer.wait_closed()


def _request(host: str, port: int, key: str, extensions: str | None, path: str = "/") -> bytes:
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect_peer(
    host: str,
    port: int,
    *,
    extensions: str | None = None,
    request: bytes | None = None,
    path: str = "/",
) -> tuple[Peer | None, ReadHead]:
    """Connect to tether's server as a client and do the handshake by hand.

    ``extensions`` is the ``Sec-WebSocket-Extensions`` offer. ``request``
    replaces the whole request, to corrupt it; ``path`` is the request target
    otherwise. Return the peer (``None`` unless tether answered 101 with the
    right accept key) and the response.
    """
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(request if request is not None else _request(host, port, key, extensions, path))
    await writer.drain()
    head = await read_head(reader)
    if not head.start_line.startswith("HTTP/1.1 101 "):
        writer.transport.abort()
        return None, head
    assert head.get("Sec-WebSocket-Accept") == [accept_key(key)], head
    answer = head.get("Sec-WebSocket-Extensions")
    deflate = DeflateParams.parse(answer[0]) if answer else None
    peer = Peer(reader, writer, client=True, leftover=head.rest, deflate=deflate, head=head)
    return peer, head


Responder = Callable[[ReadHead], bytes]
"""Builds the peer server's handshake response from tether's request."""


def accept_lines(request: ReadHead) -> list[bytes]:
    """The lines of a 101 answer to ``request`` as RFC 6455 section 4.2.2 says, for cases to edit.

    The blank line that ends the head is not among them.
    """
    (key,) = request.get("Sec-WebSocket-Key")
    return [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept_key(key).encode(),
    ]


def accept_response(extensions: str | None = None) -> Responder:
    """A responder that answers 101 as RFC 6455 section 4.2.2 says, with ``extensions``."""

    def respond(request: ReadHead) -> bytes:
        lines = accept_lines(request)
        if extensions is not None:
            lines.append(b"Sec-WebSocket-Extensions: " + extensions.encode())
        return b"\r\n".join(lines) + b"\r\n\r\n"

    return respond


class PeerServer:
    """A listening peer that answers tether's client by hand, one :class:`Peer` per connection."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()
        self.requests: list[ReadHead] = []
        self._accepted: list[Peer] = []
        self._done = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.uri = ""

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_head(reader)
        self.requests.append(request)
        response = self.respond(request)
        writer.write(response)
        await writer.drain()
        answer = [
            value
            for key, value in _response_headers(response)
            if key.lower() == "sec-websocket-extensions"
        ]
        try:
            deflate = DeflateParams.parse(answer[0]) if answer else None
        except ValueError:
            deflate = None  # An invalid answer, which tether's client must refuse.
        peer = Peer(
            reader, writer, client=False, leftover=request.rest, deflate=deflate, head=request
        )
        self._accepted.append(peer)
        await self.peers.put(peer)
        # Returning would hand the stream to the garbage collector: hold it.
        await self._done.wait()

    async def start(self) -> str:
        """Listen on loopback; return the ``ws://`` URI."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.uri = f"ws://{host}:{port}/"
        return self.uri

    async def stop(self) -> None:
        """Drop every connection and stop listening."""
        self._done.set()
        for peer in self._accepted:
            await peer.stop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _response_headers(response: bytes) -> list[tuple[str, str]]:
    head = response.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return [(line.partition(":")[0].strip(), line.partition(":")[2].strip()) for line in head]


@asynccontextmanager
async def peer_server(respond: Responder) -> AsyncIterator[PeerServer]:
    """Run a :class:`PeerServer` for the duration of the block."""
    server = PeerServer(respond)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


Case = Callable[[Peer], Awaitable[None]]
"""A conformance case: plays against tether through the peer and asserts the outcome."""
