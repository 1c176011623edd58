"""Fixtures of the conformance tests: every case plays against tether's server and client.

The ``harness`` fixture is parametrized over tether's role. As a server,
tether runs an echo handler and the peer connects as a client; as a client,
tether connects to the peer, which answers the handshake by hand, and runs
an echo loop. Either way the case sees a :class:`~tests.conformance.peer.Peer`
and the tether connection behind it.

Like tests/asyncio, every case runs on the default event loop and on uvloop:
pausing, half-closing and aborting transports differ between the two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import pytest
import uvloop

import tether
from tests.conformance.peer import (
    DeflateParams,
    Peer,
    PeerServer,
    accept_response,
    connect_peer,
)
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import ConnectionClosed
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each case once per event loop implementation."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


TETHER_OPTIONS: dict[str, Any] = {
    # Keepalive pings would be frames the cases do not expect.
    "ping_interval": None,
    "compression": None,
    "close_timeout": 5,
}


async def _echo(ws: Connection) -> None:
    with suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


class Harness:
    """Opens connections between the peer and tether in the role under test."""

    def __init__(self, tether_role: str) -> None:
        self.tether_role = tether_role
        self._peers: list[Peer] = []
        self._servers: list[Server] = []
        self._peer_servers: list[PeerServer] = []
        self._clients: list[asyncio.Task[None]] = []
        self._connection: asyncio.Future[Connection] | None = None

    @property
    def tether_is_server(self) -> bool:
        """Whether tether plays the server, and the peer the client."""
        return self.tether_role == "server"

    async def open(
        self,
        *,
        deflate: DeflateParams | str | None = None,
        **options: Any,
    ) -> Peer:
        """Connect the peer and tether; return the peer once the handshake is done.

        ``deflate`` negotiates permessage-deflate: the peer offers it to
        tether's server, or answers tether's client with it; a string is
        the raw header value, to send invalid ones. Other keywords
        are options of :func:`tether.serve` or :func:`tether.connect`.
        """
        options = {**TETHER_OPTIONS, **options}
        loop = asyncio.get_running_loop()
        connection: asyncio.Future[Connection] = loop.create_future()
        self._connection = connection
        if self.tether_is_server:
            if deflate is not None:
                options["compression"] = "deflate"
                options.setdefault("extensions", [ServerPerMessageDeflateFactory()])

            async def handler(ws: ServerConnection) -> None:
                if not connection.done():
                    connection.set_result(ws)
                await _echo(ws)

            server = await tether.serve(handler, "127.0.0.1", 0, **options)
            self._servers.append(server)
            host, port = next(iter(server.sockets)).getsockname()[:2]
            offer = deflate if deflate is None or isinstance(deflate, str) else deflate.header()
            peer, head = await connect_peer(host, port, extensions=offer)
            assert peer is not None, head
        else:
            if deflate is not None:
                options["compression"] = "deflate"
                options.setdefault("extensions", [ClientPerMessageDeflateFactory()])
            answer = deflate if deflate is None or isinstance(deflate, str) else deflate.header()
            peer_server = PeerServer(accept_response(answer))
            self._peer_servers.append(peer_server)
            uri = await peer_server.start()

            async def client() -> None:
                try:
                    ws = await tether.connect(uri, **options)
                except Exception as exc:
                    connection.set_exception(exc)
                    return
                connection.set_result(ws)
                await _echo(ws)

            self._clients.append(loop.create_task(client()))
            async with asyncio.timeout(5):
                peer = await peer_server.peers.get()
        self._peers.append(peer)
        return peer

    async def connection(self) -> Connection:
        """The tether side of the connection opened last."""
        assert self._connection is not None
        async with asyncio.timeout(5):
            return await self._connection

    async def finish(self, peer: Peer, code: int = 1000, reason: str = "") -> None:
        """Close from the peer's side and check the whole closing handshake.

        tether echoes the close frame. As a server it then closes TCP; as a
        client it waits for the server to, so the peer closes TCP itself.
        Nothing comes after tether's close frame either way.
        """
        await peer.send_close(code, reason)
        await self.expect_closing_handshake(peer, code, reason)

    async def expect_closing_handshake(self, peer: Peer, code: int, reason: str = "") -> None:
        """Check tether's answer to a close frame the peer sent: see :meth:`finish`."""
        await peer.expect_close(code)
        # Reasons are echoed too, or not at all: RFC 6455 leaves it open.
        assert peer.close is not None
        assert peer.close.reason in ("", reason), peer.close
        await self.end_tcp(peer)
        ws = await self.connection()
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == code

    async def end_tcp(self, peer: Peer) -> None:
        """After the closing handshake, check who closes TCP, and close it if it's the peer.

        A tether server closes TCP first (RFC 6455 section 7.1.1); a tether
        client waits for the server, sending nothing more meanwhile.
        """
        if self.tether_is_server:
            await peer.expect_eof()
        else:
            await peer.expect_no_eof()
            peer.check_quiet()
            peer.close_tcp()

    async def close(self) -> None:
        """Tear everything down."""
        for peer in self._peers:
            await peer.stop()
        for peer_server in self._peer_servers:
            await peer_server.stop()
        for task in self._clients:
            async with asyncio.timeout(10):
                await task
        for server in self._servers:
            server.close()
            await server.wait_closed()


@pytest.fixture(params=["server", "client"], ids=["tether-server", "tether-client"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Connect the adversarial peer to tether, in each of tether's roles."""
    harness = Harness(request.param)
    try:
        yield harness
    finally:
        await harness.close()
