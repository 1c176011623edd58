"""Nothing of a connection outlives it, whichever receiving path its messages took.

The receiving paths of the asyncio API are the coroutine connection's
(``receive_messages``, then the engine's general path) and the listener's
(``deliver_messages``, then the engine's general path), plain or compressed
(the C ``Deflater`` and ``Inflater``). Each round opens clients of every kind
against a coroutine server and a listener server, has each send whole
messages (several in one write, so that one read holds several), a
fragmented message and a ping, then end one of three ways: its own close, a
server callback that raises (1011), or one that closes from ``on_message``.
After the round and a garbage collection, no connection, engine, future,
listener or zlib stream may be left beyond what was there before it.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

import tether
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import ConnectionClosed
from tether.protocol.connection import Connection as Engine
from tether.protocol.speedups import speedups

from .pairs import uri_of
from .raw_peer import RawPeer, raw_client

CLIENTS = 6
"""Clients of each kind (listener or coroutine, compressed or not) per server and round."""

ENDINGS = ("close", "raise", "close-from-callback")

MESSAGES: list[str | bytes] = ["small", b"\x00binary", "é" * 300, bytes(70_000), ""]


class ServerEcho(tether.Listener):
    """Echo each message; raise on "raise", close on "close-from-callback"."""

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        if message == "raise":
            raise ValueError("on purpose: the connection closes with 1011")
        if message == "close-from-callback":
            closing = asyncio.ensure_future(ws.close(4000))
            closing.add_done_callback(_closings.discard)
            _closings.add(closing)
            return
        ws.send_nowait(message)


_closings: set[asyncio.Future[None]] = set()


async def coroutine_echo(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "raise":
            raise ValueError("on purpose: the connection closes with 1011")
        if message == "close-from-callback":
            await ws.close(4000)
            return
        await ws.send(message)


class ClientCollector(tether.Listener):
    """Keep the echoes of a listener client; note its closing."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        self.messages.append(message)
        if len(self.messages) >= len(MESSAGES) + 1:
            self.arrived.set()

    def on_close(self, ws: Connection) -> None:
        self.closed.set()


async def one_client(uri: str, listening: bool, compressed: bool, ending: str) -> None:
    """Open a client, exchange, end as ``ending`` says, and check what came back."""
    options: dict[str, Any] = {"compression": "deflate" if compressed else None}
    collector = ClientCollector() if listening else None
    if collector is not None:
        options["listener"] = collector
    async with tether.connect(uri, **options) as ws:
        # Whole messages in one write: the server reads several in one read.
        for message in MESSAGES:
            ws.send_nowait(message)
        await ws.send(["frag", "mented"])
        await ws.ping()
        expected = [*MESSAGES, "fragmented"]
        if collector is not None:
            await collector.arrived.wait()
            assert collector.messages == expected
        else:
            assert [await ws.recv() for _ in expected] == expected
        if ending != "close":
            await ws.send(ending)
            if collector is not None:
                await collector.closed.wait()
            else:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
            assert ws.close_code == (4000 if ending == "close-from-callback" else 1011)


def census() -> Counter[str]:
    """The live objects of the kinds a connection makes, after a full collection."""
    gc.collect()
    counts: Counter[str] = Counter()
    kinds: list[tuple[str, Any]] = [
        ("connection", Connection),
        ("engine", Engine),
        ("future", asyncio.Future),
        ("listener", tether.Listener),
    ]
    for item in gc.get_objects():
        for name, kind in kinds:
            if isinstance(item, kind):
                counts[name] += 1
    if speedups is not None:
        # The accelerator's zlib streams are not tracked by the collector:
        # counted from the extensions that hold them.
        counts["zlib"] = sum(
            isinstance(getattr(ext, name, None), (speedups.Deflater, speedups.Inflater))
            for item in gc.get_objects()
            if isinstance(item, Engine)
            for ext in item.extensions
            for name in ("_encoder", "_decoder")
        )
    return counts


@asynccontextmanager
async def servers() -> AsyncIterator[list[Server]]:
    async with (
        tether.serve(coroutine_echo, "127.0.0.1", 0) as coroutine_server,
        tether.listen(ServerEcho, "127.0.0.1", 0) as listener_server,
    ):
        yield [coroutine_server, listener_server]


async def round_of_clients(servers: list[Server]) -> None:
    kinds = itertools.product(servers, (True, False), (True, False), ENDINGS)
    async with asyncio.timeout(60):
        await asyncio.gather(
            *(
                one_client(uri_of(server), listening, compressed, ending)
                for server, listening, compressed, ending in kinds
                for _ in range(CLIENTS // 2)
            )
        )
        # The servers learn that TCP closed a moment after the clients do.
        while any(server.connections for server in servers) or _closings:
            await asyncio.sleep(0.01)
    # The loop holds the handle that resumed this task while it runs, and
    # with it what that handle woke the task for: resume from a bare sleep.
    await asyncio.sleep(0)


@pytest.fixture
def quiet() -> Iterator[None]:
    """No records of the failing callbacks: a captured record's traceback holds the connection."""
    logger = logging.getLogger("tether")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@pytest.mark.usefixtures("quiet")
async def test_no_connection_outlives_its_round() -> None:
    async with servers() as both:
        # A first round makes what stays for good (caches, lazily built tables).
        await round_of_clients(both)
        baseline = census()
        await round_of_clients(both)
        await round_of_clients(both)
        after = census()
    assert after == baseline


ENDINGS_OF_PEERS = ("close, TCP kept", "close, then FIN", "close, then RST", "FIN", "RST", "deaf")
"""How raw peers end: after their close frame, or without one; "deaf" never
answers the server's close frame nor ends TCP."""


async def round_of_bad_peers(servers: list[Server]) -> None:
    """Peers end as ENDINGS_OF_PEERS say; wait until the servers let go of every connection."""
    peers: list[RawPeer] = []
    for server in servers:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        for ending in ENDINGS_OF_PEERS * 2:
            peer = await raw_client(host, port)
            peers.append(peer)
            if ending.startswith("close"):
                peer.engine.send_close(1000)
                await peer.flush()
            elif ending == "deaf":
                # Both servers close on this message: "raise" fails with 1011.
                peer.engine.send_text(b"raise")
                await peer.flush()
            if ending.endswith("FIN"):
                peer.writer.write_eof()
            elif ending.endswith("RST"):
                peer.abort()
    try:
        # Each wait, the half-close after the handshake included, ends by
        # close_timeout at the latest.
        async with asyncio.timeout(10):
            while any(server._connections or server._handlers for server in servers):
                await asyncio.sleep(0.01)
    finally:
        for peer in peers:
            peer.abort()
    del peers
    await asyncio.sleep(0)


@pytest.mark.usefixtures("quiet")
async def test_no_connection_outlives_peers_that_end_badly() -> None:
    async with (
        tether.serve(coroutine_echo, "127.0.0.1", 0, close_timeout=0.3) as coroutine_server,
        tether.listen(ServerEcho, "127.0.0.1", 0, close_timeout=0.3) as listener_server,
    ):
        both = [coroutine_server, listener_server]
        await round_of_bad_peers(both)
        baseline = census()
        await round_of_bad_peers(both)
        after = census()
    assert after == baseline
