"""The threading server: :func:`serve`, with a thread per connection."""

from __future__ import annotations

import contextlib
import errno
import logging
import selectors
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from tether import legacy
from tether.exceptions import ConnectionClosed
from tether.extensions.base import ServerExtensionFactory
from tether.legacy import AbortHandshake
from tether.log import LoggerLike, connection_logger
from tether.messages import MessageQueue
from tether.opening import OpeningDeadline
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CONNECTING, _OPEN, DEFAULT_MAX_SIZE
from tether.protocol.events import RequestReceived
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Limits, Request, Response
from tether.protocol.server import Origin, ServerProtocol
from tether.proxies import ProxyHeaderReader, TrustedProxies
from tether.serving import (
    FAILED,
    SERVER_HELPERS,
    ServerSide,
    check_response,
    make_engines,
    server_helper,
)
from tether.sync.connection import Connection
from tether.sync.threads import LeanThread

if TYPE_CHECKING:
    from tether.sync.auth import basic_auth
    from tether.sync.broadcast import broadcast

__all__ = ["Server", "ServerConnection", "basic_auth", "broadcast", "serve", "unix_serve"]

HANDSHAKE_READ_SIZE = 4096
"""Bytes read at most at once during the opening handshake; a longer request takes more reads."""

ACCEPT_RETRY_DELAY = 1.0
"""Seconds :meth:`Server.serve_forever` waits when the process is out of file descriptors."""

# accept() errors that say the process or the system has no room for one more connection.
ACCEPT_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

Handler = Callable[["ServerConnection"], None]
"""A connection handler: a function taking the connection."""

ProcessRequest = Callable[["ServerConnection", Request], Response | None]
"""A hook that inspects the request and may answer it with an HTTP response instead."""

ProcessResponse = Callable[["ServerConnection", Request, Response], Response | None]
"""A hook that may alter or replace the handshake response."""

ServerSubprotocolSelector = Callable[["ServerConnection", Sequence[str]], str | None]
"""A hook that picks a subprotocol among those the client offered, or ``None``.

It gets the connection, as websockets' does; raising
:exc:`~tether.exceptions.NegotiationError` refuses the handshake with 400.
"""


class ServerConnection(ServerSide, Connection):
    """The server side of a connection, given to the handler by :func:`serve`."""

    __slots__ = ("server", "username")

    protocol: ServerProtocol
    default_logger = "tether.server"

    # The client's address that a trusted proxy gave, if any.
    _client: tuple[str, int] | None = None

    def __init__(
        self,
        sock: socket.socket,
        protocol: ServerProtocol,
        server: Server,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        logger: LoggerLike | str | None = None,
    ) -> None:
        # The options by name, not as **kwargs: CPython 3.11 runs such a
        # call on a new C stack frame, and each connection's thread keeps
        # the deepest C stack it ever reached resident (4 KiB a page).
        super().__init__(
            sock,
            protocol,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
            max_queue=max_queue,
            logger=logger,
        )
        self.server = server
        self.username: str | None = None
        """The user that :func:`~tether.sync.auth.basic_auth` let in, if any."""

    def _read_request(self, deadline: float | None) -> Request | None:
        protocol = self.protocol
        proxies = self.server.proxies
        header = None
        if self.server.proxy_protocol:
            header = ProxyHeaderReader(super().remote_address, proxies, self.logger)
        # Read into a buffer of this handshake's own, dropped with it: a recv
        # would make each read a bytes object of glibc's heap, which the
        # engine frees on this thread, and glibc keeps small freed chunks in
        # the freeing thread's cache, for the life of the connection.
        buffer = bytearray(HANDSHAKE_READ_SIZE)
        view = memoryview(buffer)
        while True:
            for event in protocol.events():
                if isinstance(event, RequestReceived):
                    if header is not None:
                        self._client = header.client
                    if proxies is not None and self._client is None:
                        peer = super().remote_address
                        self._client = proxies.client(peer, event.request.headers)
                    return event.request
            if protocol.state is not _CONNECTING:
                # The engine refused an unreadable request by itself.
                self.socket.sendall(b"".join(protocol.data_to_send()))
                return None
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out during the opening handshake")
                self.socket.settimeout(remaining)
            data: bytes | memoryview = view[: self.socket.recv_into(buffer)]
            if header is not None:
                if not header.feed(protocol, data):
                    return None
            elif data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()

    def _handshake(self, deadline: float | None) -> bool:
        """Read the request, answer it, and tell whether the connection is open."""
        request = self._read_request(deadline)
        if request is None:
            return False
        server = self.server
        # Read: from now on shutdown() lets the handshake end, and the
        # connection then closes with 1001 rather than lose its response.
        server._request_read(self.socket)
        try:
            response = None
            if server.process_request is not None:
                response = server.process_request(self, request)
                check_response(response, "process_request")
            if response is None:
                response = self._accept(request)
            if server.process_response is not None:
                replaced = server.process_response(self, request, response)
                check_response(replaced, "process_response")
                if replaced is not None:
                    response = replaced
        except AbortHandshake as exc:
            response = exc.response()
        except Exception:
            # Logged and answered as the asyncio and trio servers do (tether.serving).
            self.logger.error("opening handshake failed", exc_info=True)
            response = self.protocol.reject(500, FAILED)
        try:
            self.protocol.send_response(response)
        except ValueError:
            # A hook built a response that cannot go on the wire.
            self.logger.error("cannot send the handshake response", exc_info=True)
            return False
        self.socket.sendall(b"".join(self.protocol.data_to_send()))
        self.socket.settimeout(None)
        if response.status_code != 101:
            self.logger.info("refused connection: HTTP %d", response.status_code)
            return False
        if self._base_logger().isEnabledFor(logging.INFO):
            # Asked first: the connection's logger is made by its first record.
            self.logger.info("connection open: %s", request.path)
        self._start()
        return True


