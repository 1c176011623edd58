"""The trio server: :func:`serve` and :func:`unix_serve`, run in a nursery."""

from __future__ import annotations

import functools
import math
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

import trio

from tether.extensions.base import ServerExtensionFactory
from tether.log import LoggerLike, connection_logger
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CONNECTING, _OPEN, DEFAULT_MAX_SIZE
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Limits, Request, Response
from tether.protocol.server import Origin, ServerProtocol
from tether.proxies import ProxyHeaderReader, TrustedProxies
from tether.serving import (
    SERVER_HELPERS,
    ServerSide,
    handshake_response,
    make_engines,
    run_handler,
    server_helper,
)
from tether.trio.connection import DEFAULT_WRITE_LIMIT, READ_SIZE, Connection

if TYPE_CHECKING:
    from tether.trio.auth import basic_auth
    from tether.trio.broadcast import broadcast

__all__ = [
    "Server",
    "ServerConnection",
    "ServerSubprotocolSelector",
    "basic_auth",
    "broadcast",
    "serve",
    "unix_serve",
]

Handler = Callable[["ServerConnection"], Awaitable[None]]
"""A connection handler: a coroutine function taking the connection."""

ProcessRequest = Callable[
    ["ServerConnection", Request], Response | Awaitable[Response | None] | None
]
"""A hook that inspects the request and may answer it with an HTTP response instead."""

ProcessResponse = Callable[
    ["ServerConnection", Request, Response], Response | Awaitable[Response | None] | None
]
"""A hook that may alter or replace the handshake response."""

ServerSubprotocolSelector = Callable[["ServerConnection", Sequence[str]], str | None]
"""A hook that picks a subprotocol among those the client offered, or ``None``.

It gets the connection, as websockets' does.
"""


class ServerConnection(ServerSide, Connection):
    """The server side of a connection, given to the handler by :func:`serve`."""

    __slots__ = ("_client", "server", "username")

    protocol: ServerProtocol
    default_logger = "tether.server"

    def __init__(
        self, stream: trio.abc.Stream, protocol: ServerProtocol, server: Server, **kwargs: Any
    ) -> None:
        super().__init__(stream, protocol, **kwargs)
        # The client's address that a trusted proxy gave, if any.
        self._client: tuple[str, int] | None = None
        self.server = server
        """The :class:`Server` that accepted this connection."""
        self.username: str | None = None
        """The user that :func:`~tether.trio.auth.basic_auth` let in, if any."""

    async def _handshake(self) -> bool:
        """Read the request, run the hooks and answer; return whether the connection is open."""
        protocol = self.protocol
        server = self.server
        header = None
        if server.proxy_protocol:
            header = ProxyHeaderReader(super().remote_address, server.proxies, self.logger)
        while protocol.request is None and protocol.state is _CONNECTING:
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if header is not None:
                if not header.feed(protocol, data):
                    return False
            elif data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
        # RequestReceived, or nothing: the request is on the engine.
        protocol.events()
        request = protocol.request
        if request is None or protocol.state is not _CONNECTING:
            # Unreadable (the engine answered it) or gone.
            await self._write_all()
            return False
        if header is not None:
            self._client = header.client
        if server.proxies is not None and self._client is None:
            self._client = server.proxies.client(super().remote_address, request.headers)
        response = await handshake_response(
            self, request, server.process_request, server.process_response, server.is_serving
        )
        if protocol.state is not _CONNECTING:  # pragma: no cover - the engine waits for us
            return False
        try:
            protocol.send_response(response)
        except ValueError:
            # A hook built a response that cannot go on the wire.
            self.logger.error("cannot send the handshake response", exc_info=True)
            return False
        await self._write_all()
        if response.status_code != 101:
            self.logger.info("refused connection: HTTP %d", response.status_code)
            return False
        self.logger.info("connection open: %s", request.path)
        # Frames the client sent right after its request are parsed by now.
        self._process()
        return True


