"""The threading client: :func:`connect`, and :func:`reconnect` for a connection that comes back."""

from __future__ import annotations

import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, Literal

from tether.extensions.base import ClientExtensionFactory
from tether.extensions.permessage_deflate import client_extensions
from tether.log import LoggerLike
from tether.opening import OpeningDeadline
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import _CONNECTING, DEFAULT_MAX_SIZE
from tether.protocol.handshake import USER_AGENT
from tether.protocol.headers import HeadersLike
from tether.protocol.uri import parse_uri
from tether.reconnecting import process_exception, raise_unless_retried, reconnect_delay
from tether.sync.connection import READ_SIZE, Connection

__all__ = ["ClientConnection", "connect", "reconnect", "unix_connect", "unix_reconnect"]


class ClientConnection(Connection):
    """The client side of a connection; :func:`connect` makes it."""

    protocol: ClientProtocol
    default_logger = "tether.client"

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
    open_timeout: float | None = 10,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    close_timeout: float | None = 10,
    max_size: int | None = DEFAULT_MAX_SIZE,
    max_queue: int | None = 16,
    logger: LoggerLike | str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    server_hostname: str | None = None,
    sock: socket.socket | None = None,
    unix: bool = False,
    path: str | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """Open a WebSocket connection to ``uri`` and return it once the handshake succeeded.

    Use the connection directly, or with ``with`` to close it on exit. Other
    keywords go to :func:`socket.create_connection` (``source_address``);
    ``sock`` gives a connected socket; ``unix=True`` with ``path`` connects to
    a Unix socket.
    """
    if additional_headers is not None and extra_headers is not None:
        raise TypeError("give additional_headers or extra_headers, not both")
    extensions = client_extensions(compression, extensions)
    parsed = parse_uri(uri)
    if ssl is not None and not parsed.secure:
        raise ValueError("ssl is only for wss:// URIs")
    # Made before connecting: a bad option fails without touching the network.
    engine = ClientProtocol(
        parsed,
        origin=origin,
        extensions=extensions,
        subprotocols=subprotocols,
        additional_headers=additional_headers if extra_headers is None else extra_headers,
        user_agent_header=user_agent_header,
        max_size=max_size,
        streaming=True,
    )
    opening = OpeningDeadline(open_timeout)
    deadline = opening.when
    if sock is None:
        if unix:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(open_timeout)
            sock.connect(path or "")
        else:
            host = kwargs.pop("host", parsed.host)
            port = kwargs.pop("port", parsed.port)
            sock = socket.create_connection((host, port), timeout=open_timeout, **kwargs)
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        # Frames are written whole; Nagle's algorithm would only delay them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if parsed.secure:
            context = ssl or ssl_module.create_default_context()
            if deadline is not None:
                # The TLS handshake counts toward open_timeout too.
                sock.settimeout(opening.tls_handshake_timeout())
            sock = context.wrap_socket(sock, server_hostname=server_hostname or parsed.host)
        connection = ClientConnection(
            sock,
            engine,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            logger=logger,
        )
        connection._handshake(deadline)
    except BaseException:
        sock.close()
        raise
    return connection


def reconnect(
    uri: str,
    *,
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
    ``process_exception`` function changes that choice, as in the asyncio
    client. Each connection
    is closed when the loop moves on. ``options`` are those of :func:`connect`.
    """
    attempts = 0
    while True:
        try:
            connection = connect(uri, **options)
        except Exception as exc:
            raise_unless_retried(process_exception, exc)
            delay = reconnect_delay(
                exc, attempts, backoff_initial_delay, backoff_factor, backoff_max_delay
            )
            attempts += 1
            logging.getLogger("tether.client").info(
                "connection failed (%s); retrying in %.1f seconds", exc, delay
            )
            time.sleep(delay)
            continue
        attempts = 0
        try:
            yield connection
        finally:
            connection.close()


def _unix_uri(uri: str | None, options: dict[str, Any]) -> str:
    if uri is not None:
        return uri
    return "ws://localhost/" if options.get("ssl") is None else "wss://localhost/"


def unix_connect(
    path: str | None = None, uri: str | None = None, **kwargs: Any
) -> ClientConnection:
    """Connect to a WebSocket server listening on the Unix socket at ``path``.

    ``uri`` gives the ``Host`` header and the request target; it defaults to
    ``ws://localhost/``, or ``wss://localhost/`` when ``ssl`` is given. Every
    other option is :func:`connect`'s.
    """
    return connect(_unix_uri(uri, kwargs), unix=True, path=path, **kwargs)


def unix_reconnect(
    path: str | None = None, uri: str | None = None, **kwargs: Any
) -> Generator[ClientConnection, None, None]:
    """Like :func:`unix_connect`, connecting again each time, as :func:`reconnect` does."""
    return reconnect(_unix_uri(uri, kwargs), unix=True, path=path, **kwargs)
