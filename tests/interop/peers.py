"""Real peers for the interoperability tests, all driven through one small interface.

A :class:`Peer` is the other end of a connection with tether: it echoes every
message back and records what it saw (messages, pongs, the close frame), and
the tests ask it to ping, to send a fragmented message or to close.
:func:`open_pair` connects tether to a peer in either direction and gives both
ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import random
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import websocket
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
import websockets.sync.client
import websockets.sync.server
from aiohttp import web

import tether
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.extensions.permessage_deflate import PerMessageDeflate

__all__ = [
    "CLIENT_SUBPROTOCOLS",
    "MAX_SIZE",
    "PAIRS",
    "SERVER_SUBPROTOCOLS",
    "TIMEOUT",
    "Peer",
    "blob",
    "deflate_negotiated",
    "open_pair",
    "payload",
]

MAX_SIZE = 16 * 1024 * 1024
"""The largest message any side accepts: well above the largest test message."""

TIMEOUT = 10.0
"""How long any single wait of a test may last before it fails."""

CLIENT_SUBPROTOCOLS = ["chat.v1", "chat.v2"]
SERVER_SUBPROTOCOLS = ["chat.v2", "chat.v3"]
"""Only chat.v2 is common: a side that picks anything else gets it wrong."""

NODE_DIR = Path(__file__).parent / "node"

PAIRS = [
    ("websockets", "server"),
    ("websockets", "client"),
    ("websockets-sync", "server"),
    ("websockets-sync", "client"),
    ("aiohttp", "server"),
    ("aiohttp", "client"),
    ("websocket-client", "client"),
    ("node-ws", "server"),
    ("node-ws", "client"),
]
"""Every (peer library, role of the peer) combination: the peer's role is the
opposite of tether's."""


@functools.cache
def blob(size: int) -> bytes:
    """``size`` random bytes, the same on every call."""
    return random.Random(size).randbytes(size)