class _Starter:
    """The ``handler_nursery`` given to :func:`trio.serve_listeners`.

    It starts each accepted stream's task as ``Server._handle`` itself,
    rather than inside trio's wrapper that closes the stream (``_handle``
    closes it): every connection holds one coroutine fewer while it lives.
    """

    __slots__ = ("_handle", "_nursery")

    def __init__(
        self, nursery: trio.Nursery, handle: Callable[[trio.abc.Stream], Awaitable[None]]
    ) -> None:
        self._nursery = nursery
        self._handle = handle

    def start_soon(self, function: Any, stream: trio.abc.Stream, *args: Any) -> None:
        """Start ``_handle(stream)`` where serve_listeners asks for ``function(stream, ...)``."""
        # One name for every task: trio would make a string for each.
        self._nursery.start_soon(self._handle, stream, name="tether.trio.server.Server._handle")


class Server:
    """A running WebSocket server, as :func:`serve` gives it to ``nursery.start``.

    Use it with ``async with`` to close it on exit, or call :meth:`aclose`.
    """

    def __init__(
        self,
        listeners: Sequence[trio.abc.Listener[Any]],
        handler: Handler,
        *,
        engines: Callable[[], ServerProtocol],
        connection_options: dict[str, Any],
        process_request: ProcessRequest | None = None,
        process_response: ProcessResponse | None = None,
        select_subprotocol: ServerSubprotocolSelector | None = None,
        open_timeout: float | None = 10,
        ssl: ssl_module.SSLContext | None = None,
        logger: LoggerLike | str | None = None,
        trusted_proxies: Sequence[str] | None = None,
        proxy_protocol: bool = False,
        create_connection: Callable[..., ServerConnection] | None = None,
    ) -> None:
        self.listeners = list(listeners)
        """The trio listeners accepting connections."""
        self.handler = handler
        self.process_request = process_request
        self.process_response = process_response
        self.select_subprotocol = select_subprotocol
        self.open_timeout = open_timeout
        self.ssl = ssl
        self.proxies = None if trusted_proxies is None else TrustedProxies(trusted_proxies)
        """Whose word is believed on the client's address (``trusted_proxies``)."""
        self.proxy_protocol = proxy_protocol
        self._create_connection = (
            ServerConnection if create_connection is None else create_connection
        )
        """Whether each connection starts with a PROXY protocol header."""
        self.logger = connection_logger(logger, "tether.server", "server", self)
        self._engines = engines
        self._connection_options = connection_options
        # Every connection from accept to close, and the scopes of handshakes.
        self._connections: set[ServerConnection] = set()
        self._handshakes: dict[ServerConnection, trio.CancelScope] = {}
        self._tls_handshakes: set[trio.CancelScope] = set()
        self._handler_nursery: trio.Nursery | None = None
        # Given to every connection: one bound method, not one each.
        self._spawner = self._spawn
        self._listen_scope: trio.CancelScope | None = None
        self._closing = False
        self._closed = trio.Event()

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections whose handshake succeeded and which are not closed yet."""
        return {conn for conn in self._connections if conn.protocol.state is _OPEN}

    @property
    def sockets(self) -> list[trio.socket.SocketType]:
        """The listening sockets."""
        return [
            listener.socket
            for listener in self.listeners
            if isinstance(listener, trio.SocketListener)
        ]

    def is_serving(self) -> bool:
        """Whether the server accepts new connections."""
        return self._listen_scope is not None and not self._closing

    async def serve_forever(
        self, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept connections until closed; give the server to ``task_status`` once listening.

        Handlers and connections run in a nursery of their own: when the
        nursery that runs this is cancelled, every open connection closes
        with 1001 (going away) before this returns.
        """
        try:
            async with trio.open_nursery() as handlers:
                self._handler_nursery = handlers
                async with trio.open_nursery() as listening:
                    self._listen_scope = listening.cancel_scope
                    await listening.start(
                        functools.partial(
                            trio.serve_listeners,
                            self._handle,
                            self.listeners,
                            # trio documents "any object with a start_soon method".
                            handler_nursery=cast(trio.Nursery, _Starter(handlers, self._handle)),
                        )
                    )
                    self.logger.info(
                        "server listening on %s", [s.getsockname() for s in self.sockets]
                    )
                    task_status.started(self)
        finally:
            self._closing = True
            self._closed.set()
            self.logger.info("server closed")

    def _spawn(self, function: Callable[[], Any], name: str) -> None:
        assert self._handler_nursery is not None
        self._handler_nursery.start_soon(function, name=name)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        """Run one connection: TLS, the handshake, then the handler."""
        connection: ServerConnection | None = None
        started = False
        try:
            timeout = self.open_timeout
            with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
                if self.ssl is not None:
                    if self._closing:
                        return
                    stream = trio.SSLStream(
                        stream, self.ssl, server_side=True, https_compatible=True
                    )
                    # close() drops a connection still in its TLS handshake.
                    self._tls_handshakes.add(scope)
                    try:
                        await stream.do_handshake()
                    finally:
                        self._tls_handshakes.discard(scope)
                connection = self._create_connection(
                    stream, self._engines(), self, **self._connection_options
                )
                self._connections.add(connection)
                if self._closing:
                    return
                self._handshakes[connection] = scope
                opened = await connection._handshake()
            if connection is not None:
                self._handshakes.pop(connection, None)
            timed_out = scope.cancelled_caught
            # Not kept for the connection's lifetime.
            del scope
            if timed_out:
                if not self._closing:
                    self.logger.info("opening handshake timed out")
                return
            assert connection is not None
            if not opened:
                return
            connection._start_keepalive()
            connection._start(self._spawner)
            started = True
            await run_handler(connection, self.handler)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.logger.debug("connection failed: %s", exc)
        finally:
            if connection is not None:
                self._connections.discard(connection)
            with trio.CancelScope(shield=True):
                if started:
                    # trio closes the stream when this returns: cancelled,
                    # close with 1001 and wait for the closing handshake
                    # (bounded by close_timeout) rather than cut it short.
                    assert connection is not None
                    await connection._finish()
                await trio.aclose_forcefully(stream)

    def close(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Stop listening, and close open connections with ``code`` (1001) unless told not to.

        Connections whose request (or TLS handshake) has not arrived are
        dropped; those in the middle of their hooks are refused with 503.
        With ``close_connections=False`` open connections stay open until
        their handlers return. :meth:`wait_closed` waits until everything is over.
        Closing again does nothing.
        """
        if self._closing:
            return
        self._closing = True
        self.logger.info("server closing")
        if self._listen_scope is not None:
            self._listen_scope.cancel()
        for connection, scope in list(self._handshakes.items()):
            if connection.protocol.request is None:
                scope.cancel()
        for scope in self._tls_handshakes:
            scope.cancel()
        if close_connections and self._handler_nursery is not None:
            for connection in self.connections:
                self._handler_nursery.start_soon(connection.close, code, reason)

    async def aclose(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Close the server (see :meth:`close`) and wait until its handlers returned."""
        self.close(close_connections, code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed: no more listening, connections and handlers."""
        await self._closed.wait()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def serve(
    handler: Handler,
    port: int | None = None,
    *,
    host: str | bytes | None = None,
    backlog: int | None = None,
    listeners: Sequence[trio.abc.Listener[Any]] | None = None,
    ssl: ssl_module.SSLContext | None = None,
    origins: Sequence[Origin] | None = None,
    extensions: Sequence[ServerExtensionFactory] | None = None,
    subprotocols: Sequence[str] | None = None,
    select_subprotocol: ServerSubprotocolSelector | None = None,
    compression: Literal["deflate"] | None = "deflate",
    process_request: ProcessRequest | None = None,
    process_response: ProcessResponse | None = None,
    server_header: str | None = USER_AGENT,
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_queue: int | None = 16,
    write_limit: int = DEFAULT_WRITE_LIMIT,
    limits: Limits | None = None,
    logger: LoggerLike | str | None = None,
    trusted_proxies: Sequence[str] | None = None,
    proxy_protocol: bool = False,
    create_connection: Callable[..., ServerConnection] | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve WebSocket connections on ``port`` until closed; run it in a nursery.

    ``await nursery.start(serve, handler, port)`` returns the :class:`Server`
    once it listens (``port=0`` picks a free port: see
    :attr:`Server.sockets`); ``server.aclose()``, or ``async with server``,
    stops it. Cancelling the nursery closes every open connection with 1001
    (going away), each within its ``close_timeout``, before ``serve``
    returns. ``host`` and ``backlog`` go to :func:`trio.open_tcp_listeners`;
    ``listeners`` replaces all three with listeners of your own.

    ``handler`` gets each connection once its handshake succeeded. When it
    returns the connection closes with 1000; when it raises, the exception is
    logged at ERROR on the ``tether.server`` logger and the connection closes
    with 1011.

    The other options are those of :func:`tether.serve`: the handshake hooks
    ``process_request`` and ``process_response`` (plain or coroutine
    functions), ``origins``, ``select_subprotocol``, ``subprotocols``,
    ``extensions``, ``compression``, ``server_header``, the timeouts (the TLS
    handshake counts toward ``open_timeout``) and the limits, ``limits`` (a
    :class:`~tether.protocol.http11.Limits` bounding the request) among
    them. ``ssl`` makes each connection a :class:`trio.SSLStream`.
    ``create_connection`` makes the connections, called like
    :class:`ServerConnection` (a subclass of it, as in websockets.trio).

    Behind a reverse proxy, ``trusted_proxies`` lists the proxies' addresses
    or networks (``"10.0.0.0/8"``, ``"unix"`` for a Unix socket's peer, ``"*"``):
    their ``X-Forwarded-For`` or ``X-Real-IP`` gives
    :attr:`ServerConnection.remote_address`, as in :func:`tether.serve`.
    With ``proxy_protocol=True`` every connection must start with a PROXY
    protocol header (versions 1 and 2) from a trusted proxy; others are
    dropped. See :mod:`tether.proxies`.
    """
    engines = make_engines(
        origins=origins,
        extensions=extensions,
        compression=compression,
        subprotocols=subprotocols,
        server_header=server_header,
        max_size=max_size,
        limits=limits,
        trusted_proxies=trusted_proxies,
        proxy_protocol=proxy_protocol,
    )
    if listeners is None:
        if port is None:
            raise ValueError("give port, or listeners")
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
    elif port is not None or host is not None or backlog is not None:
        raise ValueError("listeners replaces port, host and backlog: give one or the other")
    server = Server(
        listeners,
        handler,
        engines=engines,
        connection_options={
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "logger": logger,
        },
        process_request=process_request,
        process_response=process_response,
        select_subprotocol=select_subprotocol,
        open_timeout=open_timeout,
        ssl=ssl,
        logger=logger,
        trusted_proxies=trusted_proxies,
        proxy_protocol=proxy_protocol,
        create_connection=create_connection,
    )
    await server.serve_forever(task_status=task_status)


async def unix_serve(
    handler: Handler,
    path: str,
    *,
    backlog: int | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Serve WebSocket connections on the Unix socket at ``path``; see :func:`serve`."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(path)
        sock.listen(socket.SOMAXCONN if backlog is None else backlog)
    except BaseException:
        sock.close()
        raise
    await serve(handler, listeners=[trio.SocketListener(sock)], task_status=task_status, **kwargs)


def __getattr__(name: str) -> Any:
    """Give ``basic_auth`` and ``broadcast`` from here too, as websockets does."""
    return server_helper(__name__, "tether.trio", name)


def __dir__() -> list[str]:
    """The module's names, ``basic_auth`` and ``broadcast`` included."""
    return sorted([*globals(), *SERVER_HELPERS])
