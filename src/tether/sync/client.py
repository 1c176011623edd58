"""The threading client: :func:`connect`, and :func:`reconnect` for a connection that comes back."""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Literal

from tether.extensions.base import ClientExtensionFactory
from tether.extensions.permessage_deflate import client_extensions
from tether.follow import Follower
from tether.log import LoggerLike
from tether.messages import MessageQueue
from tether.opening import OpeningDeadline
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import _CONNECTING, DEFAULT_MAX_SIZE
from tether.protocol.handshake import USER_AGENT
from tether.protocol.headers import HeadersLike
from tether.protocol.http11 import Limits
from tether.protocol.proxy import Proxy, ProxyConnect, parse_proxy
from tether.protocol.uri import WebSocketURI
from tether.proxy import ProxyOption, resolve_proxy, socks_error, socks_proxy
from tether.reconnecting import Backoff, process_exception, raise_unless_retried
from tether.sync.connection import READ_SIZE, Connection
from tether.sync.tunnel import relay
from tether.targets import check_ssl, parse_target, unix_uri

__all__ = ["ClientConnection", "connect", "reconnect", "unix_connect", "unix_reconnect"]


class ClientConnection(Connection):
    """The client side of a connection; :func:`connect` makes it."""

    __slots__ = ()

    protocol: ClientProtocol
    default_logger = "tether.client"
    _recv_blocks = True

    def _handshake(self, deadline: float | None) -> None:
        """Send the request and read the response; raise if the server refuses."""
        protocol = self.protocol
        protocol.send_request(protocol.connect())
        self.socket.sendall(b"".join(protocol.data_to_send()))
        while protocol.state is _CONNECTING:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out during the opening handshake")
                self.socket.settimeout(remaining)
            data = self.socket.recv(READ_SIZE)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
        self.socket.settimeout(None)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        # The handshake succeeded. The state may already be CLOSING: a server
        # that sends a message and closes at once can have its close frame
        # arrive with the 101, and whichever thread reads next takes it from there.
        self.logger.info("connected: %s", protocol.response and protocol.response.status_code)
        # Frames that came with the response are already in the engine.
        self._start()


def _read_proxy_answer(sock: socket.socket, exchange: ProxyConnect, deadline: float | None) -> None:
    """Send ``CONNECT`` on ``sock`` and read the proxy's answer, within ``deadline``."""
    sock.sendall(exchange.data_to_send())
    while True:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out waiting for the proxy's answer")
            sock.settimeout(remaining)
        # One byte past the answer would belong to the server, which never
        # speaks first: reading more than the answer is a broken proxy.
        data = sock.recv(READ_SIZE)
        if not data:
            exchange.receive_eof()
        elif exchange.receive_data(data):
            return


def _open_socket(
    uri: WebSocketURI,
    proxy: Proxy | None,
    *,
    deadline: float | None,
    open_timeout: float | None,
    proxy_ssl: ssl_module.SSLContext | None,
    proxy_server_hostname: str | None,
    user_agent_header: str | None,
    limits: Limits | None,
    kwargs: dict[str, Any],
) -> socket.socket:
    """Connect TCP to ``uri``, directly or through ``proxy``."""
    if proxy is None:
        host = kwargs.pop("host", uri.host)
        port = kwargs.pop("port", uri.port)
        return socket.create_connection((host, port), timeout=open_timeout, **kwargs)
    if proxy.scheme.startswith("socks"):
        socks = socks_proxy(proxy, "sync")
        try:
            sock: socket.socket = socks.connect(
                uri.host,
                uri.port,
                timeout=open_timeout,
                local_addr=kwargs.get("source_address"),
            )
        except Exception as exc:
            raise socks_error(exc) from exc
        return sock
    if proxy.scheme != "https" and (proxy_ssl is not None or proxy_server_hostname is not None):
        raise ValueError("proxy_ssl and proxy_server_hostname are for https:// proxies")
    sock = socket.create_connection((proxy.host, proxy.port), timeout=open_timeout, **kwargs)
    try:
        if proxy.scheme == "https":
            context = proxy_ssl or ssl_module.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=proxy_server_hostname or proxy.host)
        exchange = ProxyConnect(proxy, uri, user_agent_header=user_agent_header, limits=limits)
        _read_proxy_answer(sock, exchange, deadline)
    except BaseException:
        sock.close()
        raise
    if isinstance(sock, ssl_module.SSLSocket) and uri.secure:
        # TLS to the server inside TLS to the proxy: through a relay.
        return relay(sock)
    return sock


