"""tether's servers under attack, each with a bystander, and the raw handshake requests.

Every server runs on loopback, asyncio or threading. A well-behaved tether
client, the bystander, connects before the case runs and exchanges a message
after it, with the attack's connections possibly still open: an attack on
one connection must not stall the others. The bystander asks for
``/bystander`` and gets an echo handler, whatever handler the case runs.

The request helpers build a valid opening handshake line by line, for the
cases to corrupt, and read what the servers answer over a plain socket.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    suppress,
)
from dataclasses import dataclass, field
from typing import Any, Literal

import tether
import tether.sync
from tests.conformance.peer import Peer, ReadHead, connect_peer, read_head
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.attributes import ConnectionAttributes
from tether.exceptions import ConnectionClosed, ConnectionClosedError

__all__ = [
    "DEADLINE",
    "ServerKind",
    "Target",
    "Tracing",
    "attack",
    "check_unanswered_close",
    "echo_attack",
    "echo_server",
    "exchange",
    "expect_refused",
    "open_peer",
    "request",
    "request_lines",
    "server_with_bystander",
    "status_of",
    "sync_attack",
    "sync_echo",
    "sync_echo_server",
    "sync_exchange",
    "sync_server_with_bystander",
]

DEADLINE = 10.0
"""Bounds every wait of a case: far above what any of them needs."""

BYSTANDER = "/bystander"


async def echo(ws: Connection) -> None:
    """Send every message back until the connection closes."""
    with suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


def sync_echo(ws: tether.sync.ServerConnection) -> None:
    """The threading twin of :func:`echo`."""
    with suppress(ConnectionClosed):
        for message in ws:
            ws.send(message)


# The asyncio server


@asynccontextmanager
async def server_with_bystander(
    handler: Callable[[ServerConnection], Awaitable[None]], **options: Any
) -> AsyncIterator[tuple[Server, int]]:
    """Run ``handler`` on loopback; a bystander echoes through it before and after the case."""

    async def dispatch(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == BYSTANDER:
            await echo(ws)
        else:
            await handler(ws)

    options = {"ping_interval": None, **options}
    server = await tether.serve(dispatch, "127.0.0.1", 0, **options)
    port = next(iter(server.sockets)).getsockname()[1]
    try:
        uri = f"ws://127.0.0.1:{port}{BYSTANDER}"
        # It offers the server's subprotocols, if any, as it must to get in.
        subprotocols = options.get("subprotocols")
        async with tether.connect(uri, ping_interval=None, subprotocols=subprotocols) as bystander:
            await bystander.send("before")
            async with asyncio.timeout(DEADLINE):
                assert await bystander.recv() == "before"
            yield server, port
            await bystander.send("after")
            async with asyncio.timeout(DEADLINE):
                assert await bystander.recv() == "after"
    finally:
        server.close()
        await server.wait_closed()


def echo_server(**options: Any) -> AbstractAsyncContextManager[tuple[Server, int]]:
    """An asyncio echo server with a bystander; no compression unless asked."""
    return server_with_bystander(echo, **{"compression": None, **options})


# The threading server


@contextmanager
def sync_server_with_bystander(
    handler: Callable[[tether.sync.ServerConnection], None], **options: Any
) -> Iterator[tuple[tether.sync.Server, int]]:
    """The threading twin of :func:`server_with_bystander`.

    The bystander is a threading client too. Its exchanges block the caller
    for a moment: a case that drives a peer from an event loop stops that
    peer before leaving the block, or the server's shutdown would wait for
    the peer's answer to its close frame.
    """

    def dispatch(ws: tether.sync.ServerConnection) -> None:
        if ws.request is not None and ws.request.path == BYSTANDER:
            sync_echo(ws)
        else:
            handler(ws)

    options = {"ping_interval": None, **options}
    server = tether.sync.serve(dispatch, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]
    try:
        uri = f"ws://127.0.0.1:{port}{BYSTANDER}"
        with tether.sync.connect(
            uri,
            ping_interval=None,
            open_timeout=DEADLINE,
            subprotocols=options.get("subprotocols"),
        ) as bystander:
            bystander.send("before")
            assert bystander.recv(timeout=DEADLINE) == "before"
            yield server, port
            bystander.send("after")
            assert bystander.recv(timeout=DEADLINE) == "after"
    finally:
        server.shutdown()
        thread.join(DEADLINE)
    assert not thread.is_alive(), "serve_forever did not return after shutdown"


def sync_echo_server(**options: Any) -> AbstractContextManager[tuple[tether.sync.Server, int]]:
    """A threading echo server with a bystander; no compression unless asked."""
    return sync_server_with_bystander(sync_echo, **{"compression": None, **options})


# Attacks after the handshake

ServerKind = Literal["asyncio", "threading"]
"""Which of tether's servers a case plays against."""


async def open_peer(port: int, extensions: str | None = None) -> Peer:
    """Connect the raw peer to the server on ``port``; check that it got in."""
    peer, head = await connect_peer("127.0.0.1", port, extensions=extensions)
    assert peer is not None, head
    return peer


@asynccontextmanager
async def connected_peer(port: int, extensions: str | None = None) -> AsyncIterator[Peer]:
    """:func:`open_peer`, stopped on exit.

    The server drops TCP only once the peer answers its close, or after
    close_timeout: stopping the peer spares the case that wait, and lets a
    threading server's shutdown proceed.
    """
    peer = await open_peer(port, extensions)
    try:
        yield peer
    finally:
        await peer.stop()


