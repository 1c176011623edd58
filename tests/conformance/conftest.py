"""Fixtures of the conformance tests: every case plays against tether's server and client.

The ``harness`` fixture is parametrized over tether's role. As a server,
tether runs an echo handler and the peer connects as a client; as a client,
tether connects to the peer, which answers the handshake by hand, and runs
an echo loop. Either way the case sees a :class:`~tests.conformance.peer.Peer`
and the tether connection behind it.

The framing, UTF-8, closing and deflate cases also run against tether behind
uvicorn (``--ws tether.asgi:WebSocketProtocol``), serving the Starlette echo
application of :mod:`tests.asgi.apps`: the peer connects as a client, and the
end of each closing handshake is checked against the disconnect the
application saw. Cases marked ``tether_in_process`` need tether in the test's
own process: its connection object, options of ``tether.serve`` that uvicorn
does not have, or the order of events within one event loop.

Like tests/asyncio, every case runs on the default event loop and on uvloop:
pausing, half-closing and aborting transports differ between the two.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import pytest
import uvloop

import tether
from tests.asgi.servers import Uvicorn, UvicornConfig
from tests.conformance.peer import (
    DeflateParams,
    Peer,
    PeerServer,
    accept_response,
    connect_peer,
)
from tests.conformance.trio_side import TrioConnection, TrioSide
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import ConnectionClosed
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol.connection import DEFAULT_MAX_SIZE

UVICORN_MODULES = {
    "test_framing": ("httptools", "uvloop"),
    "test_closing": ("httptools", "uvloop"),
    "test_utf8": ("h11", "asyncio"),
    "test_deflate": ("h11", "asyncio"),
}
"""The modules whose cases also run against tether behind uvicorn, with its
``--http`` and ``--loop``: between them, both parsers and both loops."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "tether_in_process: the case needs tether in the test's process (its connection object, "
        "serve() options, one event loop's ordering): it does not run behind uvicorn",
    )
    config.addinivalue_line(
        "markers",
        "asyncio_only: the case needs tether on the test's own event loop (its transport, "
        "the order of events within one loop): it does not run against tether.trio",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``harness`` over tether's roles, uvicorn's where the case applies."""
    if "harness" not in metafunc.fixturenames:
        return
    roles = ["server", "client"]
    module = metafunc.module.__name__.rpartition(".")[2]
    # tether.trio, in a thread of its own: see tests/conformance/trio_side.py.
    # Not in make test's second run, on the pure-Python fallback: that run
    # checks the engine's own path, which the asyncio roles cover.
    if not os.environ.get("TETHER_NO_SPEEDUPS") and not metafunc.definition.get_closest_marker(
        "asyncio_only"
    ):
        roles += ["trio-server", "trio-client"]
    if module in UVICORN_MODULES and not metafunc.definition.get_closest_marker(
        "tether_in_process"
    ):
        roles.append("uvicorn")
    metafunc.parametrize("harness", roles, indirect=True, ids=[f"tether-{r}" for r in roles])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Behind uvicorn and on trio, run each case once: on the default loop of the test's side.

    The server's event loop is uvicorn's ``--loop``, or trio; the test's loop
    only drives the peer, so a second run on uvloop would test nothing more.
    """
    kept = []
    dropped = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        ids = callspec.id.split("-") if callspec is not None else []
        if ("uvicorn" in ids or "trio" in ids) and "uvloop" in ids:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_names = itertools.count()


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

    def __init__(
        self, tether_role: str, uvicorn_server: Callable[[UvicornConfig], Uvicorn]
    ) -> None:
        self.tether_role = tether_role
        self._uvicorn_server = uvicorn_server
        # The uvicorn process and the connection name of the case, behind uvicorn.
        self._uvicorn: tuple[Uvicorn, str] | None = None
        self.module: str | None = None
        """The name of the case's module, which picks uvicorn's configuration."""
        self._peers: list[Peer] = []
        self._servers: list[Server] = []
        self._peer_servers: list[PeerServer] = []
        self._clients: list[asyncio.Task[None]] = []
        self._connection: asyncio.Future[Connection] | None = None
        self._trio: TrioSide | None = None

    @property
    def tether_is_server(self) -> bool:
        """Whether tether plays the server, and the peer the client."""
        return self.tether_role in ("server", "uvicorn", "trio-server")

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
        if self.tether_role == "uvicorn":
            return await self._open_uvicorn(deflate, **options)
        options = {**TETHER_OPTIONS, **options}
        loop = asyncio.get_running_loop()
        connection: asyncio.Future[Connection] = loop.create_future()
        self._connection = connection
        if self.tether_role.startswith("trio"):
            return await self._open_trio(connection, deflate, options)
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

    async def _open_trio(
        self,
        connection: asyncio.Future[Any],
        deflate: DeflateParams | str | None,
        options: dict[str, Any],
    ) -> Peer:
        """Connect the peer and tether.trio, which runs in a thread of its own."""
        if self._trio is None:
            self._trio = await asyncio.to_thread(TrioSide)
        loop = asyncio.get_running_loop()

        def deliver(ws: TrioConnection) -> None:
            def settle() -> None:
                if not connection.done():
                    connection.set_result(ws)

            loop.call_soon_threadsafe(settle)

        def fail(exc: Exception) -> None:
            loop.call_soon_threadsafe(connection.set_exception, exc)

        if deflate is not None:
            options["compression"] = "deflate"
            factory = (
                ServerPerMessageDeflateFactory
                if self.tether_is_server
                else ClientPerMessageDeflateFactory
            )
            options.setdefault("extensions", [factory()])
        if self.tether_is_server:
            port = await self._trio.serve(deliver, **options)
            offer = deflate if deflate is None or isinstance(deflate, str) else deflate.header()
            peer, head = await connect_peer("127.0.0.1", port, extensions=offer)
            assert peer is not None, head
        else:
            answer = deflate if deflate is None or isinstance(deflate, str) else deflate.header()
            peer_server = PeerServer(accept_response(answer))
            self._peer_servers.append(peer_server)
            uri = await peer_server.start()
            self._trio.connect(uri, deliver, fail, **options)
            async with asyncio.timeout(5):
                peer = await peer_server.peers.get()
        self._peers.append(peer)
        return peer

    async def _open_uvicorn(
        self, deflate: DeflateParams | str | None, *, max_size: int = DEFAULT_MAX_SIZE
    ) -> Peer:
        """Connect the peer to the echo application behind uvicorn."""
        assert self.module is not None
        http, loop = UVICORN_MODULES[self.module]
        # No keepalive pings: frames the cases do not expect. Deflate is
        # uvicorn's default; the peer offers it or not.
        options = ("--ws-max-size", str(max_size), "--ws-ping-interval", "0")
        config = UvicornConfig("tether", http, loop, "starlette", options)
        server = await asyncio.to_thread(self._uvicorn_server, config)
        name = f"conformance-{os.getpid()}-{next(_names)}"
        self._uvicorn = (server, name)
        offer = deflate if deflate is None or isinstance(deflate, str) else deflate.header()
        peer, head = await connect_peer(
            "127.0.0.1", server.port, extensions=offer, path=f"/echo?id={name}"
        )
        assert peer is not None, head
        self._peers.append(peer)
        return peer

    async def _uvicorn_disconnect(self) -> dict[str, Any]:
        """The websocket.disconnect the application behind uvicorn received."""
        assert self._uvicorn is not None
        server, name = self._uvicorn
        async with asyncio.timeout(5):
            while True:
                seen = await asyncio.to_thread(server.seen, name)
                if seen and seen[-1].get("type") == "websocket.disconnect":
                    return seen[-1]  # type: ignore[no-any-return]
                await asyncio.sleep(0.02)

    async def connection(self) -> Connection:
        """The tether side of the connection opened last."""
        assert self.tether_role != "uvicorn", "mark the case tether_in_process"
        assert self._connection is not None
        async with asyncio.timeout(5):
            return await self._connection

    def write_buffer(self, ws: Any) -> Callable[[], int]:
        """What tells how many bytes wait to be written on tether's side of ``ws``.

        The asyncio transport's buffer, or tether.trio's own.
        """
        if isinstance(ws, TrioConnection):
            return lambda: ws.ws._out_size
        transport = ws.transport
        assert transport is not None
        return transport.get_write_buffer_size  # type: ignore[no-any-return]

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
        if self.tether_role == "uvicorn":
            disconnect = await self._uvicorn_disconnect()
            assert disconnect["code"] == code, disconnect
            return
        ws = await self.connection()
        async with asyncio.timeout(5):
            await ws.wait_closed()
        assert ws.close_code == code

    async def end_tcp(self, peer: Peer) -> None:
        """After the closing handshake, check who closes TCP, and close it if it's the peer.

        A tether server closes TCP first (RFC 6455 section 7.1.1), with a
        half-close, and reads on until the peer closes its side, as a client
        does once it sees the server's end; a tether client waits for the
        server, sending nothing more meanwhile.
        """
        if self.tether_is_server:
            await peer.expect_eof()
            peer.close_tcp()
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
        if self._trio is not None:
            await asyncio.to_thread(self._trio.stop)


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest, uvicorn_server: Callable[[UvicornConfig], Uvicorn]
) -> AsyncIterator[Harness]:
    """Connect the adversarial peer to tether, in each of its roles (pytest_generate_tests)."""
    harness = Harness(request.param, uvicorn_server)
    harness.module = request.module.__name__.rpartition(".")[2]
    try:
        yield harness
    finally:
        await harness.close()
