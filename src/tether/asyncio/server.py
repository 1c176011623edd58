"""The asyncio server: :func:`serve`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, Literal

from tether.asyncio.connection import DEFAULT_WRITE_LIMIT, Connection
from tether.extensions.base import ServerExtensionFactory
from tether.extensions.permessage_deflate import enable_server_permessage_deflate
from tether.log import LoggerLike, connection_logger
from tether.protocol.close import CloseCode
from tether.protocol.connection import DEFAULT_MAX_SIZE, State
from tether.protocol.events import Event, RequestReceived
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Request, Response
from tether.protocol.server import Origin, ServerProtocol, SubprotocolSelector

__all__ = ["Server", "ServerConnection", "serve"]

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


class ServerConnection(Connection):
    """The server side of a connection, given to the handler by :func:`serve`."""

    protocol: ServerProtocol
    default_logger = "tether.server"

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.server = server
        self._handshake_task: asyncio.Task[None] | None = None
        self._handler_task: asyncio.Task[None] | None = None
        self._open_timer: asyncio.TimerHandle | None = None

    def respond(self, status: int, text: str) -> Response:
        """Build an HTTP response with a plain-text body, for ``process_request`` to return."""
        return self.protocol.reject(status, text)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register with the server and give the client ``open_timeout`` to finish the handshake."""
        super().connection_made(transport)
        self.server._register(self)
        timeout = self.server.open_timeout
        if timeout is not None:
            self._open_timer = self._loop.call_later(timeout, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if self.protocol.state is State.CONNECTING and self.transport is not None:
            self.logger.info("opening handshake timed out")
            self.transport.abort()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._handshake_task = self._loop.create_task(self._handshake(event.request))
            return
        super()._handle_event(event)

    async def _handshake(self, request: Request) -> None:
        server = self.server
        try:
            response = None
            if server.process_request is not None:
                response = await _maybe_await(server.process_request(self, request))
            if response is None:
                response = self.protocol.accept(request)
            if server.process_response is not None:
                replaced = await _maybe_await(server.process_response(self, request, response))
                if replaced is not None:
                    response = replaced
        except Exception:
            self.logger.exception("error in the opening handshake")
            response = self.protocol.reject(500, "Failed to open a WebSocket connection.")
        if self.protocol.state is not State.CONNECTING:
            return  # The client went away meanwhile.
        self.protocol.send_response(response)
        self._flush()
        if self._open_timer is not None:
            self._open_timer.cancel()
        if response.status_code != 101:
            self.logger.info("refused connection: HTTP %d", response.status_code)
            return
        self.logger.info("connection open: %s", request.path)
        self._start_keepalive()
        self._handler_task = self._loop.create_task(self._run_handler())

    async def _run_handler(self) -> None:
        try:
            await self.server.handler(self)
        except Exception:
            self.logger.exception("connection handler failed")
            if self.protocol.state is State.OPEN:
                await self.close(CloseCode.INTERNAL_ERROR)
        else:
            await self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        """Unregister from the server, then wrap up."""
        super().connection_lost(exc)
        if self._open_timer is not None:
            self._open_timer.cancel()
        self.server._unregister(self)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Server:
    """A running WebSocket server, as :func:`serve` gives it."""

    def __init__(
        self,
        handler: Handler,
        *,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None,
        open_timeout: float | None,
        close_timeout: float | None,
        logger: LoggerLike | str | None,
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.process_response = process_response
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.logger = connection_logger(logger, "tether.server", "server", self)
        self.server: asyncio.Server | None = None
        self._connections: set[ServerConnection] = set()
        self._closed = asyncio.get_running_loop().create_future()

    @property
    def connections(self) -> set[ServerConnection]:
        """The connections whose handshake succeeded and which are not closed yet."""
        return {conn for conn in self._connections if conn.protocol.state is State.OPEN}

    @property
    def sockets(self) -> Iterable[Any]:
        """The listening sockets."""
        return () if self.server is None else self.server.sockets

    def _register(self, connection: ServerConnection) -> None:
        self._connections.add(connection)

    def _unregister(self, connection: ServerConnection) -> None:
        self._connections.discard(connection)

    def close(self, close_connections: bool = True) -> None:
        """Stop listening, and close open connections with 1001 unless told not to.

        Connections still in their handshake are dropped. Use
        :meth:`wait_closed` to wait until everything is closed.
        """
        if self._closed.done():
            return
        self.logger.info("server closing")
        if self.server is not None:
            self.server.close()
        task = asyncio.get_running_loop().create_task(self._close_connections(close_connections))
        task.add_done_callback(self._mark_closed)

    def _mark_closed(self, task: asyncio.Task[None]) -> None:
        if not self._closed.done():
            self._closed.set_result(None)

    async def _close_connections(self, close_connections: bool) -> None:
        if not close_connections:
            return
        closing = []
        for connection in list(self._connections):
            if connection.protocol.state is State.CONNECTING:
                if connection.transport is not None:
                    connection.transport.abort()
            else:
                closing.append(connection.close(CloseCode.GOING_AWAY))
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the server is closed and, unless kept open, its connections too."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        except asyncio.CancelledError:
            if not self._closed.done():
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

    Await it for a :class:`Server`, or use it with ``async with``. With
    ``host=None`` the server listens on every interface, IPv4 and IPv6.
    ``unix=True`` with ``path=`` listens on a Unix socket. Every keyword that
    is not an option of tether goes to :meth:`asyncio.loop.create_server`:
    ``sock``, ``ssl``, ``reuse_port``, ``backlog`` and the others.
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
        select_subprotocol: SubprotocolSelector | None = None,
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
        logger: LoggerLike | str | None = None,
        unix: bool = False,
        path: str | None = None,
        **kwargs: Any,
    ) -> None:
        if compression == "deflate":
            extensions = enable_server_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.handler = handler
        self.host = host
        self.port = port
        self.unix = unix
        self.path = path
        self.engine_options: dict[str, Any] = {
            "origins": origins,
            "extensions": extensions,
            "subprotocols": subprotocols,
            "select_subprotocol": select_subprotocol,
            "server_header": server_header,
            "max_size": max_size,
            "streaming": True,
        }
        self.connection_options: dict[str, Any] = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "logger": logger,
        }
        self.server_options: dict[str, Any] = {
            "process_request": process_request,
            "process_response": process_response,
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            "logger": logger,
        }
        self.create_server_kwargs = kwargs
        self.server: Server | None = None

    async def _create(self) -> Server:
        server = Server(self.handler, **self.server_options)

        def factory() -> ServerConnection:
            return ServerConnection(
                ServerProtocol(**self.engine_options), server, **self.connection_options
            )

        loop = asyncio.get_running_loop()
        if self.unix:
            server.server = await loop.create_unix_server(
                factory, self.path, **self.create_server_kwargs
            )
        else:
            server.server = await loop.create_server(
                factory, self.host, self.port, **self.create_server_kwargs
            )
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
