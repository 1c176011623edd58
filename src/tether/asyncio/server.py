"""The asyncio server: :func:`serve` and :func:`unix_serve`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from tether import legacy
from tether.asyncio.connection import DEFAULT_WRITE_LIMIT, Connection, check_limits
from tether.extensions.base import ServerExtensionFactory
from tether.log import LoggerLike, connection_logger
from tether.opening import OpeningDeadline, tls_handshake_timeout
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CONNECTING, _OPEN, DEFAULT_MAX_SIZE
from tether.protocol.events import Event, RequestReceived
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Limits, Request, Response
from tether.protocol.server import Origin, ServerProtocol
from tether.proxies import TrustedProxies, read_proxy_header
from tether.serving import (
    SERVER_HELPERS,
    ServerSide,
    default_response,
    handshake_response,
    make_engines,
    run_handler,
    server_helper,
)

if TYPE_CHECKING:
    from tether.asyncio.auth import basic_auth
    from tether.asyncio.broadcast import broadcast

__all__ = ["Server", "ServerConnection", "basic_auth", "broadcast", "serve", "unix_serve"]

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

It gets the connection, as websockets' does; raising
:exc:`~tether.exceptions.NegotiationError` refuses the handshake with 400.
"""


class ServerConnection(ServerSide, Connection):
    """The server side of a connection, given to the handler by :func:`serve`."""

    protocol: ServerProtocol
    default_logger = "tether.server"

    __slots__ = ("_handshake_task", "_open_timer", "_opening", "server", "username")

    # The client's address that a trusted proxy gave, if any; and, with the
    # PROXY protocol, the bytes received before its header is complete.
    _client: tuple[str, int] | None = None
    _proxy_header: bytearray | None = None

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.server = server
        """The :class:`Server` that accepted this connection."""
        self.username: str | None = None
        """The user that :func:`~tether.asyncio.auth.basic_auth` let in, if any."""
        self._handshake_task: asyncio.Task[None] | None = None
        self._open_timer: asyncio.TimerHandle | None = None
        # Made when TCP is accepted: with TLS, connection_made comes only
        # after the TLS handshake, which counts against open_timeout too.
        self._opening: OpeningDeadline | None = OpeningDeadline(
            server.open_timeout, self._loop.time
        )
        if server.proxy_protocol:
            # Only these connections read through the header's parser: the
            # loop takes the instance's method, and every other connection
            # keeps the base class's, without a call more on each read.
            self._proxy_header = bytearray()
            self.data_received = self._read_proxy_data  # type: ignore[method-assign]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server; the client has what TLS left of ``open_timeout`` to finish."""
        super().connection_made(transport)
        self.server._register(self)
        assert self._opening is not None
        timeout = self._opening.remaining()
        # Used up: an idle connection does not keep it.
        self._opening = None
        if timeout is not None:
            self._open_timer = self._loop.call_later(timeout, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if self.protocol.state is _CONNECTING and self.transport is not None:
            self.logger.info("opening handshake timed out")
            self.transport.abort()

    def _read_proxy_data(self, data: bytes | memoryview) -> None:
        """Read the PROXY protocol header first, then the WebSocket (see ``data_received``)."""
        if self._proxy_header is None:
            # The class's own: a listener connection has another.
            type(self).data_received(self, data)
        else:
            self._proxy_received(data)

    def _proxy_received(self, data: bytes | memoryview) -> None:
        """Add a read to the PROXY protocol header; once it is whole, feed the engine the rest."""
        header = self._proxy_header
        assert header is not None
        header += data
        try:
            parsed = read_proxy_header(header, super().remote_address, self.server.proxies)
        except ValueError as exc:
            self.logger.info("refused: %s", exc)
            self._abort()
            return
        if parsed is None:
            return
        length, client = parsed
        self._proxy_header = None
        self._client = client
        rest = bytes(header[length:])
        if rest:
            self._process(self.protocol.receive_data(rest))

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            server = self.server
            proxies = server.proxies
            if proxies is not None and self._client is None:
                self._client = proxies.client(super().remote_address, event.request.headers)
            if server.process_request is None and server.process_response is None:
                # Nothing to wait for: answer at once rather than in a task.
                self._answer(event.request, self._default_response(event.request))
            else:
                self._handshake_task = self._loop.create_task(self._handshake(event.request))
            return
        super()._handle_event(event)

    def _default_response(self, request: Request) -> Response:
        return default_response(self, request, self.server.is_serving())

    async def _handshake(self, request: Request) -> None:
        server = self.server
        response = await handshake_response(
            self, request, server.process_request, server.process_response, server.is_serving
        )
        # Done with the handshake: an idle connection does not keep the task.
        self._handshake_task = None
        self._answer(request, response)

    def _answer(self, request: Request, response: Response) -> None:
        """Send the handshake response; on a 101, start keepalive and the handler."""
        if self.protocol.state is not _CONNECTING:
            return  # The client went away meanwhile.
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        try:
            self.protocol.send_response(response)
        except ValueError:
            # A hook built a response that cannot go on the wire.
            self.logger.error("cannot send the handshake response", exc_info=True)
            assert self.transport is not None
            self.transport.abort()
            return
        if response.status_code != 101:
            self._process()
            self.logger.info("refused connection: HTTP %d", response.status_code)
            return
        self.logger.info("connection open: %s", request.path)
        self._start_keepalive()
        self._start()
        # Frames the client sent right after its request are parsed by now:
        # handle them, or they would wait for the client's next bytes.
        self._process()

    def _start(self) -> None:
        """Hand the connection, now open, to the server's handler."""
        self.server._start_handler(self)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self.server._handlers.pop(self, None)
        if task.cancelled():
            # run_handler closes the connection when the handler returns or
            # fails, not when it is cancelled: nobody would read it anymore.
            self._start_close(CloseCode.INTERNAL_ERROR, "")

    def connection_lost(self, exc: Exception | None) -> None:
        """Unregister from the server, then wrap up."""
        super().connection_lost(exc)
        if self._open_timer is not None:
            self._open_timer.cancel()
        task = self._handshake_task
        if task is not None and not task.done():
            # A hook still waiting has nobody to answer anymore.
            task.cancel()
        self.server._unregister(self)


class Server:
    """A running WebSocket server, as :func:`serve` gives it."""

    def __init__(
        self,
        handler: Handler,
        *,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None,
        open_timeout: float | None,
        logger: LoggerLike | str | None,
        select_subprotocol: ServerSubprotocolSelector | None = None,
        trusted_proxies: Sequence[str] | None = None,
        proxy_protocol: bool = False,
    ) -> None:
        self.handler = handler
        self.proxies = None if trusted_proxies is None else TrustedProxies(trusted_proxies)
        """Whose word is believed on the client's address (``trusted_proxies``)."""
        self.proxy_protocol = proxy_protocol
        """Whether each connection starts with a PROXY protocol header."""
        self.process_request = process_request
        self.process_response = process_response
        self.select_subprotocol = select_subprotocol
        self.open_timeout = open_timeout
        self.logger = connection_logger(logger, "tether.server", "server", self)
        self.server: asyncio.Server | None = None
        """The :class:`asyncio.Server` listening underneath."""
        self._loop = asyncio.get_running_loop()
        # Every connection from connection_made to connection_lost.
        self._connections: set[ServerConnection] = set()
        self._handlers: dict[ServerConnection, asyncio.Task[None]] = {}
        self._closing: asyncio.Task[None] | None = None
        self._closed = self._loop.create_future()

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections whose handshake succeeded and which are not closed yet."""
        return {conn for conn in self._connections if conn.protocol.state is _OPEN}

    @property
    def sockets(self) -> Iterable[Any]:
        """The listening sockets."""
        return () if self.server is None else self.server.sockets

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the server runs on."""
        return self._loop

    def is_serving(self) -> bool:
        """Whether the server accepts new connections."""
        return self.server is not None and self._closing is None and self.server.is_serving()

    async def start_serving(self) -> None:
        """Start accepting connections, if :func:`serve` was given ``start_serving=False``."""
        assert self.server is not None
        await self.server.start_serving()

    def _register(self, connection: ServerConnection) -> None:
        self._connections.add(connection)

    def _unregister(self, connection: ServerConnection) -> None:
        self._connections.discard(connection)

    def _start_handler(self, connection: ServerConnection) -> None:
        # run_handler() itself, without a coroutine of the connection's
        # around it: each idle connection keeps its handler's frames.
        task = self._loop.create_task(run_handler(connection, self.handler))
        self._handlers[connection] = task
        task.add_done_callback(connection._handler_done)

    def close(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Stop listening, and close open connections with ``code`` (1001) unless told not to.

        Each connection gets ``close_timeout`` to finish the closing
        handshake before TCP is dropped. Connections whose handshake has not
        begun are dropped; those in the middle of it are refused with 503.
        With ``close_connections=False`` open connections stay open until
        their handlers return. Use :meth:`wait_closed` to wait until
        everything is over. Closing again does nothing.
        """
        if self._closing is not None:
            return
        self.logger.info("server closing")
        # Stop listening now, not in the task: from here on is_serving() is
        # False, and a new connection must be refused, not accepted and dropped.
        if self.server is not None:
            self.server.close()
        self._closing = self._loop.create_task(self._close(close_connections, code, reason))

    async def _close(self, close_connections: bool, code: int, reason: str) -> None:
        try:
            # Let connections accepted just before close() reach connection_made.
            await asyncio.sleep(0)
            closing = []
            for connection in list(self._connections):
                if connection.protocol.state is _CONNECTING:
                    if connection._handshake_task is None and connection.transport is not None:
                        connection.transport.abort()
                elif close_connections:
                    closing.append(connection.close(code, reason))
            if closing:
                await asyncio.gather(*closing, return_exceptions=True)
            # Handlers end on their own once their connection is closed.
            if self._handlers:
                await asyncio.wait(list(self._handlers.values()))
            lost = [connection.wait_closed() for connection in list(self._connections)]
            if lost:
                await asyncio.gather(*lost)
            self.logger.info("server closed")
        finally:
            if not self._closed.done():
                self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until the server is closed: no more listening, connections and handlers.

        It waits for :meth:`close` to be called first.
        """
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called, or until cancelled; then close the server.

        It starts accepting connections if :func:`serve` was given
        ``start_serving=False``.
        """
        try:
            if self.server is not None and self._closing is None:
                await self.server.start_serving()
            await self.wait_closed()
        except asyncio.CancelledError:
            self.close()
            await self.wait_closed()
            raise

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


class serve:
    """Start a WebSocket server; each connection is passed to ``handler``.

    Await it for a :class:`Server`, or use it with ``async with`` to close the
    server on exit. With ``host=None`` the server listens on every interface,
    IPv4 and IPv6; a sequence of hosts listens on each. ``unix=True`` with
    ``path=`` listens on a Unix socket (see :func:`unix_serve`).

    ``handler`` gets each connection once its handshake succeeded. When it
    returns the connection closes with 1000; when it raises, the exception is
    logged at ERROR on the ``tether.server`` logger and the connection closes
    with 1011. A :class:`~tether.exceptions.ConnectionClosed` that the
    handler lets out after its own connection closed is no error: it is
    logged at DEBUG only.

    The hooks of the opening handshake may be plain or coroutine functions:

    - ``process_request(connection, request)`` may return a
      :class:`~tether.protocol.http11.Response` (see
      :meth:`ServerConnection.respond`) to answer the request itself,
      refusing the WebSocket: an error, a health check, a redirect;
    - ``process_response(connection, request, response)`` may alter the
      response in place or return another one.

    A hook that raises gets the client a 500, and the exception is logged.
    ``origins`` lists the ``Origin`` values allowed: strings, compiled
    patterns that must match the whole value, ``None`` for requests without
    one; others are refused with 403. ``server_header=None`` sends no
    ``Server`` header. ``open_timeout`` bounds the opening handshake, from
    TCP accept to the response, the TLS handshake included: with ``ssl``,
    ``ssl_handshake_timeout`` defaults to ``open_timeout`` (see
    :mod:`tether.opening`), and the HTTP handshake gets what TLS left.

    ``subprotocols`` lists the subprotocols the server speaks, in order of
    preference: a client that offers none of them is refused with 400.
    ``select_subprotocol(connection, subprotocols)`` replaces that choice:
    it returns one of the offered subprotocols, or ``None`` for none.
    ``create_connection`` is the class of the connections, a subclass of
    :class:`ServerConnection`.

    websockets' older spellings still work, each with a
    :exc:`DeprecationWarning`: a handler taking ``(websocket, path)``, and
    ``process_request(path, request_headers)`` returning ``None`` or
    ``(status, headers, body)`` (see :mod:`tether.legacy`).

    Behind a reverse proxy, ``trusted_proxies`` lists the proxies' addresses
    or networks: from them, ``X-Forwarded-For`` or ``X-Real-IP`` give the
    client's address, which
    :attr:`~tether.asyncio.server.ServerConnection.remote_address` returns.
    With ``proxy_protocol=True``, every connection must start with a PROXY
    protocol header (version 1 or 2) from a trusted proxy; others are
    dropped. See :mod:`tether.proxies`.

    ``max_size`` may be a ``(max_message_size, max_fragment_size)`` pair,
    ``max_queue`` and ``write_limit`` ``(high, low)`` pairs, as in
    websockets; ``limits`` (a :class:`~tether.protocol.http11.Limits`)
    bounds the handshake request's lines, headers and size.

    Every keyword that is not an option of tether goes to
    :meth:`asyncio.loop.create_server`: ``sock``, ``ssl``, ``reuse_port``,
    ``backlog``, ``start_serving`` and the others.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
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
        max_size: int | tuple[int | None, int | None] | None = DEFAULT_MAX_SIZE,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = DEFAULT_WRITE_LIMIT,
        logger: LoggerLike | str | None = None,
        limits: Limits | None = None,
        unix: bool = False,
        path: str | None = None,
        create_connection: type[ServerConnection] | None = None,
        trusted_proxies: Sequence[str] | None = None,
        proxy_protocol: bool = False,
        **kwargs: Any,
    ) -> None:
        check_limits(max_queue, write_limit)
        self.handler = legacy.adapt_handler(handler)
        self.create_connection = create_connection or ServerConnection
        self.host = host
        self.port = port
        self.unix = unix
        self.path = path
        self.engines = make_engines(
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
        self.connection_options: dict[str, Any] = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "logger": logger,
        }
        self.server_options: dict[str, Any] = {
            "process_request": legacy.adapt_process_request(process_request),
            "select_subprotocol": select_subprotocol,
            "process_response": process_response,
            "open_timeout": open_timeout,
            "logger": logger,
            "trusted_proxies": trusted_proxies,
            "proxy_protocol": proxy_protocol,
        }
        self.create_server_kwargs = kwargs
        self.server: Server | None = None

    async def _create(self) -> Server:
        engines = self.engines
        connection_options = self.connection_options
        server = Server(self.handler, **self.server_options)

        create_connection = self.create_connection

        def factory() -> ServerConnection:
            return create_connection(engines(), server, **connection_options)

        kwargs = dict(self.create_server_kwargs)
        open_timeout = self.server_options["open_timeout"]
        if kwargs.get("ssl") is not None and open_timeout is not None:
            # TLS starts at accept: it may take all of open_timeout, not 60 s.
            kwargs.setdefault("ssl_handshake_timeout", tls_handshake_timeout(open_timeout))
        loop = asyncio.get_running_loop()
        if self.unix:
            server.server = await loop.create_unix_server(factory, self.path, **kwargs)
        else:
            server.server = await loop.create_server(factory, self.host, self.port, **kwargs)
        server.logger.info("server listening on %s", [s.getsockname() for s in server.sockets])
        self.server = server
        return server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._create().__await__()

    async def __aenter__(self) -> Server:
        return await self._create()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def unix_serve(handler: Handler, path: str | None = None, **kwargs: Any) -> serve:
    """Start a WebSocket server on the Unix socket at ``path``; see :func:`serve`."""
    return serve(handler, unix=True, path=path, **kwargs)


def __getattr__(name: str) -> Any:
    """Give ``basic_auth`` and ``broadcast`` from here too, as websockets does."""
    return server_helper(__name__, "tether.asyncio", name)


def __dir__() -> list[str]:
    """The module's names, ``basic_auth`` and ``broadcast`` included."""
    return sorted([*globals(), *SERVER_HELPERS])