class Server:
    """A running threading WebSocket server, as :func:`serve` gives it."""

    def __init__(
        self,
        sock: socket.socket,
        handler: Handler,
        *,
        ssl: ssl_module.SSLContext | None,
        process_request: ProcessRequest | None,
        process_response: ProcessResponse | None,
        open_timeout: float | None,
        engines: Callable[[], ServerProtocol],
        connection_options: dict[str, Any],
        logger: LoggerLike | str | None,
        select_subprotocol: ServerSubprotocolSelector | None = None,
        create_connection: type[ServerConnection] | None = None,
        trusted_proxies: Sequence[str] | None = None,
        proxy_protocol: bool = False,
    ) -> None:
        self.proxies = None if trusted_proxies is None else TrustedProxies(trusted_proxies)
        """Whose word is believed on the client's address (``trusted_proxies``)."""
        self.proxy_protocol = proxy_protocol
        """Whether each connection starts with a PROXY protocol header."""
        self.socket = sock
        self.handler = handler
        self.select_subprotocol = select_subprotocol
        self.create_connection = create_connection or ServerConnection
        self.ssl = ssl
        self.process_request = process_request
        self.process_response = process_response
        self.open_timeout = open_timeout
        self.engines = engines
        self.connection_options = connection_options
        self.logger = connection_logger(logger, "tether.server", "server", self)
        # Dictionaries used as sets (keys only): at thousands of connections
        # a set's table takes about 100 bytes per item, a dict's about 30.
        self._connections: dict[ServerConnection, None] = {}
        # The threads of connections, from accept to the handler's end.
        self._threads: dict[threading.Thread, None] = {}
        # The sockets of connections in their opening handshake, from accept
        # on: shutdown() ends those, which a client that sends nothing would
        # otherwise hold until open_timeout (or for good, without one).
        self._opening: dict[socket.socket, None] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopped = threading.Event()
        self._serving = threading.Lock()

    @property
    def connections(self) -> set[ServerConnection]:
        """The open connections."""
        with self._lock:
            return {conn for conn in self._connections if conn.state is _OPEN}

    def fileno(self) -> int:
        """The listening socket's file descriptor."""
        return self.socket.fileno()

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`, each in its own thread."""
        with self._serving, selectors.DefaultSelector() as selector:
            if self._stopped.is_set():
                return
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopped.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, _ = self.socket.accept()
                    except OSError as exc:
                        if self.socket.fileno() == -1:  # pragma: no cover - closed under us
                            return
                        if exc.errno in ACCEPT_PAUSE_ERRNOS:
                            self._pause_accepting(exc)
                        # Else the client left before its accept: serve the next.
                        continue
                    thread = _HandlerThread(self, sock)
                    with self._lock:
                        self._threads[thread] = None
                        self._opening[sock] = None
                    try:
                        thread.start()
                    except RuntimeError as exc:
                        # No thread to be had: drop this client, not the server.
                        with self._lock:
                            self._threads.pop(thread, None)
                            self._opening.pop(sock, None)
                        sock.close()
                        self._pause_accepting(exc)

    def _pause_accepting(self, exc: BaseException) -> None:
        """Out of file descriptors, memory or threads: wait for some to come back.

        Serving on is better than ending :meth:`serve_forever`: connections
        end and give theirs back, while the waiting clients stay in the
        listening socket's backlog.
        """
        self.logger.error(
            "cannot accept a connection: %s; trying again in %s seconds", exc, ACCEPT_RETRY_DELAY
        )
        # shutdown() ends the wait.
        self._stopped.wait(ACCEPT_RETRY_DELAY)

    def _request_read(self, sock: socket.socket) -> None:
        with self._lock:
            self._opening.pop(sock, None)

    def _serve_one(self, sock: socket.socket) -> None:
        try:
            self._serve_connection(sock)
        finally:
            with self._lock:
                self._threads.pop(threading.current_thread(), None)

    def _open(self, sock: socket.socket) -> ServerConnection | None:
        """Run the opening handshake; return the open connection, or close the socket."""
        opening = OpeningDeadline(self.open_timeout)
        try:
            try:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ssl is not None:
                    # A socket's timeout bounds the whole TLS handshake, however
                    # slowly the bytes come; the HTTP handshake gets what is left.
                    sock.settimeout(opening.tls_handshake_timeout())
                    plain = sock
                    sock = self.ssl.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                    # The TLS socket took the file descriptor over: shutdown()
                    # must find it, or know that it could not.
                    with self._lock:
                        self._opening.pop(plain, None)
                        self._opening[sock] = None
                        if self._stopped.is_set():
                            raise ConnectionAbortedError("the server is shutting down")
                    sock.do_handshake()
                connection = self.create_connection(
                    sock, self.engines(), self, **self.connection_options
                )
                if connection._handshake(opening.when):
                    return connection
            finally:
                # Before the socket is closed: shutdown() must never reach a
                # file descriptor whose number was given to another socket.
                with self._lock:
                    self._opening.pop(sock, None)
        except Exception as exc:
            self.logger.info("opening handshake failed: %s", exc)
        sock.close()
        return None

    def _serve_connection(self, sock: socket.socket) -> None:
        # The handshake in a function of its own: what it made and no longer
        # needs goes with its frame, not kept while the handler runs.
        connection = self._open(sock)
        if connection is None:
            return
        with self._lock:
            # shutdown() closes the connections it knows, so it must know this one.
            stopping = self._stopped.is_set()
            if not stopping:
                self._connections[connection] = None
        if stopping:
            connection.close(CloseCode.GOING_AWAY)
            return
        try:
            self.handler(connection)
        except ConnectionClosed as exc:
            if connection.state is _OPEN:
                # Another connection closed: this one is still fine, the handler is not.
                connection.logger.exception("connection handler failed")
                connection.close(CloseCode.INTERNAL_ERROR)
            else:
                # The client left while the handler was talking to it: that is no bug.
                connection.logger.debug("connection handler ended by the closure: %s", exc)
                # Still wait, bounded by close_timeout, for the closing handshake to end.
                connection.close()
        except Exception:
            connection.logger.exception("connection handler failed")
            connection.close(CloseCode.INTERNAL_ERROR)
        except BaseException:
            # sys.exit() in a handler ends its thread only: nobody would
            # read the connection, nor would shutdown() know it anymore.
            connection.close(CloseCode.INTERNAL_ERROR)
            raise
        else:
            connection.close()
        finally:
            with self._lock:
                self._connections.pop(connection, None)

    def shutdown(
        self,
        close_connections: bool = True,
        code: int = CloseCode.GOING_AWAY,
        reason: str = "",
    ) -> None:
        """Stop accepting connections and close open ones with ``code`` (1001), unless told not to.

        Connections still in their opening handshake are dropped. Return once
        :meth:`serve_forever` returned and every connection's thread ended:
        its handler returned and the connection is closed.
        Calling it from a handler does not wait for that handler's own
        thread. Shutting down again does nothing.
        """
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        self._wake_w.send(b"x")
        # Wait for serve_forever to let go of the sockets before closing them.
        with self._serving:
            self.socket.close()
            self._wake_r.close()
            self._wake_w.close()
        with self._lock:
            # End the opening handshakes: a blocked read returns EOF, and
            # the connection's thread drops it.
            for sock in self._opening:
                with contextlib.suppress(OSError):
                    # socket.socket's own: an SSL socket's would drop its
                    # SSL object under the thread reading it.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
        if close_connections:
            with self._lock:
                connections = list(self._connections)
            closers = [
                threading.Thread(target=conn.close, args=(code, reason), daemon=True)
                for conn in connections
            ]
            for closer in closers:
                closer.start()
            for closer in closers:
                closer.join()
        # Wait for the handlers, as websockets does; they end on their own
        # once their connection is closed.
        while True:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                break
            for thread in threads:
                thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()


class _HandlerThread(LeanThread):
    """The thread of one connection, from accept to the handler's end."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        super().__init__()
        self.server = server
        self.sock = sock

    def run(self) -> None:
        self.server._serve_one(self.sock)


def serve(
    handler: Handler,
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    ssl: ssl_module.SSLContext | None = None,
    unix: bool = False,
    path: str | None = None,
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
    logger: LoggerLike | str | None = None,
    create_connection: type[ServerConnection] | None = None,
    limits: Limits | None = None,
    reuse_port: bool = False,
    backlog: int = 100,
    trusted_proxies: Sequence[str] | None = None,
    proxy_protocol: bool = False,
    **kwargs: Any,
) -> Server:
    """Listen for WebSocket connections; call :meth:`Server.serve_forever` to accept them.

    With ``host=None`` the server listens on every interface, IPv4 and IPv6.
    ``sock`` gives a listening socket; ``unix=True`` with ``path`` listens on
    a Unix socket (see :func:`unix_serve`). Other keyword arguments go to
    :func:`socket.create_server`, as ``reuse_port`` and ``backlog`` do.

    ``subprotocols`` lists the subprotocols the server speaks, in order of
    preference: a client that offers none of them is refused with 400.
    ``select_subprotocol(connection, subprotocols)`` replaces that choice.
    ``create_connection`` is the class of the connections, a subclass of
    :class:`ServerConnection`. The handshake hooks and the handler work as in
    :func:`tether.asyncio.server.serve`, websockets' older spellings included.

    ``max_size`` may be a ``(max_message_size, max_fragment_size)`` pair
    and ``max_queue`` a ``(high, low)`` pair, as in websockets; ``limits``
    (a :class:`~tether.protocol.http11.Limits`) bounds the handshake
    request's lines, headers and size.

    ``trusted_proxies`` and ``proxy_protocol`` take the client's address from
    a reverse proxy, as in :func:`tether.asyncio.server.serve`.
    """
    # At once, not by each connection it accepts.
    MessageQueue(max_queue)
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
    if sock is None:
        options: dict[str, Any] = {"backlog": backlog, "reuse_port": reuse_port}
        if unix:
            options["family"] = socket.AF_UNIX
            options.update(kwargs)
            sock = socket.create_server(path or "", **options)
        else:
            dual = host is None and socket.has_dualstack_ipv6()
            options["family"] = socket.AF_INET6 if dual else socket.AF_INET
            options["dualstack_ipv6"] = dual
            options.update(kwargs)
            sock = socket.create_server((host or "", port or 0), **options)
    connection_options = {
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "close_timeout": close_timeout,
        "max_queue": max_queue,
        "logger": logger,
    }
    return Server(
        sock,
        legacy.adapt_handler(handler),
        ssl=ssl,
        process_request=legacy.adapt_process_request(process_request),
        process_response=process_response,
        open_timeout=open_timeout,
        engines=engines,
        connection_options=connection_options,
        logger=logger,
        select_subprotocol=select_subprotocol,
        create_connection=create_connection,
        trusted_proxies=trusted_proxies,
        proxy_protocol=proxy_protocol,
    )


def unix_serve(handler: Handler, path: str | None = None, **kwargs: Any) -> Server:
    """Listen for WebSocket connections on the Unix socket at ``path``; see :func:`serve`."""
    return serve(handler, unix=True, path=path, **kwargs)


def __getattr__(name: str) -> Any:
    """Give ``basic_auth`` and ``broadcast`` from here too, as websockets does."""
    return server_helper(__name__, "tether.sync", name)


def __dir__() -> list[str]:
    """The module's names, ``basic_auth`` and ``broadcast`` included."""
    return sorted([*globals(), *SERVER_HELPERS])