def connect(
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
    limits: Limits | None = None,
    logger: LoggerLike | str | None = None,
    create_connection: Callable[..., ClientConnection] | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    sock: socket.socket | None = None,
    unix: bool = False,
    path: str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` and return it once the handshake succeeded.

    Use the connection directly, or with ``with`` to close it on exit. Other
    keywords go to :func:`socket.create_connection` (``source_address``);
    ``host`` and ``port`` reach another address than the URI's; ``sock``
    gives a connected socket; ``unix=True`` with ``path``, or a
    ``ws+unix://`` URI, connects to a Unix socket.

    The options are those of the asyncio :func:`tether.connect`: redirects
    are followed the same way, ``auth`` answers a Digest or Basic
    challenge, ``proxy`` (``True`` for the system's proxy, ``None``, or a
    URI), ``proxy_ssl`` and ``proxy_server_hostname`` choose the proxy,
    ``max_size`` and ``max_queue`` take websockets' pairs, ``limits`` bounds
    the responses read, and ``create_connection`` makes the connection,
    called like :class:`ClientConnection` (``sock``, ``protocol`` and
    keywords). ``ssl`` is the :class:`ssl.SSLContext` of a ``wss://`` URI
    (``None`` or ``True``: :func:`ssl.create_default_context`'s); as in the
    async APIs, ``ssl=False`` is only for ``ws://`` URIs. ``open_timeout``
    bounds everything up to the open connection, proxy and redirects
    included. A ``wss://`` URI through an ``https://``
    proxy (TLS inside TLS) goes through a relay thread (see
    :mod:`tether.sync.tunnel`); the connection's ``remote_address`` is then
    that of a local socket pair.
    """
    if additional_headers is not None and extra_headers is not None:
        raise TypeError("give additional_headers or extra_headers, not both")
    extensions = client_extensions(compression, extensions)
    MessageQueue(max_queue)  # Before connecting.
    parsed, unix, path = parse_target(uri, unix, path)
    check_ssl(parsed, ssl)
    if isinstance(proxy, str):
        parse_proxy(proxy)  # An invalid proxy fails here, not on connecting.
    fixed_address = "host" in kwargs or "port" in kwargs
    if (sock is not None or unix or fixed_address) and isinstance(proxy, str):
        raise ValueError("a proxy can't be combined with sock, unix, host or port")
    make_connection = ClientConnection if create_connection is None else create_connection
    headers = additional_headers if extra_headers is None else extra_headers

    def engine(target: WebSocketURI, request_headers: HeadersLike | None) -> ClientProtocol:
        return ClientProtocol(
            target,
            origin=origin,
            extensions=extensions,
            subprotocols=subprotocols,
            additional_headers=request_headers,
            user_agent_header=user_agent_header,
            max_size=max_size,
            streaming=True,
            limits=limits,
        )

    # Made before connecting: a bad option fails without touching the network.
    engine(parsed, headers)
    follower = Follower(
        uri, parsed, headers, auth, sock=sock is not None, unix=unix, fixed_address=fixed_address
    )
    opening = OpeningDeadline(open_timeout)
    deadline = opening.when

    def attempt(target: WebSocketURI, request_headers: HeadersLike | None) -> ClientConnection:
        protocol = engine(target, request_headers)
        remaining = opening.tls_handshake_timeout()
        connected = sock
        if connected is None:
            if unix:
                connected = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    connected.settimeout(remaining)
                    connected.connect(path or "")
                except BaseException:
                    connected.close()
                    raise
            else:
                use = None if fixed_address else resolve_proxy(proxy, target)
                connected = _open_socket(
                    target,
                    use,
                    deadline=deadline,
                    open_timeout=remaining,
                    proxy_ssl=proxy_ssl,
                    proxy_server_hostname=proxy_server_hostname,
                    user_agent_header=user_agent_header,
                    limits=limits,
                    kwargs=dict(kwargs),
                )
        if connected.family in (socket.AF_INET, socket.AF_INET6):
            # Frames are written whole; Nagle's algorithm would only delay them.
            connected.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if target.secure:
                context = (
                    ssl
                    if isinstance(ssl, ssl_module.SSLContext)
                    else ssl_module.create_default_context()
                )
                if deadline is not None:
                    # The TLS handshake counts toward open_timeout too.
                    connected.settimeout(opening.tls_handshake_timeout())
                connected = context.wrap_socket(
                    connected, server_hostname=server_hostname or target.host
                )
            connection = make_connection(
                connected,
                protocol,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                close_timeout=close_timeout,
                max_queue=max_queue,
                logger=logger,
            )
            connection._handshake(deadline)
        except BaseException:
            connected.close()
            raise
        return connection

    while True:
        try:
            return attempt(follower.ws_uri, follower.headers())
        except Exception as exc:
            outcome = follower.follow(exc)
            if outcome is exc:
                raise
            if outcome is not None:
                raise outcome from exc
            logging.getLogger("tether.client").info("following %s to %s", exc, follower.uri)


def reconnect(
    uri: str,
    *,
    reconnect_delays: Callable[[], Iterator[float]] | None = None,
    backoff_initial_delay: float = 1.0,
    backoff_factor: float = 1.618,
    backoff_max_delay: float = 60.0,
    process_exception: Callable[[Exception], Exception | None] = process_exception,
    **options: Any,
) -> Generator[ClientConnection, None, None]:
    """Yield a connection to ``uri``, and a new one each time the last one ends.

    ``for ws in reconnect(uri): ...`` is the threading twin of the asyncio
    client's ``async for ws in connect(uri)``: failures that retrying may heal
    (network errors, timeouts, 5xx and 429 answers) are retried with
    exponential backoff and jitter; other errors are raised. A
    ``process_exception`` function changes that choice, and
    ``reconnect_delays`` replaces the ``backoff_`` options, as in the asyncio
    client. Each connection is closed when the loop moves on. ``options`` are
    those of :func:`connect`.
    """
    delays = Backoff(reconnect_delays, backoff_initial_delay, backoff_factor, backoff_max_delay)
    while True:
        try:
            connection = connect(uri, **options)
        except Exception as exc:
            raise_unless_retried(process_exception, exc)
            delay = delays.next(exc)
            logging.getLogger("tether.client").info(
                "connection failed (%s); retrying in %.3f seconds", exc, delay
            )
            time.sleep(delay)
            continue
        delays.reset()
        try:
            yield connection
        finally:
            connection.close()


def unix_connect(
    path: str | None = None, uri: str | None = None, **kwargs: Any
) -> ClientConnection:
    """Connect to a WebSocket server listening on the Unix socket at ``path``.

    ``uri`` gives the ``Host`` header and the request target; it defaults to
    ``ws://localhost/``, or ``wss://localhost/`` when ``ssl`` is given
    (other than ``False``), as in the asyncio and trio APIs. Every
    other option is :func:`connect`'s.
    """
    return connect(unix_uri(uri, kwargs), unix=True, path=path, **kwargs)


def unix_reconnect(
    path: str | None = None, uri: str | None = None, **kwargs: Any
) -> Generator[ClientConnection, None, None]:
    """Like :func:`unix_connect`, connecting again each time, as :func:`reconnect` does."""
    return reconnect(unix_uri(uri, kwargs), unix=True, path=path, **kwargs)