@asynccontextmanager
async def attack(
    handler: Callable[[ServerConnection], Awaitable[None]],
    *,
    extensions: str | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Server, Peer]]:
    """Run ``handler`` on an asyncio server with a bystander; connect the raw peer to it."""
    async with (
        server_with_bystander(handler, **options) as (server, port),
        connected_peer(port, extensions) as peer,
    ):
        yield server, peer


@asynccontextmanager
async def sync_attack(
    handler: Callable[[tether.sync.ServerConnection], None],
    *,
    extensions: str | None = None,
    **options: Any,
) -> AsyncIterator[tuple[tether.sync.Server, Peer]]:
    """The threading twin of :func:`attack`; the peer is stopped before the server shuts down."""
    with sync_server_with_bystander(handler, **options) as (server, port):
        async with connected_peer(port, extensions) as peer:
            yield server, peer


@dataclass
class Target:
    """An echo server of either kind under attack, as a case sees it."""

    server: Server | tether.sync.Server
    peer: Peer
    """The raw peer, connected."""
    connections: list[ConnectionAttributes] = field(default_factory=list)
    """The peer's connections on the server's side, as their handlers got them."""

    async def connection(self) -> ConnectionAttributes:
        """The peer's connection on the server's side, once its handler has it."""
        async with asyncio.timeout(DEADLINE):
            while not self.connections:
                await asyncio.sleep(0.01)
        (ws,) = self.connections
        return ws

    async def wait_closed(self, ws: ConnectionAttributes) -> None:
        """Wait until the server's side ``ws`` is closed; fail after :data:`DEADLINE`."""
        if isinstance(ws, Connection):
            async with asyncio.timeout(DEADLINE):
                await ws.wait_closed()
        else:
            assert isinstance(ws, tether.sync.ServerConnection), ws
            # In a worker thread: the loop must go on answering the bystander.
            assert await asyncio.to_thread(ws.wait_closed, DEADLINE), "still open"


@asynccontextmanager
async def echo_attack(
    kind: ServerKind, *, extensions: str | None = None, **options: Any
) -> AsyncIterator[Target]:
    """An echo server of ``kind`` with a bystander, and the raw peer connected to it."""
    connections: list[ConnectionAttributes] = []
    if kind == "asyncio":

        async def handler(ws: ServerConnection) -> None:
            connections.append(ws)
            await echo(ws)

        async with attack(handler, extensions=extensions, **options) as (server, peer):
            yield Target(server, peer, connections)
    else:

        def sync_handler(ws: tether.sync.ServerConnection) -> None:
            connections.append(ws)
            sync_echo(ws)

        async with sync_attack(sync_handler, extensions=extensions, **options) as (
            sync_server,
            peer,
        ):
            yield Target(sync_server, peer, connections)


def check_unanswered_close(ws: ConnectionAttributes, code: int) -> None:
    """Check that ``ws``, asyncio or threading, sent a close with ``code`` and got none back."""
    closed = ws.protocol.close_exc()
    assert isinstance(closed, ConnectionClosedError), closed
    assert closed.sent is not None, closed
    assert closed.sent.code == code, closed
    assert closed.rcvd is None, closed
    assert ws.close_code == 1006


class Tracing:
    """tracemalloc's peak over a block, of every thread; stopped however the block ends."""

    def __init__(self) -> None:
        self.peak = 0

    def __enter__(self) -> Tracing:
        tracemalloc.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# Raw handshake requests


def request_lines(port: int) -> list[bytes]:
    """The lines of a valid handshake request, without the final empty line."""
    key = base64.b64encode(os.urandom(16))
    return [
        b"GET / HTTP/1.1",
        b"Host: 127.0.0.1:%d" % port,
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
    ]


def request(port: int, *extra: bytes) -> bytes:
    """A handshake request with ``extra`` header lines added at the end."""
    return b"\r\n".join([*request_lines(port), *extra]) + b"\r\n\r\n"


def status_of(head: ReadHead) -> int:
    """The status code of a response head."""
    return int(head.start_line.split(" ")[1])


async def exchange(port: int, data: bytes) -> tuple[ReadHead, bool]:
    """Send ``data`` as the request; return the response and whether TCP closed after it.

    A refusal's body is read per its ``Content-Length`` and left in
    ``rest``; a 101 is returned as soon as its head is read.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with suppress(ConnectionError):
            await writer.drain()
        head = await read_head(reader)
        closed = False
        if status_of(head) != 101:
            async with asyncio.timeout(DEADLINE):
                (length,) = head.get("Content-Length")
                while len(head.rest) < int(length):
                    chunk = await reader.read(4096)
                    assert chunk, "TCP closed before the end of the body"
                    head.rest += chunk
                closed = await reader.read(1) == b""
        return head, closed
    finally:
        writer.transport.abort()
        # Let the loop close the socket now: a threading server's shutdown
        # may block the loop next, and wait for this connection to end.
        with suppress(Exception):
            await writer.wait_closed()


async def expect_refused(port: int, data: bytes, status: int) -> ReadHead:
    """Check that tether answers ``data`` with ``status`` and closes TCP."""
    head, closed = await exchange(port, data)
    assert status_of(head) == status, head
    assert closed, "tether kept TCP open after refusing the handshake"
    return head


def sync_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` with a blocking socket; return all tether sends until it closes TCP."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(data)
        received = b""
        for _ in range(1000):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received
