"""The trio client: :func:`connect` and :func:`unix_connect`."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import trio

from tether.connecting import AsyncConnect
from tether.exceptions import InvalidMessage, InvalidProxyMessage
from tether.extensions.base import ClientExtensionFactory
from tether.extensions.permessage_deflate import client_extensions
from tether.follow import Follower
from tether.log import LoggerLike, connection_logger
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import DEFAULT_MAX_SIZE
from tether.protocol.events import Event, ResponseReceived
from tether.protocol.handshake import USER_AGENT
from tether.protocol.headers import HeadersLike
from tether.protocol.http11 import Limits
from tether.protocol.proxy import Proxy, ProxyConnect, parse_proxy
from tether.protocol.uri import WebSocketURI
from tether.proxy import ProxyOption, resolve_proxy, socks_error, socks_proxy
from tether.reconnecting import process_exception
from tether.targets import check_client_target, pick_headers, unix_uri
from tether.trio.connection import DEFAULT_WRITE_LIMIT, READ_SIZE, Connection

__all__ = ["ClientConnection", "connect", "process_exception", "unix_connect"]


class ClientConnection(Connection):
    """The client side of a connection; :func:`connect` makes it."""

    __slots__ = ()

    protocol: ClientProtocol
    default_logger = "tether.client"

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, ResponseReceived):
            exc = self.protocol.handshake_exc
            if exc is None:
                self.logger.info("connected: %s", event.response.status_code)
            else:
                self.logger.info("handshake failed: %s", exc)
            return
        super()._handle_event(event)

    async def _handshake(self) -> None:
        """Send the request and read until the response; raise if it refuses the WebSocket."""
        protocol = self.protocol
        request = protocol.connect()
        protocol.send_request(request)
        self.logger.debug("sent handshake request for %s", request.path)
        await self._write_all()
        while protocol.response is None and protocol.handshake_exc is None:
            cause: BaseException | None = None
            try:
                data = await self.stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                cause = exc
                data = b""
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            self._process()
            if not data and protocol.response is None and protocol.handshake_exc is None:
                raise InvalidMessage("connection closed during the opening handshake") from cause
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc


def _system_spawn(function: Callable[[], Any], name: str) -> None:
    trio.lowlevel.spawn_system_task(function, name=name)


class connect(AsyncConnect[ClientConnection]):
    """Open a WebSocket connection to ``uri``.

    Await it for a :class:`ClientConnection` (then close it yourself), use it
    with ``async with`` to close the connection on exit, or iterate over it
    with ``async for`` to connect again each time the connection drops or
    cannot be opened, with the backoff of :func:`tether.connect`::

        async for websocket in connect(uri):
            try:
                async for message in websocket:
                    ...
            except ConnectionClosed:
                continue

    A connection needs no nursery: the task waiting in ``recv`` reads the
    network, and while none does, the run's watcher (a trio system task, see
    :mod:`tether.trio.watcher`) reads for it; over TLS, or without epoll, a
    reader system task does. When ``trio.run`` ends, the connection closes
    with 1001 (going away) first, within ``close_timeout``. No task is left
    behind.

    It takes the options of :func:`tether.connect` (``origin``,
    ``extensions``, ``subprotocols``, ``compression``,
    ``additional_headers``, ``user_agent_header``, ``open_timeout``,
    ``ping_interval``, ``ping_timeout``, ``close_timeout``, ``max_size``,
    ``max_queue``, ``write_limit``, ``logger``, ``process_exception``,
    ``reconnect_delays`` and the ``backoff_`` options), with the same
    meaning: ``async for`` waits between failed attempts as the asyncio and
    threading clients do (:class:`tether.reconnecting.Backoff`), and a
    refusal with ``Retry-After`` waits at least that long, up to
    ``backoff_max_delay``.

    * ``extra_headers``: another name for ``additional_headers``.
    * ``create_connection``: what makes the connection, called like
      :class:`ClientConnection` (a subclass of it, as in websockets.trio).
    * ``auth``: a ``(username, password)`` pair that answers a 401's Digest
      (or Basic) challenge once; credentials in the URI are sent as Basic.
    * Redirects (301, 302, 303, 307, 308 with a ``Location``) are followed
      as :func:`tether.connect` follows them (see :mod:`tether.follow`);
      ``open_timeout`` bounds them all together.
    * ``proxy``: ``True`` (the default) for the system's proxy (see
      :func:`tether.proxy.get_proxy`), ``None`` for none, or a proxy URI.
      HTTP and HTTPS proxies get ``CONNECT``; ``socks5h://``, ``socks5://``,
      ``socks4a://`` and ``socks4://`` need ``python-socks[trio]``
      (``pip install 'tether[socks,trio]'``). ``proxy_ssl`` and
      ``proxy_server_hostname`` are the :class:`ssl.SSLContext` and the
      name checked for an ``https://`` proxy. With ``stream``, ``unix``,
      ``host`` or ``port`` the system's proxy is not used.
    * ``limits``: a :class:`~tether.protocol.http11.Limits` bounding the
      server's and an HTTP proxy's response.

    and for the transport:

    * ``ssl``: the :class:`ssl.SSLContext` of a ``wss://`` connection, by
      default one that verifies the certificate; the TLS handshake runs on
      a :class:`trio.SSLStream` and counts toward ``open_timeout``.
      ``server_hostname`` replaces the URI's host in it.
    * ``stream``: a :class:`trio.abc.Stream` already connected, used instead
      of opening one.
    * ``unix`` and ``path``, or a ``ws+unix://`` URI: a Unix socket.
    * Every other keyword goes to :func:`trio.open_tcp_stream`, such as
      ``host`` and ``port`` to reach another address than the URI's,
      ``happy_eyeballs_delay`` or ``local_address``.
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
        auth: tuple[str, str] | None = None,
        proxy: ProxyOption = True,
        proxy_ssl: ssl_module.SSLContext | None = None,
        proxy_server_hostname: str | None = None,
        limits: Limits | None = None,
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | None = DEFAULT_MAX_SIZE,
        max_queue: int | None = 16,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        logger: LoggerLike | str | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        stream: trio.abc.Stream | None = None,
        unix: bool = False,
        path: str | None = None,
        process_exception: Callable[[Exception], Exception | None] = process_exception,
        reconnect_delays: Callable[[], Iterator[float]] | None = None,
        backoff_initial_delay: float = 1.0,
        backoff_factor: float = 1.618,
        backoff_max_delay: float = 60.0,
        create_connection: Callable[..., ClientConnection] | None = None,
        **kwargs: Any,
    ) -> None:
        headers = pick_headers(additional_headers, extra_headers)
        self.uri = uri
        self.ws_uri, self.unix, self.path = check_client_target(uri, unix, path, ssl, auth)
        if isinstance(proxy, str):
            parse_proxy(proxy)  # An invalid proxy fails here, not on connecting.
        self.fixed_address = "host" in kwargs or "port" in kwargs
        if (stream is not None or self.unix or self.fixed_address) and isinstance(proxy, str):
            raise ValueError("a proxy can't be combined with stream, unix, host or port")
        self.origin = origin
        self.extensions = client_extensions(compression, extensions)
        self.subprotocols = subprotocols
        self.additional_headers = headers
        self.auth = auth
        self.proxy = proxy
        self.proxy_ssl = proxy_ssl
        self.proxy_server_hostname = proxy_server_hostname
        self.limits = limits
        self.user_agent_header = user_agent_header
        self.open_timeout = open_timeout
        self.max_size = max_size
        self.connection_options: dict[str, Any] = {
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "max_queue": max_queue,
            "write_limit": write_limit,
            "logger": logger,
        }
        self.logger = logger
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.stream = stream
        self.process_exception = process_exception
        self.reconnect_delays = reconnect_delays
        self.backoff_initial_delay = backoff_initial_delay
        self.backoff_factor = backoff_factor
        self.backoff_max_delay = backoff_max_delay
        self.open_tcp_stream_kwargs = kwargs
        self.create_connection = (
            ClientConnection if create_connection is None else create_connection
        )
        self.connection: ClientConnection | None = None
        # Made before connecting: a bad option fails at once, as in tether.connect.
        self._engine(self.ws_uri, self.additional_headers)

    async def _open_stream(self, uri: WebSocketURI) -> trio.abc.Stream:
        """Connect to ``uri``'s server: directly, through a proxy, or as configured."""
        if self.stream is not None:
            return self.stream
        if self.unix:
            assert self.path is not None
            return await trio.open_unix_socket(self.path)
        kwargs = dict(self.open_tcp_stream_kwargs)
        proxy = None if self.fixed_address else resolve_proxy(self.proxy, uri)
        if proxy is None:
            host = kwargs.pop("host", uri.host)
            port = kwargs.pop("port", uri.port)
            return await trio.open_tcp_stream(host, port, **kwargs)
        if proxy.scheme.startswith("socks"):
            socks = socks_proxy(proxy, "trio")
            try:
                sock = await socks.connect(uri.host, uri.port)
            except Exception as exc:
                raise socks_error(exc) from exc
            return trio.SocketStream(sock)
        return await self._through_http_proxy(proxy, uri, kwargs)

    async def _through_http_proxy(
        self, proxy: Proxy, uri: WebSocketURI, kwargs: dict[str, Any]
    ) -> trio.abc.Stream:
        """Open a tunnel to ``uri`` with ``CONNECT`` through ``proxy``."""
        if proxy.scheme != "https" and (
            self.proxy_ssl is not None or self.proxy_server_hostname is not None
        ):
            raise ValueError("proxy_ssl and proxy_server_hostname are for https:// proxies")
        stream: trio.abc.Stream = await trio.open_tcp_stream(proxy.host, proxy.port, **kwargs)
        try:
            if proxy.scheme == "https":
                tls = trio.SSLStream(
                    stream,
                    self.proxy_ssl or ssl_module.create_default_context(),
                    server_hostname=self.proxy_server_hostname or proxy.host,
                    https_compatible=True,
                )
                await _tls_handshake(tls)
                stream = tls
            exchange = ProxyConnect(
                proxy, uri, user_agent_header=self.user_agent_header, limits=self.limits
            )
            await stream.send_all(exchange.data_to_send())
            while True:
                # The server never speaks first: a byte past the answer is
                # a broken proxy, which the exchange reports.
                try:
                    data = await stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    error = InvalidProxyMessage("the proxy closed the connection before answering")
                    raise error from exc
                if not data:
                    exchange.receive_eof()
                elif exchange.receive_data(data):
                    return stream
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    def _engine(self, uri: WebSocketURI, headers: HeadersLike | None) -> ClientProtocol:
        return ClientProtocol(
            uri,
            origin=self.origin,
            extensions=self.extensions,
            subprotocols=self.subprotocols,
            additional_headers=headers,
            user_agent_header=self.user_agent_header,
            max_size=self.max_size,
            streaming=True,
            limits=self.limits,
        )

    async def _attempt(self, uri: WebSocketURI, headers: HeadersLike | None) -> ClientConnection:
        """Open one connection to ``uri`` and run its handshake."""
        engine = self._engine(uri, headers)
        stream = await self._open_stream(uri)
        try:
            if uri.secure:
                ssl = self.ssl
                context = (
                    ssl
                    if isinstance(ssl, ssl_module.SSLContext)
                    else ssl_module.create_default_context()
                )
                stream = trio.SSLStream(
                    stream,
                    context,
                    server_hostname=self.server_hostname or uri.host,
                    https_compatible=True,
                )
                await _tls_handshake(stream)
            connection = self.create_connection(stream, engine, **self.connection_options)
            await connection._handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return connection

    async def _create(self) -> ClientConnection:
        # Made before connecting: a bad option fails without touching the network.
        self._engine(self.ws_uri, self.additional_headers)
        follower = Follower(
            self.uri,
            self.ws_uri,
            self.additional_headers,
            self.auth,
            sock=self.stream is not None,
            unix=self.unix,
            fixed_address=self.fixed_address,
        )
        try:
            with trio.fail_after(_forever(self.open_timeout)):
                while True:
                    try:
                        connection = await self._attempt(follower.ws_uri, follower.headers())
                    except Exception as exc:
                        outcome = follower.follow(exc)
                        if outcome is exc:
                            raise
                        if outcome is not None:
                            raise outcome from exc
                        connection_logger(self.logger, "tether.client", "follow", None).info(
                            "following %s to %s", exc, follower.uri
                        )
                        continue
                    break
        except trio.TooSlowError:
            raise TimeoutError("timed out during the opening handshake") from None
        connection._start_keepalive()
        connection._start(_system_spawn)
        return connection

    async def _sleep(self, delay: float) -> None:
        await trio.sleep(delay)

    async def _close_reconnected(self, connection: ClientConnection) -> None:
        # The loop may be left by a cancellation: close all the same.
        with trio.CancelScope(shield=True):
            await connection.close()


async def _tls_handshake(stream: trio.SSLStream[Any]) -> None:
    """Run the TLS handshake; a peer that leaves during it is an :class:`OSError`.

    TLS's own errors are raised as they are (:class:`ssl.SSLError`, as in the
    asyncio and threading clients), not wrapped.
    """
    try:
        await stream.do_handshake()
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__
        if isinstance(cause, ssl_module.SSLError):
            raise cause from None
        raise ConnectionError(f"TLS handshake failed: {cause or exc}") from exc


def _forever(timeout: float | None) -> float:
    return float("inf") if timeout is None else timeout


def unix_connect(path: str | None = None, uri: str | None = None, **kwargs: Any) -> connect:
    """Connect to a WebSocket server listening on the Unix socket at ``path``.

    ``uri`` gives the ``Host`` header and the request target; it defaults to
    ``ws://localhost/``, or ``wss://localhost/`` when ``ssl`` is given. Every
    other option is :func:`connect`'s.
    """
    return connect(unix_uri(uri, kwargs), unix=True, path=path, **kwargs)