@functools.cache
def payload(size: int, binary: bool) -> str | bytes:
    """A message of ``size`` bytes on the wire: random bytes, or text of mixed-width characters."""
    if binary:
        return blob(size)
    rng = random.Random(size)
    alphabet = "tether é€𝄞 ✓ ẞ 😀 "
    text = "".join(rng.choices(alphabet, k=size // 2 + 1))
    # Cut on a character boundary, then pad with ASCII up to the exact size.
    encoded = text.encode()[:size].decode(errors="ignore")
    return encoded + "a" * (size - len(encoded.encode()))


def deflate_negotiated(ws: Connection) -> bool:
    """Tell whether permessage-deflate is in use on tether's side of ``ws``."""
    return any(isinstance(ext, PerMessageDeflate) for ext in ws.protocol.extensions)


class Peer:
    """The far end of a connection: an echo that records what it sees."""

    supports_deflate = True
    """Whether the library can negotiate permessage-deflate."""
    can_fragment = True
    """Whether the library can send a message in several frames."""
    echoes_close_code = True
    """Whether its reply to a close frame repeats the code and reason (else it sends 1000)."""
    reads_close_reply = True
    """Whether, having sent a close frame, it shows the code of the reply."""

    def __init__(self) -> None:
        self.subprotocol: str | None = None
        self.messages: list[tuple[bool, int]] = []
        """(binary, length in bytes) of every message received, in order."""
        self.pongs: list[bytes] = []
        self.close_seen: tuple[int, str | None] | None = None
        """The code and reason of the close frame received; ``None`` for a reason not shown."""
        self.errors: list[str] = []
        """Errors the library reported, where it reports them."""
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def _note_message(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.messages.append((False, len(data.encode())))
        else:
            self.messages.append((True, len(data)))
        self._changed.set()

    def _note_pong(self, data: bytes) -> None:
        self.pongs.append(data)
        self._changed.set()

    def _note_close(self, code: int, reason: str | None) -> None:
        if self.close_seen is None:
            self.close_seen = (code, reason)
        self._changed.set()

    def _from_thread(self, note: Callable[..., None], *args: Any) -> None:
        self._loop.call_soon_threadsafe(note, *args)

    async def _until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    async def received(self, count: int) -> list[tuple[bool, int]]:
        """Wait until the peer received ``count`` messages; return them all."""
        await self._until(lambda: len(self.messages) >= count)
        return self.messages

    async def ping(self, data: bytes) -> None:
        """Send a ping and wait for the pong that answers it."""
        await self._send_ping(data)
        await self._until(lambda: data in self.pongs)

    async def seen_close(self) -> tuple[int, str | None]:
        """Wait for the close frame from tether; return its code and reason."""
        await self._until(lambda: self.close_seen is not None)
        assert self.close_seen is not None
        return self.close_seen

    async def _send_ping(self, data: bytes) -> None:
        raise NotImplementedError

    async def send_fragments(self, pieces: list[bytes], binary: bool) -> None:
        """Send one message, a frame per piece; text pieces may split a character."""
        raise NotImplementedError

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release everything, whatever state the connection is in."""


class WebsocketsPeer(Peer):
    """websockets' asyncio API, on the test's event loop."""

    def __init__(self, ws: websockets.asyncio.connection.Connection) -> None:
        super().__init__()
        self.ws = ws
        self.subprotocol = ws.subprotocol
        self._echo = asyncio.create_task(self._run())

    async def _run(self) -> None:
        ws = self.ws
        try:
            async for message in ws:
                self._note_message(message)
                await ws.send(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        if ws.close_code is not None and ws.close_reason is not None:
            self._note_close(ws.close_code, ws.close_reason)

    async def ping(self, data: bytes) -> None:
        """Send a ping and wait for the pong that answers it."""
        async with asyncio.timeout(TIMEOUT):
            await (await self.ws.ping(data))

    async def send_fragments(self, pieces: list[bytes], binary: bool) -> None:
        """Send one message, a frame per piece."""
        await self.ws.send(pieces, text=not binary)

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (it completes in the background)."""
        asyncio.get_running_loop().create_task(self.ws.close(code, reason))

    async def aclose(self) -> None:
        """Close the connection and wait for the echo task."""
        await self.ws.close()
        await self._echo


class WebsocketsSyncPeer(Peer):
    """websockets' threading API: the echo runs in a thread of its own."""

    def __init__(
        self, ws: websockets.sync.connection.Connection, done: threading.Event | None = None
    ) -> None:
        super().__init__()
        self.ws = ws
        self.subprotocol = ws.subprotocol
        self._done = done
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ws = self.ws
        try:
            for message in ws:
                self._from_thread(self._note_message, message)
                ws.send(message)
        except websockets.exceptions.ConnectionClosed:
            pass
        if ws.close_code is not None and ws.close_reason is not None:
            self._from_thread(self._note_close, ws.close_code, ws.close_reason)
        if self._done is not None:
            self._done.set()

    async def ping(self, data: bytes) -> None:
        """Send a ping and wait for the pong that answers it."""
        pong = self.ws.ping(data)
        assert await asyncio.to_thread(pong.wait, TIMEOUT)

    async def send_fragments(self, pieces: list[bytes], binary: bool) -> None:
        """Send one message, a frame per piece."""
        await asyncio.to_thread(self.ws.send, pieces, text=not binary)

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (it completes in a thread)."""
        threading.Thread(target=self.ws.close, args=(code, reason), daemon=True).start()

    async def aclose(self) -> None:
        """Close the connection and wait for the echo thread."""
        await asyncio.to_thread(self.ws.close)
        await asyncio.to_thread(self._thread.join, TIMEOUT)


AiohttpWS = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


class AiohttpPeer(Peer):
    """aiohttp, client or server, with automatic pongs off so that pongs can be seen."""

    can_fragment = False
    echoes_close_code = False

    def __init__(self, ws: AiohttpWS) -> None:
        super().__init__()
        self.ws = ws
        # The server and client classes name the negotiated subprotocol differently.
        self.subprotocol = ws.ws_protocol if isinstance(ws, web.WebSocketResponse) else ws.protocol
        # The server side, closing while a receive() is pending, drops TCP
        # without reading the reply; the client side reads it.
        self.reads_close_reply = not isinstance(ws, web.WebSocketResponse)
        self.finished = asyncio.create_task(self._run())

    async def _run(self) -> None:
        ws = self.ws
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                self._note_message(msg.data)
                if isinstance(msg.data, str):
                    await ws.send_str(msg.data)
                else:
                    await ws.send_bytes(msg.data)
            elif msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.PONG:
                self._note_pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                self._note_close(msg.data, msg.extra or "")
            elif msg.type is aiohttp.WSMsgType.ERROR:
                self.errors.append(repr(msg.data))
                return
            else:
                # CLOSING, CLOSED or ERROR: nothing more will come.
                return

    async def _send_ping(self, data: bytes) -> None:
        await self.ws.ping(data)

    async def close(self, code: int, reason: str) -> None:
        """Close, and note the code of the reply.

        aiohttp's close() reads the reply itself and keeps its code, not its
        reason: the reason noted is ``None``.
        """
        await self.ws.close(code=code, message=reason.encode())
        if self.reads_close_reply and self.ws.close_code is not None:
            self._note_close(self.ws.close_code, None)

    async def aclose(self) -> None:
        """Close the connection and wait for the echo task."""
        await self.ws.close()
        async with asyncio.timeout(TIMEOUT):
            await self.finished


class WebsocketClientPeer(Peer):
    """websocket-client: a blocking client, read by a thread of its own."""

    supports_deflate = False
    echoes_close_code = False

    def __init__(self, ws: websocket.WebSocket) -> None:
        super().__init__()
        self.ws = ws
        self.subprotocol = ws.getsubprotocol()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        ws = self.ws
        try:
            while True:
                opcode, data = ws.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    text = data.decode()
                    self._from_thread(self._note_message, text)
                    ws.send(text, websocket.ABNF.OPCODE_TEXT)
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    self._from_thread(self._note_message, bytes(data))
                    ws.send(data, websocket.ABNF.OPCODE_BINARY)
                elif opcode == websocket.ABNF.OPCODE_PONG:
                    self._from_thread(self._note_pong, bytes(data))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    (code,) = struct.unpack("!H", data[:2])
                    self._from_thread(self._note_close, code, data[2:].decode())
                    # websocket-client answered the close frame but keeps the
                    # socket open; an application would drop it now.
                    ws.shutdown()  # type: ignore[no-untyped-call]
                    return
        except (websocket.WebSocketException, OSError):
            return

    async def _send_ping(self, data: bytes) -> None:
        await asyncio.to_thread(self.ws.ping, data)

    async def send_fragments(self, pieces: list[bytes], binary: bool) -> None:
        """Send one message, a frame per piece, built by hand."""
        opcode = websocket.ABNF.OPCODE_BINARY if binary else websocket.ABNF.OPCODE_TEXT
        frames = [
            websocket.ABNF.create_frame(
                piece,
                opcode if index == 0 else websocket.ABNF.OPCODE_CONT,
                fin=int(index == len(pieces) - 1),
            )
            for index, piece in enumerate(pieces)
        ]
        for frame in frames:
            await asyncio.to_thread(self.ws.send_frame, frame)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame; the reading thread gets the reply."""
        await asyncio.to_thread(self.ws.send_close, code, reason)

    async def aclose(self) -> None:
        """Drop the socket and wait for the reading thread."""
        self.ws.abort()  # type: ignore[no-untyped-call]
        await asyncio.to_thread(self._thread.join, TIMEOUT)
        self.ws.shutdown()  # type: ignore[no-untyped-call]


class NodePeer(Peer):
    """Node's ``ws`` in a child process: JSON commands on stdin, JSON events on stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        super().__init__()
        self.process = process
        self._opened: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, script: str, *, ready: bool, **options: str) -> tuple[NodePeer, str]:
        """Run ``script`` with ``--name=value`` options; return the peer and its READY line.

        Without ``ready``, the script prints no such line: the empty string stands for it.
        """
        process = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / script),
            *(f"--{name}={value}" for name, value in options.items()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # Lines announce lengths, never payloads: the default line limit is plenty.
        )
        first = ""
        try:
            assert process.stdout is not None
            if ready:
                async with asyncio.timeout(TIMEOUT):
                    first = (await process.stdout.readline()).decode()
        except BaseException:
            process.kill()
            await process.wait()
            raise
        return cls(process), first

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            kind = event["event"]
            if kind == "open":
                self.subprotocol = event["protocol"] or None
                if not self._opened.done():
                    self._opened.set_result(event)
            elif kind == "message":
                self.messages.append((event["binary"], event["length"]))
            elif kind == "pong":
                self.pongs.append(base64.b64decode(event["data"]))
            elif kind == "close":
                self._note_close(event["code"], event["reason"])
            elif kind == "error":
                self.errors.append(event["message"])
            self._changed.set()
        if not self._opened.done():
            self._opened.set_exception(RuntimeError(f"node exited before opening: {self.errors}"))

    async def opened(self) -> dict[str, Any]:
        """Wait until the connection is open; return what ws says about it."""
        async with asyncio.timeout(TIMEOUT):
            return await asyncio.shield(self._opened)

    async def command(self, cmd: str, **fields: Any) -> None:
        """Send one command to the script."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def _send_ping(self, data: bytes) -> None:
        await self.command("ping", data=base64.b64encode(data).decode())

    async def send_fragments(self, pieces: list[bytes], binary: bool) -> None:
        """Send one message, a frame per piece (``fin: false`` but the last)."""
        encoded = [base64.b64encode(piece).decode() for piece in pieces]
        await self.command("fragments", pieces=encoded, binary=binary)

    async def close(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        await self.command("close", code=code, reason=reason)

    async def aclose(self) -> None:
        """Kill the process and reap it."""
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self._opened.done():
            self._opened.exception()  # Seen here if nobody waited for the opening.


def _websockets_server_options(compression: bool) -> dict[str, Any]:
    """The options of websockets' servers (asyncio and threading) as peers of tether's clients."""
    return {
        "compression": "deflate" if compression else None,
        "subprotocols": [websockets.Subprotocol(name) for name in SERVER_SUBPROTOCOLS],
        "max_size": MAX_SIZE,
        "ping_interval": None,
    }


def _websockets_client_options(compression: bool) -> dict[str, Any]:
    """The options of websockets' clients (asyncio and threading) as peers of tether's servers."""
    return {
        "compression": "deflate" if compression else None,
        "subprotocols": [websockets.Subprotocol(name) for name in CLIENT_SUBPROTOCOLS],
        "max_size": MAX_SIZE,
        "ping_interval": None,
        "proxy": None,
    }


def _loopback_port(sockets: Any) -> int:
    port: int = next(iter(sockets)).getsockname()[1]
    return port


async def _tether_server(
    compression: bool, max_size: int
) -> tuple[Server, asyncio.Future[ServerConnection], str]:
    """Start tether's server; give it, the future of its first connection and its URI."""
    accepted: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()

    async def handler(ws: ServerConnection) -> None:
        if not accepted.done():
            accepted.set_result(ws)
        # The test drives the connection; the handler only keeps it open.
        await ws.wait_closed()

    server = await tether.serve(
        handler,
        "127.0.0.1",
        0,
        compression="deflate" if compression else None,
        subprotocols=SERVER_SUBPROTOCOLS,
        max_size=max_size,
        ping_interval=None,
        close_timeout=TIMEOUT,
    )
    return server, accepted, f"ws://127.0.0.1:{_loopback_port(server.sockets)}/"


async def _tether_client(uri: str, compression: bool, max_size: int) -> Connection:
    return await tether.connect(
        uri,
        compression="deflate" if compression else None,
        subprotocols=CLIENT_SUBPROTOCOLS,
        max_size=max_size,
        ping_interval=None,
        close_timeout=TIMEOUT,
        open_timeout=TIMEOUT,
    )


async def _accepted(future: asyncio.Future[ServerConnection]) -> ServerConnection:
    async with asyncio.timeout(TIMEOUT):
        return await future


@contextlib.asynccontextmanager
async def open_pair(
    library: str, peer_role: str, compression: bool, max_size: int = MAX_SIZE
) -> AsyncIterator[tuple[Connection, Peer]]:
    """Connect tether and ``library``, the latter as ``peer_role``; yield (tether's end, peer).

    ``max_size`` limits the messages tether accepts; the peer takes up to :data:`MAX_SIZE`.
    """
    cleanup = contextlib.AsyncExitStack()
    async with cleanup:
        if peer_role == "client":
            server, accepted, uri = await _tether_server(compression, max_size)
            cleanup.push_async_callback(server.wait_closed)
            cleanup.callback(server.close)
            peer = await _connect_peer(library, uri, compression, cleanup)
            ws: Connection = await _accepted(accepted)
        else:
            peer_uri, peer_future = await _serve_peer(library, compression, cleanup)
            ws = await _tether_client(peer_uri, compression, max_size)
            cleanup.push_async_callback(ws.close)
            peer = await peer_future()
        cleanup.push_async_callback(peer.aclose)
        cleanup.push_async_callback(ws.close)
        yield ws, peer


async def _connect_peer(
    library: str, uri: str, compression: bool, cleanup: contextlib.AsyncExitStack
) -> Peer:
    """Connect a client of ``library`` to ``uri``."""
    if library == "websockets":
        client = await websockets.asyncio.client.connect(
            uri, **_websockets_client_options(compression)
        )
        return WebsocketsPeer(client)
    if library == "websockets-sync":
        options = _websockets_client_options(compression)
        sync_client = await asyncio.to_thread(
            lambda: websockets.sync.client.connect(uri, **options)
        )
        # Entering the context is how websockets 17 wants connect() used; the
        # peer closes the connection itself at teardown.
        return WebsocketsSyncPeer(sync_client.__enter__())
    if library == "aiohttp":
        session = aiohttp.ClientSession()
        cleanup.push_async_callback(session.close)
        aiohttp_client = await session.ws_connect(
            uri,
            protocols=CLIENT_SUBPROTOCOLS,
            compress=15 if compression else 0,
            max_msg_size=MAX_SIZE,
            autoping=False,
        )
        return AiohttpPeer(aiohttp_client)
    if library == "websocket-client":
        blocking = await asyncio.to_thread(
            websocket.create_connection,
            uri,
            timeout=TIMEOUT,
            subprotocols=CLIENT_SUBPROTOCOLS,
            # Its UTF-8 check is a pure-Python loop, seconds per MiB; the echo
            # thread decodes every text message strictly instead.
            skip_utf8_validation=True,
        )
        return WebsocketClientPeer(blocking)
    assert library == "node-ws", library
    node, _ = await NodePeer.start(
        "client.js",
        ready=False,
        url=uri,
        deflate=str(compression).lower(),
        protocols=",".join(CLIENT_SUBPROTOCOLS),
    )
    cleanup.push_async_callback(node.aclose)
    await node.opened()
    return node


async def _serve_peer(
    library: str, compression: bool, cleanup: contextlib.AsyncExitStack
) -> tuple[str, Callable[[], Awaitable[Peer]]]:
    """Start a server of ``library``; give its URI and a coroutine to get its peer."""
    loop = asyncio.get_running_loop()
    if library == "websockets":
        peers: asyncio.Future[Peer] = loop.create_future()

        async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
            peer = WebsocketsPeer(ws)
            peers.set_result(peer)
            await peer._echo

        server = await websockets.asyncio.server.serve(
            handler,
            "127.0.0.1",
            0,
            **_websockets_server_options(compression),
        )
        cleanup.push_async_callback(server.wait_closed)
        cleanup.callback(server.close)
        return f"ws://127.0.0.1:{_loopback_port(server.sockets)}/", lambda: _within(peers)
    if library == "websockets-sync":
        sync_peers: asyncio.Future[Peer] = loop.create_future()

        def sync_handler(ws: websockets.sync.server.ServerConnection) -> None:
            # The handler must last as long as the connection: wait for the echo thread.
            done = threading.Event()
            loop.call_soon_threadsafe(lambda: sync_peers.set_result(WebsocketsSyncPeer(ws, done)))
            done.wait(TIMEOUT * 3)

        sync_server = websockets.sync.server.serve(
            sync_handler,
            "127.0.0.1",
            0,
            **_websockets_server_options(compression),
        )
        thread = threading.Thread(target=sync_server.serve_forever, daemon=True)
        thread.start()
        cleanup.push_async_callback(asyncio.to_thread, thread.join, TIMEOUT)
        cleanup.callback(sync_server.shutdown)
        port = sync_server.socket.getsockname()[1]
        return f"ws://127.0.0.1:{port}/", lambda: _within(sync_peers)
    if library == "aiohttp":
        aiohttp_peers: asyncio.Future[Peer] = loop.create_future()

        async def aiohttp_handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(
                protocols=SERVER_SUBPROTOCOLS,
                compress=compression,
                max_msg_size=MAX_SIZE,
                autoping=False,
            )
            await ws.prepare(request)
            peer = AiohttpPeer(ws)
            aiohttp_peers.set_result(peer)
            await peer.finished
            return ws

        app = web.Application()
        app.router.add_get("/", aiohttp_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        cleanup.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"ws://127.0.0.1:{port}/", lambda: _within(aiohttp_peers)
    assert library == "node-ws", library
    node, first = await NodePeer.start(
        "echo_server.js",
        ready=True,
        port="0",
        deflate=str(compression).lower(),
        protocols=",".join(SERVER_SUBPROTOCOLS),
    )
    cleanup.push_async_callback(node.aclose)
    assert first.startswith("READY "), first

    async def node_peer() -> Peer:
        await node.opened()
        return node

    return f"ws://127.0.0.1:{int(first.split()[1])}/", node_peer


async def _within(future: asyncio.Future[Peer]) -> Peer:
    async with asyncio.timeout(TIMEOUT):
        return await future
