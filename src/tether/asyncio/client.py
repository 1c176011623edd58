"""The asyncio client: :func:`connect`."""

from __future__ import annotations

import asyncio
import random
import ssl as ssl_module
from collections.abc import AsyncIterator, Generator, Sequence
from types import TracebackType
from typing import Any, Literal

from tether.asyncio.connection import DEFAULT_WRITE_LIMIT, Connection
from tether.exceptions import InvalidMessage, InvalidStatus, InvalidURI
from tether.extensions.base import ClientExtensionFactory
from tether.extensions.permessage_deflate import enable_client_permessage_deflate
from tether.log import LoggerLike, connection_logger
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import DEFAULT_MAX_SIZE
from tether.protocol.events import Event, ResponseReceived
from tether.protocol.handshake import USER_AGENT
from tether.protocol.headers import HeadersLike
from tether.protocol.uri import WebSocketURI, parse_uri

__all__ = ["ClientConnection", "connect"]


class ClientConnection(Connection):
    """The client side of a connection; :func:`connect` makes it."""

    protocol: ClientProtocol
    default_logger = "tether.client"

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._handshake: asyncio.Future[None] = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Send the handshake request as soon as TCP (and TLS) is up."""
        super().connection_made(transport)
        request = self.protocol.connect()
        self.protocol.send_request(request)
        self.logger.debug("sent handshake request for %s", request.path)
        self._flush()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            exc = self.protocol.handshake_exc
            if exc is None:
                self.logger.info("connected: %s", event.response.status_code)
                self._handshake.set_result(None)
                self._start_keepalive()
            else:
                self.logger.info("handshake failed: %s", exc)
                self._handshake.set_exception(exc)
            return
        super()._handle_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the pending handshake, if any, then wrap up."""
        super().connection_lost(exc)
        if not self._handshake.done():
            handshake_exc = self.protocol.handshake_exc
            if handshake_exc is None:
                handshake_exc = InvalidMessage("connection closed during the opening handshake")
                if exc is not None:
                    handshake_exc.__cause__ = exc
            self._handshake.set_exception(handshake_exc)


def _retryable(exc: Exception) -> bool:
    """Tell whether reconnecting may heal ``exc``."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return status >= 500 or status == 429
    if isinstance(exc, InvalidMessage):
        # The server went away mid-handshake, as a restarting server does.
        return isinstance(exc.__cause__, (EOFError, OSError))
    return isinstance(exc, (OSError, TimeoutError))


class connect:
    """Open a WebSocket connection to ``uri``.

    Await it for a :class:`ClientConnection`, use it with ``async with`` to
    close the connection on exit, or iterate over it with ``async for`` to
    reconnect each time the connection drops or cannot be opened.

    Every keyword that is not an option of tether goes to
    :meth:`asyncio.loop.create_connection`: ``host`` and ``port`` to reach
    another address while ``Host`` keeps the URI's name, ``sock``,
    ``local_addr``, ``server_hostname``, ``family``, ``happy_eyeballs_delay``
    and the others. ``unix=True`` with ``path=`` connects to a Unix socket.
    """

    def __init__(
        self,
        uri: str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        compression: Literal["deflate"] | None = "deflate",
        additional_headers: HeadersLike | None = None,
        extra_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int | None = 16,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        logger: LoggerLike | str | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        unix: bool = False,
        path: str | None = None,
        backoff_initial_delay: float = 1.0,
        backoff_factor: float = 1.618,
        backoff_max_delay: float = 60.0,
        **kwargs: Any,
    ) -> None:
        if additional_headers is not None and extra_headers is not None:
            raise TypeError("give additional_headers or extra_headers, not both")
        if compression == "deflate":
            extensions = enable_client_permessage_deflate(extensions)
        elif compression is not None:
            raise ValueError(f"unsupported compression: {compression}")
        self.uri = uri
        self.origin = origin
        self.extensions = extensions
        self.subprotocols = subprotocols
        self.additional_headers = additional_headers if extra_headers is None else extra_headers
        self.user_agent_header = user_agent_header
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.max_queue = max_queue
        self.write_limit = write_limit
        self.logger = logger
        self.ssl = ssl
        self.unix = unix
        self.path = path
        self.backoff_initial_delay = backoff_initial_delay
        self.backoff_factor = backoff_factor
        self.backoff_max_delay = backoff_max_delay
        self.create_connection_kwargs = kwargs
        self.connection: ClientConnection | None = None

    def _parse_uri(self) -> WebSocketURI:
        return parse_uri(self.uri)

    async def _create(self) -> ClientConnection:
        uri = self._parse_uri()
        engine = ClientProtocol(
            uri,
            origin=self.origin,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            additional_headers=self.additional_headers,
            user_agent_header=self.user_agent_header,
            max_size=self.max_size,
            streaming=True,
        )

        def factory() -> ClientConnection:
            return ClientConnection(
                engine,
                logger=self.logger,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
                max_queue=self.max_queue,
                write_limit=self.write_limit,
            )

        kwargs = dict(self.create_connection_kwargs)
        context = self.ssl
        if uri.secure:
            if context is None or context is True:
                context = ssl_module.create_default_context()
            kwargs.setdefault("server_hostname", uri.host)
        elif context:
            raise ValueError("ssl is only for wss:// URIs")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.open_timeout):
            if self.unix:
                transport, connection = await loop.create_unix_connection(
                    factory, self.path, ssl=context or None, **kwargs
                )
            elif "sock" in kwargs:
                transport, connection = await loop.create_connection(
                    factory, ssl=context or None, **kwargs
                )
            else:
                host = kwargs.pop("host", uri.host)
                port = kwargs.pop("port", uri.port)
                transport, connection = await loop.create_connection(
                    factory, host, port, ssl=context or None, **kwargs
                )
            try:
                await connection._handshake
            except BaseException:
                transport.abort()
                raise
        return connection

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._create().__await__()

    async def __aenter__(self) -> ClientConnection:
        self.connection = await self._create()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.connection is not None
        await self.connection.close()

    async def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """Connect, and connect again each time the connection drops or cannot be opened."""
        attempts = 0
        while True:
            try:
                connection = await self._create()
            except (InvalidURI, ValueError, TypeError):
                raise
            except Exception as exc:
                if not _retryable(exc):
                    raise
                delay = min(
                    self.backoff_max_delay,
                    self.backoff_initial_delay * self.backoff_factor**attempts,
                )
                attempts += 1
                # Equal jitter: clients dropped together do not come back together.
                delay = delay / 2 + random.uniform(0, delay / 2)
                logger = connection_logger(self.logger, "tether.client", "reconnect", None)
                logger.info("connection failed (%s); retrying in %.1f seconds", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempts = 0
            try:
                yield connection
            finally:
                await connection.close()
