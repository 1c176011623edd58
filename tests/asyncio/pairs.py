"""A connected tether client and server-side connection, seen from either side.

Behaviour that both roles share is tested once and run for both: a test asks
for ``ours`` (the connection under test) and ``theirs`` (its peer), and the
``side`` parameter says whether ``ours`` is the client or the server side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import pytest

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.protocol.connection import State

from .raw_peer import RawPeer, raw_client, raw_server

__all__ = [
    "SIDES",
    "Pair",
    "ServerFactory",
    "Side",
    "method_fixture",
    "open_pair",
    "open_raw_pair",
    "until",
    "uri_of",
]

ServerFactory = Callable[..., Awaitable[Server]]
"""Starts a server on loopback with the given handler and options (the start_server fixture)."""


def uri_of(server: Server, path: str = "/") -> str:
    """The ws:// URI of a server listening on loopback."""
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"ws://{host}:{port}{path}"


Side = Literal["client", "server"]
SIDES: tuple[Side, ...] = ("client", "server")


class Pair:
    """Both ends of one connection, with ``ours`` on the side under test."""

    def __init__(
        self, side: Side, client: ClientConnection, server_side: ServerConnection, server: Server
    ) -> None:
        self.side = side
        self.client = client
        self.server_side = server_side
        self.server = server
        self.ours: Connection = client if side == "client" else server_side
        self.theirs: Connection = server_side if side == "client" else client


@asynccontextmanager
async def open_pair(
    start_server: ServerFactory,
    side: Side,
    *,
    ours: dict[str, Any] | None = None,
    theirs: dict[str, Any] | None = None,
    both: dict[str, Any] | None = None,
) -> AsyncIterator[Pair]:
    """Connect a client to a new server and yield both ends.

    ``ours`` and ``theirs`` are options for each end (``connect`` options for
    the client, ``serve`` options for the server); ``both`` go to each. The
    server's handler holds its connection open until the connection closes,
    so only the test decides how the connection ends.
    """
    client_options = dict(both or {})
    server_options = dict(both or {})
    client_options.update((ours if side == "client" else theirs) or {})
    server_options.update((theirs if side == "client" else ours) or {})

    handed_over: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await handed_over.put(ws)
        await ws.wait_closed()

    server = await start_server(handler, **server_options)
    client = await tether.connect(uri_of(server), **client_options)
    server_side: ServerConnection | None = None
    try:
        async with asyncio.timeout(5):
            server_side = await handed_over.get()
        yield Pair(side, client, server_side, server)
    finally:
        # Abort rather than close: a test may have left a side unable to
        # finish a closing handshake, and teardown must not wait for it.
        for connection in (client, server_side):
            if connection is not None and connection.state is not State.CLOSED:
                assert connection.transport is not None
                connection.transport.abort()
        async with asyncio.timeout(5):
            await client.wait_closed()


@asynccontextmanager
async def open_raw_pair(
    start_server: ServerFactory, side: Side, **options: Any
) -> AsyncIterator[tuple[Connection, RawPeer]]:
    """Yield a tether connection on ``side`` and a hand-driven peer on the other end.

    ``options`` go to ``connect`` or ``serve``, whichever makes ours.
    """
    if side == "client":
        async with raw_server() as (uri, peers):
            client = await tether.connect(uri, **options)
            try:
                async with asyncio.timeout(5):
                    peer = await peers.get()
                yield client, peer
            finally:
                await _drop(client)
        return

    handed_over: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await handed_over.put(ws)
        await ws.wait_closed()

    server = await start_server(handler, **options)
    host, port = next(iter(server.sockets)).getsockname()[:2]
    peer = await raw_client(host, port)
    try:
        async with asyncio.timeout(5):
            server_side = await handed_over.get()
        try:
            yield server_side, peer
        finally:
            await _drop(server_side)
    finally:
        peer.abort()


async def _drop(connection: Connection) -> None:
    if connection.state is not State.CLOSED:
        assert connection.transport is not None
        connection.transport.abort()
    async with asyncio.timeout(5):
        await connection.wait_closed()


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, polling; fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


def method_fixture(attribute: str, implementations: dict[str, Callable[[], Any]]) -> Any:
    """An ``implementation`` fixture: ``Connection.<attribute>`` is each of ``implementations``.

    Each test using it (or ``pair`` and ``stalled``, which use it) runs once
    per name of ``implementations``, whose value makes the method: the
    accelerator's and the Python one, whose behaviour must be the same.
    """

    @pytest.fixture(params=sorted(implementations))
    def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
        """Which method the connections use: each test runs with each implementation."""
        monkeypatch.setattr(Connection, attribute, implementations[request.param]())
        return request.param  # type: ignore[no-any-return]

    return implementation
