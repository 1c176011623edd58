"""The asyncio client: :func:`connect`."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from tether.asyncio.connection import DEFAULT_WRITE_LIMIT, Connection, check_limits
from tether.connecting import AsyncConnect
from tether.exceptions import InvalidMessage, InvalidProxyMessage
from tether.extensions.base import ClientExtensionFactory
from tether.extensions.permessage_deflate import client_extensions
from tether.follow import Follower
from tether.log import LoggerLike
from tether.opening import OpeningDeadline
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
from tether.targets import check_client_target, parse_unix_uri, pick_headers, unix_uri

if TYPE_CHECKING:
    from tether.asyncio.listener import Listener

__all__ = [
    "ClientConnection",
    "connect",
    "parse_unix_uri",
    "process_exception",
    "unix_connect",
]


class ClientConnection(Connection):
    """The client side of a connection; :func:`connect` makes it."""

    __slots__ = ("_handshake",)

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


class _ProxyTunnel(asyncio.Protocol):
    """Drive :class:`~tether.protocol.proxy.ProxyConnect` over a connection to an HTTP proxy."""

    def __init__(self, exchange: ProxyConnect) -> None:
        self.exchange = exchange
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.exchange.data_to_send())

    def _fail(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        try:
            if self.exchange.receive_data(data):
                # Nothing more is read until the WebSocket connection takes over.
                assert self.transport is not None
                self.transport.pause_reading()
                self.done.set_result(None)
        except Exception as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        if not self.done.done():
            try:
                self.exchange.receive_eof()
            except Exception as exc:
                self._fail(exc)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            error = InvalidProxyMessage("the proxy closed the connection before answering")
            error.__cause__ = exc
            self._fail(error)


async def _start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.WriteTransport,
    protocol: asyncio.BaseProtocol,
    context: ssl_module.SSLContext,
    options: dict[str, Any],
) -> asyncio.Transport | None:
    """``loop.start_tls``, raising the TLS handshake's own error inside a TLS tunnel.

    When the tunnel to an ``https://`` proxy is itself TLS, asyncio (CPython
    3.11 and 3.12) meets a failed inner handshake by calling
    ``SSLProtocol._abort`` with an argument it does not take: the
    :class:`TypeError` hides the certificate error, which is its context.
    """
    try:
        return await loop.start_tls(transport, protocol, context, **options)
    except TypeError as exc:
        cause = exc.__context__
        if isinstance(cause, ssl_module.SSLError | ssl_module.CertificateError):
            raise cause from None
        raise


class connect(AsyncConnect[ClientConnection]):
    """Open a WebSocket connection to ``uri``.

    Await it for a :class:`ClientConnection` (then close it yourself), use it
    with ``async with`` to close the connection on exit, or iterate over it
    with ``async for`` to connect again each time the connection drops or
    cannot be opened::

        async for websocket in connect(uri):
            try:
                async for message in websocket:
                    ...
            except ConnectionClosed:
                continue

    The iteration waits between failed attempts with exponential backoff and
    jitter, and stops with the exception when ``process_exception`` calls it
    fatal. After a connection that was open drops, it reconnects at once.
    Leaving the loop (``break``, or an exception) closes the current
    connection only when the abandoned iterator is finalized, a moment later;
    ``await websocket.close()`` first to close it at once.

    ``uri`` is a ``ws://`` or ``wss://`` URI, or a ``ws+unix://`` (or
    ``wss+unix://``) URI whose authority is the percent-encoded path of a
    Unix socket: ``ws+unix://%2Frun%2Fapp.sock/chat`` connects to
    ``/run/app.sock`` and requests ``/chat`` with ``Host: localhost`` (see
    :func:`parse_unix_uri`). An invalid URI raises
    :class:`~tether.exceptions.InvalidURI` at once.

    Redirects (300, 301, 302, 303, 307, 308 with a ``Location``) are
    followed as websockets follows them, at most 10 times
    (``WEBSOCKETS_MAX_REDIRECTS``); see :mod:`tether.follow`.

    Options of the handshake:

    * ``origin``: the ``Origin`` header; none by default.
    * ``extensions``: the extension factories to offer, in order of preference.
    * ``subprotocols``: the subprotocols to offer, in order of preference;
      :attr:`ClientConnection.subprotocol` gives the one the server picked.
    * ``compression``: ``"deflate"`` (the default) offers permessage-deflate
      on top of ``extensions``; ``None`` does not.
    * ``additional_headers``: more request headers (a mapping, a
      :class:`~tether.protocol.headers.Headers` or name-value pairs), such as
      ``Authorization``; ``extra_headers`` is another name for it.
    * ``user_agent_header``: the ``User-Agent`` header; ``None`` sends none.
    * ``auth``: a ``(username, password)`` pair that answers a 401's Digest
      challenge (RFC 7616) or Basic challenge, once, on a new connection.
      Credentials in the URI are sent as Basic at once, and answer a Digest
      challenge too.
    * ``open_timeout``: seconds allowed for TCP, the proxy, TLS, redirects
      and the handshake together before :class:`TimeoutError`; ``None``
      waits forever.
    * ``limits``: a :class:`~tether.protocol.http11.Limits` bounding the
      server's (and an HTTP proxy's) response.

    Options of the proxy:

    * ``proxy``: ``True`` (the default) goes through the system's proxy, from
      the ``https_proxy``, ``http_proxy``, ``all_proxy`` and ``no_proxy``
      environment variables (see :func:`tether.proxy.get_proxy`); ``None``
      connects directly; a URI (``http://``, ``https://``, ``socks5h://``,
      ``socks5://``, ``socks4a://``, ``socks4://``, with optional
      ``user:password@``) names the proxy. HTTP proxies get ``CONNECT``;
      SOCKS proxies need ``pip install 'tether[socks]'``. With ``sock``,
      ``unix``, ``host`` or ``port``, the system's proxy is not used.
    * ``proxy_ssl``: the :class:`ssl.SSLContext` for an ``https://`` proxy
      (by default that of :func:`ssl.create_default_context`);
      ``proxy_server_hostname``: the name its certificate is checked
      against, by default the proxy's host. Other ``proxy_`` keywords, such
      as ``proxy_ssl_handshake_timeout``, go to the connection to the proxy.

    Options of the connection:

    * ``ping_interval``: seconds between keepalive pings; ``None`` disables them.
      Pings of many connections are grouped, so one may come up to a
      sixteenth of the interval late.
    * ``ping_timeout``: seconds to wait for a pong before failing the
      connection with 1011; ``None`` waits forever.
    * ``close_timeout``: seconds the closing handshake may take before TCP
      is dropped; ``None`` waits forever.
    * ``max_size``: the largest incoming message, in bytes; a larger one
      fails the connection with 1009. ``None`` means no limit. A
      ``(max_message_size, max_fragment_size)`` pair bounds each frame too.
    * ``max_queue``: how many received messages may wait to be read before
      reading from the network pauses; ``None`` means no limit. A
      ``(high, low)`` pair also says when reading resumes.
    * ``write_limit``: the write buffer size in bytes above which
      :meth:`~ClientConnection.send` waits for it to drain; a ``(high,
      low)`` pair sets both marks of the transport's buffer.
    * ``logger``: a :class:`logging.Logger`, a :class:`logging.LoggerAdapter`
      or a logger name; ``"tether.client"`` by default.
    * ``create_connection``: what makes the connection, called like
      :class:`ClientConnection` (a subclass of it, or a function taking the
      same arguments).
    * ``listener``: a :class:`~tether.asyncio.listener.Listener` that receives the messages
      by callback instead of ``recv`` (see :mod:`tether.asyncio.listener`);
      each connection made, reconnections included, calls it back.
      ``create_connection`` is then called with ``listener=`` too, and makes
      a :class:`~tether.asyncio.listener.ListenerClientConnection`.

    Options of the transport:

    * ``ssl``: the :class:`ssl.SSLContext` of a ``wss://`` connection. By
      default (``None`` or ``True``) the context of
      :func:`ssl.create_default_context` verifies the certificate and the
      host name; pass a context with ``check_hostname = False`` and
      ``verify_mode = ssl.CERT_NONE`` to skip verification. A certificate that
      fails verification raises :class:`ssl.SSLCertVerificationError`, not
      wrapped. ``ssl`` with a ``ws://`` URI, and ``ssl=False`` with a
      ``wss://`` URI, raise :class:`ValueError`.
    * ``unix`` and ``path``: ``unix=True`` connects to the Unix socket at
      ``path``; the URI then gives only the ``Host`` header and the request
      target.
    * Every other keyword goes to :meth:`asyncio.loop.create_connection` (or
      :meth:`~asyncio.loop.create_unix_connection`): ``host`` and ``port``
      to reach another address while ``Host`` keeps the URI's name, ``sock``,
      ``local_addr``, ``family``, ``server_hostname`` (by default the URI's
      host), ``happy_eyeballs_delay`` and the others. An event loop that
      lacks one of them, as uvloop lacks ``happy_eyeballs_delay``, raises
      :class:`TypeError`. Through an HTTP proxy, ``server_hostname`` and the
      ``ssl_`` keywords apply to the TLS with the server, the others to the
      connection to the proxy.

    Options of ``async for``:

    * ``process_exception``: decides whether a failed attempt is retried;
      see :func:`process_exception`, the default.
    * ``reconnect_delays``: websockets' spelling: a function returning a
      generator of the delays between consecutive failed attempts, such as
      :func:`tether.reconnecting.backoff`. When given, it replaces the
      ``backoff_`` options.
    * ``backoff_initial_delay``, ``backoff_factor``, ``backoff_max_delay``:
      the n-th consecutive failure waits a random time between half and all
      of ``min(backoff_max_delay, backoff_initial_delay * backoff_factor**n)``
      seconds, n counting from 0. Either way, a refusal with ``Retry-After``
      waits at least that long, up to ``backoff_max_delay``.
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
        open_timeout: float | None = 10,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_size: int | tuple[int | None, int | None] | None = DEFAULT_MAX_SIZE,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = DEFAULT_WRITE_LIMIT,
        limits: Limits | None = None,
        logger: LoggerLike | str | None = None,
        create_connection: Callable[..., ClientConnection] | None = None,
        listener: Listener | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        unix: bool = False,
        path: str | None = None,
        process_exception: Callable[[Exception], Exception | None] = process_exception,
        reconnect_delays: Callable[[], Iterator[float]] | None = None,
        backoff_initial_delay: float = 1.0,
        backoff_factor: float = 1.618,
        backoff_max_delay: float = 60.0,
        **kwargs: Any,
    ) -> None:
        headers = pick_headers(additional_headers, extra_headers)
        extensions = client_extensions(compression, extensions)
        check_limits(max_queue, write_limit)
        self.uri = uri
        self.ws_uri, self.unix, self.path = check_client_target(uri, unix, path, ssl, auth)
        if isinstance(proxy, str):
            parse_proxy(proxy)  # An invalid proxy fails here, not on connecting.
            if self.unix or {"sock", "host", "port"} & kwargs.keys():
                raise ValueError("a proxy can't be combined with sock, unix, host or port")
        self.origin = origin
        self.extensions = extensions
        self.subprotocols = subprotocols
        self.additional_headers = headers
        self.user_agent_header = user_agent_header
        self.auth = auth
        self.proxy = proxy
        self.proxy_ssl = proxy_ssl
        self.proxy_server_hostname = proxy_server_hostname
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_size = max_size
        self.max_queue = max_queue
        self.write_limit = write_limit
        self.limits = limits
        self.logger = logger
        self.create_connection = (
            ClientConnection if create_connection is None else create_connection
        )
        if listener is not None:
            # Imported here: the listener module builds on this one.
            from tether.asyncio.listener import listener_connection  # noqa: PLC0415

            self.create_connection = listener_connection(listener, create_connection)
        self.ssl = ssl
        self.process_exception = process_exception
        self.reconnect_delays = reconnect_delays
        self.backoff_initial_delay = backoff_initial_delay
        self.backoff_factor = backoff_factor
        self.backoff_max_delay = backoff_max_delay
        self.create_connection_kwargs = kwargs
        self.connection: ClientConnection | None = None
        # Made before connecting: a bad option fails without touching the network.
        self._engine(self.ws_uri, self.additional_headers)

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

    async def _create(self) -> ClientConnection:
        kwargs = self.create_connection_kwargs
        follower = Follower(
            self.uri,
            self.ws_uri,
            self.additional_headers,
            self.auth,
            sock="sock" in kwargs,
            unix=self.unix,
            fixed_address="host" in kwargs or "port" in kwargs,
        )
        opening = OpeningDeadline(self.open_timeout, asyncio.get_running_loop().time)
        async with asyncio.timeout_at(opening.when):
            while True:
                opened, connection = await self._open(follower.ws_uri, follower.headers(), opening)
                transport = cast(asyncio.Transport, opened)
                try:
                    await connection._handshake
                except asyncio.CancelledError:
                    transport.abort()
                    raise
                except Exception as exc:
                    transport.abort()
                    outcome = follower.follow(exc)
                    if outcome is exc:
                        raise
                    if outcome is not None:
                        raise outcome from exc
                    connection.logger.info("following %s to %s", exc, follower.uri)
                    continue
                return connection

    async def _open(
        self, uri: WebSocketURI, headers: HeadersLike | None, opening: OpeningDeadline
    ) -> tuple[asyncio.BaseTransport, ClientConnection]:
        """Open TCP (through a proxy, if any) and TLS to ``uri``; the handshake starts."""
        engine = self._engine(uri, headers)

        def factory() -> ClientConnection:
            return self.create_connection(
                engine,
                logger=self.logger,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                close_timeout=self.close_timeout,
                max_queue=self.max_queue,
                write_limit=self.write_limit,
            )

        kwargs = dict(self.create_connection_kwargs)
        context: ssl_module.SSLContext | None = None
        if uri.secure:
            ssl = self.ssl
            context = (
                ssl
                if isinstance(ssl, ssl_module.SSLContext)
                else ssl_module.create_default_context()
            )
            kwargs.setdefault("server_hostname", uri.host)
        loop = asyncio.get_running_loop()
        if context is not None and opening.when is not None:
            # open_timeout bounds TCP, TLS and HTTP together; TLS alone gets
            # no more than that either, rather than asyncio's 60 s.
            kwargs.setdefault("ssl_handshake_timeout", opening.tls_handshake_timeout())
        transport: asyncio.BaseTransport
        if self.unix:
            transport, connection = await loop.create_unix_connection(
                factory, self.path, ssl=context, **kwargs
            )
            return transport, connection
        direct = "sock" in kwargs or "host" in kwargs or "port" in kwargs
        proxy = None if direct else resolve_proxy(self.proxy, uri)
        if proxy is None:
            if "sock" not in kwargs:
                kwargs.setdefault("host", uri.host)
                kwargs.setdefault("port", uri.port)
            transport, connection = await loop.create_connection(factory, ssl=context, **kwargs)
        elif proxy.scheme.startswith("socks"):
            local_addr = kwargs.pop("local_addr", None)
            socks = socks_proxy(proxy, "asyncio")
            try:
                sock = await socks.connect(uri.host, uri.port, local_addr=local_addr)
            except Exception as exc:
                raise socks_error(exc) from exc
            transport, connection = await loop.create_connection(
                factory, sock=sock, ssl=context, **kwargs
            )
        else:
            transport, connection = await self._through_http_proxy(
                proxy, uri, factory, context, kwargs
            )
        return transport, connection

    async def _through_http_proxy(
        self,
        proxy: Proxy,
        uri: WebSocketURI,
        factory: Callable[[], ClientConnection],
        context: ssl_module.SSLContext | None,
        kwargs: dict[str, Any],
    ) -> tuple[asyncio.BaseTransport, ClientConnection]:
        """Open a tunnel with ``CONNECT``, then TLS to the server inside it if ``wss://``."""
        loop = asyncio.get_running_loop()
        # TLS options are the server's; the rest, and proxy_ ones, the proxy's.
        tls_kwargs: dict[str, Any] = {}
        proxy_kwargs: dict[str, Any] = {}
        for key, value in kwargs.items():
            if key.startswith("ssl_") or key == "server_hostname":
                tls_kwargs[key] = value
            elif key.startswith("proxy_"):
                proxy_kwargs[key.removeprefix("proxy_")] = value
            else:
                proxy_kwargs[key] = value
        proxy_context: ssl_module.SSLContext | None = None
        if proxy.scheme == "https":
            proxy_context = self.proxy_ssl or ssl_module.create_default_context()
            proxy_kwargs["server_hostname"] = self.proxy_server_hostname or proxy.host
        elif self.proxy_ssl is not None or self.proxy_server_hostname is not None:
            raise ValueError("proxy_ssl and proxy_server_hostname are for https:// proxies")
        exchange = ProxyConnect(
            proxy, uri, user_agent_header=self.user_agent_header, limits=self.limits
        )
        transport, tunnel = await loop.create_connection(
            lambda: _ProxyTunnel(exchange),
            proxy.host,
            proxy.port,
            ssl=proxy_context,
            **proxy_kwargs,
        )
        try:
            await tunnel.done
            if transport.is_closing():
                # The proxy accepted, then hung up before the tunnel was used.
                raise InvalidProxyMessage("the proxy closed the tunnel")
            connection = factory()
            transport.set_protocol(connection)
            if context is not None:
                tls_transport = await _start_tls(loop, transport, connection, context, tls_kwargs)
                assert tls_transport is not None  # None only for a closed transport.
                transport = tls_transport
        except BaseException:
            transport.abort()
            raise
        connection.connection_made(transport)
        transport.resume_reading()
        return transport, connection

    async def _sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)

    async def _close_reconnected(self, connection: ClientConnection) -> None:
        await connection.close()


def unix_connect(path: str | None = None, uri: str | None = None, **kwargs: Any) -> connect:
    """Connect to a WebSocket server listening on the Unix socket at ``path``.

    ``uri`` gives the ``Host`` header and the request target; it defaults to
    ``ws://localhost/``, or ``wss://localhost/`` when ``ssl`` is given. Every
    other option is :func:`connect`'s.
    """
    return connect(unix_uri(uri, kwargs), unix=True, path=path, **kwargs)
