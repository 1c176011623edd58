"""The WebSocket protocol class uvicorn hands upgraded connections to.

uvicorn's HTTP protocol reads a request, sees ``Upgrade: websocket``, builds
the ``--ws`` class with ``config``, ``server_state`` and ``app_state``,
switches the transport to it, and feeds it the request again as bytes. From
there tether's engine reads the handshake and the frames, and this class
turns its events into ASGI messages for the application and the
application's messages into engine calls.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.utils import ClientDisconnected, get_local_addr, get_remote_addr, is_ssl

from tether.asgi.responses import Denial, add_default_headers
from tether.asgi.scope import build_scope
from tether.asyncio import keepalive
from tether.asyncio._closing import TransportEnding
from tether.asyncio._writing import write_chunks
from tether.asyncio.keepalive import Bucket
from tether.exceptions import InvalidState
from tether.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from tether.log import ConnectionLogger, connection_logger
from tether.messages import MessageQueue
from tether.pings import PingTracker
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CLOSED, _CONNECTING, _OPEN, message_frame
from tether.protocol.events import CloseReceived, Event, Pong, RequestReceived
from tether.protocol.http11 import Request, Response
from tether.protocol.server import ServerProtocol

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

__all__ = ["WebSocketProtocol"]

LOGGER = "tether.asgi"
"""The name of the logger of the connections: records are prefixed with the client's address."""

_logging = logging.getLogger(LOGGER)

Message = dict[str, Any]
"""An ASGI message, either way."""

ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[object],
]
"""An ASGI 3 application (it should return ``None``; uvicorn's classes say when it does not)."""

CLOSE_TIMEOUT = 10.0
"""How long the closing handshake may take before TCP is dropped, as uvicorn's own classes."""

# The connection's stages, as far as the application goes.
_HANDSHAKE = 0  # The request was read; the application has not answered yet.
_ACCEPTED = 1  # The WebSocket is open for the application.
_CLOSED_BY_APP = 2  # The application sent websocket.close.
_DENYING = 3  # The application is sending an HTTP response instead.
_DONE = 4  # Nothing more for the application to send.

_CONNECT: Message = {"type": "websocket.connect"}

# uvicorn's own classes' settings: smaller windows and memory level than
# zlib's defaults, for servers that hold many connections. A factory only
# holds settings: every connection shares it.
_DEFLATE = [
    ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
]


_Addresses = tuple[tuple[str, int | None] | None, tuple[str, int] | None, bool]
"""The server's address, the client's, and whether the connection runs TLS."""


def _http_addresses(transport: asyncio.Transport) -> _Addresses | None:
    """The addresses and TLS of the connection, from the HTTP protocol handing it over.

    uvicorn's HTTP protocols read them from the socket when the connection
    came, and are still the transport's protocol while they call
    :meth:`WebSocketProtocol.connection_made`: taking them from there saves
    asking the kernel again. ``None`` when the transport's protocol is not
    such a protocol.
    """
    try:
        http = transport.get_protocol()
    except NotImplementedError:
        return None
    server = getattr(http, "server", _UNSET)
    client = getattr(http, "client", _UNSET)
    scheme = getattr(http, "scheme", None)
    if (
        scheme not in ("http", "https")
        or not (server is None or type(server) is tuple)
        or not (client is None or type(client) is tuple)
    ):
        return None
    return server, client, scheme == "https"


_UNSET = object()


def _text(message: Message) -> str:
    """The ``text`` of a ``websocket.send`` without ``bytes``."""
    text = message.get("text")
    if text is None:
        raise TypeError("websocket.send needs 'bytes' or 'text' that is not None")
    if type(text) is not str:
        raise TypeError(f"websocket.send: 'text' must be str, got {type(text).__name__}")
    return text


class WebSocketProtocol(TransportEnding, asyncio.Protocol):
    """uvicorn's ``--ws`` protocol, on tether's engine: ``--ws tether.asgi:WebSocketProtocol``.

    It implements the ASGI WebSocket specification 2.4 with the denial
    response extension, and honours uvicorn's ``--ws-max-size``,
    ``--ws-max-queue`` (received messages waiting for the application before
    reading stops), ``--ws-ping-interval``, ``--ws-ping-timeout``,
    ``--ws-per-message-deflate``, ``--root-path``, its default headers and
    its graceful shutdown (close code 1012). uvicorn builds it; applications
    never do.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = cast(ASGIApp, config.loaded_app)
        self._loop = _loop or asyncio.get_event_loop()
        self.app_state = app_state
        # Attributes are kept to 30 at most: past that, CPython stops sharing
        # the keys of instance dictionaries, and every attribute read on the
        # per-message path gets slower (uvicorn's sets of connections and
        # tasks are read through server_state for that reason).
        self.server_state = server_state
        self.protocol = ServerProtocol(
            extensions=_DEFLATE if config.ws_per_message_deflate else None,
            max_size=config.ws_max_size,
            server_header=None,
        )
        """tether's engine for this connection."""
        self.ping_interval: float | None = config.ws_ping_interval or None
        self.ping_timeout: float | None = config.ws_ping_timeout
        self.transport: asyncio.Transport | None = None
        # The server's and the client's addresses and whether TLS runs, for the scope.
        self._addresses: _Addresses = (None, None, False)
        self.scope: dict[str, Any] | None = None
        """The ASGI scope, once the request is read."""
        self._stage = _HANDSHAKE
        self._response: Response | None = None
        self._denial: Denial | None = None
        self._messages = MessageQueue(config.ws_max_queue or None)
        self._connect_given = False
        self._disconnect: Message | None = None
        self._receiver: asyncio.Future[None] | None = None
        self._writers: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._replies_paused = False
        self._writing_paused = False
        self._lost = False
        self._eof_written = False
        self._close_timer: asyncio.TimerHandle | None = None
        # Keepalive pings waiting for their pong: made with the first one.
        self._pings: PingTracker[None] | None = None
        self._keepalive: Bucket | None = None
        self._logger: ConnectionLogger | None = None

    @property
    def logger(self) -> ConnectionLogger:
        """The logger of this connection, ``tether.asgi``, made when first needed."""
        logger = self._logger
        if logger is None:
            address = self._addresses[1]
            label = f"{address[0]}:{address[1]}" if address else "-"
            logger = self._logger = connection_logger(None, LOGGER, label, self)
        return logger

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport uvicorn switched over (uvicorn calls this)."""
        self.transport = cast(asyncio.Transport, transport)
        connections: set[Any] = self.server_state.connections  # typed for uvicorn's classes
        connections.add(self)
        addresses = _http_addresses(self.transport)
        if addresses is None:
            transport = self.transport
            addresses = (get_local_addr(transport), get_remote_addr(transport), is_ssl(transport))
        self._addresses = addresses

    def data_received(self, data: bytes) -> None:
        """Feed the engine (asyncio calls this; uvicorn first, with the request)."""
        protocol = self.protocol
        if protocol.extensions:
            # One read of compressed data must not inflate into more messages
            # than the queue holds: the engine keeps the rest, compressed.
            protocol.message_budget = self._budget()
        if protocol.receive_data(data) and self._disconnect is None:
            # Nothing but whole messages, and nothing to send: the common case,
            # with _queued() written out.
            messages = self._messages
            messages.extend_whole(protocol.events())
            if messages.ready >= messages.full_at:
                self._queued()
                return
            receiver = self._receiver
            if receiver is not None and not receiver.done():
                receiver.set_result(None)
            return
        self._process()

    def eof_received(self) -> bool | None:
        """Tell the engine the client closed its side (asyncio calls this)."""
        self.protocol.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Report the disconnect to the application (asyncio calls this)."""
        self._lost = True
        self.server_state.connections.discard(self)
        keepalive.cancel(self)
        self._cancel_close_timer()
        if self.protocol.state is not _CLOSED:
            self.protocol.receive_eof()
            self.protocol.events()
        # As uvicorn's classes: 1005 once the application accepted (no close
        # frame came), 1006 before or after a denial.
        self._set_disconnect(1005 if self._stage in (_ACCEPTED, _CLOSED_BY_APP) else 1006)
        self._wake_writers()
        self._stage = _DONE

    def pause_writing(self) -> None:
        """Stop the application's sends while the write buffer is full (asyncio calls this)."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """Let the application's sends go on (asyncio calls this)."""
        self._writing_paused = False
        if self._replies_paused:
            self._replies_paused = False
            if not self._reading_paused and self.transport is not None:
                self.transport.resume_reading()
        self._wake_writers()

    # uvicorn's side

    def shutdown(self) -> None:
        """Close for a server shutdown: 1012 on an open connection (uvicorn calls this).

        The application sees ``websocket.disconnect`` with 1012 at once. The
        client has the closing handshake's timeout, at most
        ``--timeout-graceful-shutdown``, to answer before TCP is dropped.
        """
        keepalive.cancel(self)
        transport = self.transport
        if transport is None or self._lost:
            return
        protocol = self.protocol
        if self._stage == _ACCEPTED and protocol.state is _OPEN:
            self._set_disconnect(1012)
            protocol.send_close(CloseCode.SERVICE_RESTART)
            self._flush()
            self._read_on()
        elif self._stage == _HANDSHAKE:
            self._reject(500, "Internal Server Error")
        elif protocol.state is not _OPEN and not self._eof_written:
            # (Half-closed after the closing handshake, TCP ends with the
            # client's EOF or the timeout below.)
            transport.close()
            return
        self._arm_close_timer(self._shutdown_timeout())

    def _shutdown_timeout(self) -> float:
        limit = self.config.timeout_graceful_shutdown
        return CLOSE_TIMEOUT if limit is None else min(CLOSE_TIMEOUT, float(limit))

    # Engine events

    def _process(self) -> None:
        """Handle the engine's events, then write what it has to send."""
        events = self.protocol.events()
        if events:
            if self._disconnect is not None:
                # Messages after the disconnect the application will read (its
                # own close, a shutdown) are dropped, as uvicorn's classes do.
                others: Sequence[Event] = [e for e in events if type(e) is CloseReceived]
            else:
                others = self._messages.extend(events)
                if len(others) < len(events):
                    self._queued()
            for event in others:
                self._handle_event(event)
        self._flush(replies=True)

    def _queued(self) -> None:
        """Messages were queued: wake the application, and stop reading once the queue is full."""
        messages = self._messages
        if messages.ready >= messages.full_at and not self._reading_paused:
            self._reading_paused = True
            if self.transport is not None and not self._replies_paused:
                self.transport.pause_reading()
        receiver = self._receiver
        if receiver is not None and not receiver.done():
            receiver.set_result(None)

    def _handle_event(self, event: Event) -> None:
        if type(event) is RequestReceived:
            self._request_received(event.request)
        elif type(event) is Pong:
            pings = self._pings
            if (
                pings is not None
                and pings.answer(event.data, time.monotonic())
                and self.ping_timeout is not None
            ):
                self._start_keepalive()
        elif type(event) is CloseReceived:
            close = event.close
            self._set_disconnect(close.code, close.reason)

    def _request_received(self, request: Request) -> None:
        response = self.protocol.accept(request)
        if response.status_code != 101:
            # Not a valid handshake: the engine's answer, the application never sees it.
            self._stage = _DONE
            self._send_response(add_default_headers(response, self.server_state.default_headers))
            return
        self._response = response
        server, client, tls = self._addresses
        self.scope = build_scope(
            request,
            asgi_version=self.config.asgi_version,
            scheme="wss" if tls else "ws",
            server=server,
            client=client,
            root_path=self.config.root_path,
            state=self.app_state.copy(),
        )
        task = self._loop.create_task(self._run_asgi(self.scope))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    # Running the application

    async def _run_asgi(self, scope: dict[str, Any]) -> None:
        try:
            result = await self.app(scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException as exc:
            self.logger.error("Exception in ASGI application", exc_info=exc)
            self._app_finished(CloseCode.INTERNAL_ERROR)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            return
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but returned %r.", result)
        self._app_finished(CloseCode.NORMAL_CLOSURE)

    def _app_finished(self, code: int) -> None:
        """The application returned (or raised): finish what it left open."""
        stage = self._stage
        if stage == _HANDSHAKE:
            if code == CloseCode.NORMAL_CLOSURE:
                self.logger.error("ASGI callable returned without completing handshake.")
            self._reject(500, "Internal Server Error")
        elif stage == _ACCEPTED and self.protocol.state is _OPEN:
            # Left open: close it, 1000 on return and 1011 on an exception.
            self._stage = _CLOSED_BY_APP
            self.protocol.send_close(code)
            self._flush()
            self._read_on()
            self._arm_close_timer(CLOSE_TIMEOUT)
        elif stage == _DENYING:
            # A denial cut short: the client must not wait for the rest.
            self._stage = _DONE
            if self.transport is not None:
                self.transport.close()
        elif (
            self.protocol.state is not _OPEN
            and self.transport is not None
            and self._close_timer is None
            and self.protocol.close_transport
        ):
            self.transport.close()

    async def receive(self) -> Message:
        """The application's ``receive``: connect, then messages, then disconnect."""
        if not self._connect_given:
            self._connect_given = True
            return _CONNECT
        messages = self._messages
        while not messages.ready:
            disconnect = self._disconnect
            if disconnect is not None:
                return disconnect
            receiver = self._receiver = self._loop.create_future()
            try:
                await receiver
            finally:
                self._receiver = None
        data = messages.get()
        if self._reading_paused or self.protocol.message_budget is not None:
            self._maybe_resume_reading()
        if type(data) is str:
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def send(self, message: Message) -> None:
        """The application's ``send``; raise ``ClientDisconnected`` once the client is gone."""
        if self._writing_paused:
            await self._drain()
        if self._lost:
            raise ClientDisconnected()
        kind = message["type"]
        stage = self._stage
        if stage == _ACCEPTED and kind == "websocket.send":
            # The message sent, written out: this runs for every message.
            data = message.get("bytes")
            if data is None:
                data = _text(message)
            elif type(data) is not bytes and not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"websocket.send: 'bytes' must be bytes, got {type(data).__name__}")
            protocol = self.protocol
            transport = self.transport
            assert transport is not None
            frame = message_frame(protocol, data, None)
            if frame is not None:
                if not transport.is_closing():
                    transport.write(frame)
                return
            try:
                protocol.send_message(data)
            except InvalidState:
                raise ClientDisconnected() from None
            output = protocol.data_to_send()
            if not transport.is_closing():
                write_chunks(transport, output)
        elif stage == _ACCEPTED:
            if kind == "websocket.close":
                self._close(message.get("code", CloseCode.NORMAL_CLOSURE), message.get("reason"))
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', "
                    f"but got {kind!r}."
                )
        elif stage == _HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                # Closed before accepting: HTTP 403, as uvicorn's classes answer.
                self._set_disconnect(1006)
                self._log_answer("403")
                self._reject(403, "")
            elif kind == "websocket.http.response.start":
                self._denial = Denial(
                    message["status"],
                    message.get("headers", ()),
                    self.server_state.default_headers,
                )
                self._stage = _DENYING
                self._log_answer(str(message["status"]))
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' "
                    f"or 'websocket.http.response.start' but got {kind!r}."
                )
        elif stage == _DENYING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body' but got {kind!r}."
                )
            self._deny(message)
        elif stage == _CLOSED_BY_APP:
            raise RuntimeError(
                f"Unexpected ASGI message {kind!r}, after sending 'websocket.close'."
            )
        else:
            raise ClientDisconnected()

    def _accept(self, message: Message) -> None:
        response = self._response
        assert response is not None
        assert self.transport is not None
        add_default_headers(response, self.server_state.default_headers)
        headers = message.get("headers")
        if headers:
            response.headers.update(
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
            )
        subprotocol = message.get("subprotocol")
        if subprotocol:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        if self.transport.is_closing():
            return
        self._stage = _ACCEPTED
        self._log_answer("accepted")
        self._response = None
        self.protocol.send_response(response)
        # Frames sent right after the request were parsed by now: hand them over.
        self._process()
        self._start_keepalive()

    def _log_answer(self, answer: str) -> None:
        """Log the answer to the handshake at INFO level, as uvicorn's classes do."""
        scope = self.scope
        if scope is None or not _logging.isEnabledFor(logging.INFO):
            return
        target = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        self.logger.info('"WebSocket %s" %s', target, answer)

    def _close(self, code: int, reason: str | None) -> None:
        protocol = self.protocol
        reason = reason or ""
        self._stage = _CLOSED_BY_APP
        if protocol.state is not _OPEN:
            # Already closing (the client's close, a failure, a shutdown):
            # nothing more to say, as with uvicorn's classes.
            return
        # ValueError for a code or reason a close frame cannot carry.
        protocol.send_close(code, reason)
        self._set_disconnect(code, reason)
        self._flush()
        self._read_on()
        self._arm_close_timer(CLOSE_TIMEOUT)

    def _deny(self, message: Message) -> None:
        denial = self._denial
        assert denial is not None
        assert self.transport is not None
        more_body = bool(message.get("more_body", False))
        data = denial.body(message.get("body", b""), more_body)
        if not self.transport.is_closing():
            self.transport.write(data)
        if not more_body:
            self._stage = _DONE
            self._set_disconnect(1006)
            self.transport.close()

    def _reject(self, status: int, text: str) -> None:
        """Answer the handshake with an HTTP error instead of accepting it."""
        self._stage = _DONE
        if self.protocol.state is not _CONNECTING:
            return
        response = self.protocol.reject(status, text)
        self._send_response(add_default_headers(response, self.server_state.default_headers))

    def _send_response(self, response: Response) -> None:
        self.protocol.send_response(response)
        self._flush()

    # Receiving, paused and resumed

    def _budget(self) -> int | None:
        """How many more messages the engine may parse: the queue's free room while open."""
        max_queue = self._messages.max_queue
        if max_queue is None or self.protocol.state is not _OPEN or self._stage != _ACCEPTED:
            return None
        return max(0, max_queue - len(self._messages))

    def _maybe_resume_reading(self) -> None:
        protocol = self.protocol
        messages = self._messages
        if protocol.held_back and messages.low:
            protocol.message_budget = self._budget()
            protocol.resume_parsing()
            self._process()
        if self._reading_paused and not messages.full and not protocol.held_back:
            self._reading_paused = False
            if self.transport is not None and not self._replies_paused:
                self.transport.resume_reading()

    def _read_on(self) -> None:
        """After sending a close frame, read whatever waits, so that the peer's answer comes."""
        protocol = self.protocol
        if protocol.held_back:
            protocol.message_budget = None
            protocol.resume_parsing()
            self._process()
        if self._reading_paused:
            self._reading_paused = False
            if self.transport is not None and not self._replies_paused:
                self.transport.resume_reading()

    def _wake_receiver(self) -> None:
        receiver = self._receiver
        if receiver is not None and not receiver.done():
            receiver.set_result(None)

    def _set_disconnect(self, code: int, reason: str | None = None) -> None:
        """Record the one ``websocket.disconnect`` the application gets; the first one wins."""
        if self._disconnect is None:
            message: Message = {"type": "websocket.disconnect", "code": code}
            if reason is not None:
                message["reason"] = reason
            self._disconnect = message
            self._wake_receiver()

    # Sending, paused and resumed

    async def _drain(self) -> None:
        while self._writing_paused and not self._lost:
            writer = self._loop.create_future()
            self._writers.append(writer)
            await writer

    def _wake_writers(self) -> None:
        writers, self._writers = self._writers, []
        for writer in writers:
            if not writer.done():
                writer.set_result(None)

    def _flush(self, output: list[bytes] | None = None, *, replies: bool = False) -> None:
        """Write what the engine has to send; close TCP when the engine says so.

        ``replies`` tells that the bytes answer what the client sent (pongs,
        close frames) rather than what the application sends.
        """
        transport = self.transport
        if transport is None:
            return
        protocol = self.protocol
        if output is None:
            output = protocol.data_to_send()
        if output and not transport.is_closing():
            write_chunks(transport, output)
            if replies and self._writing_paused:
                # The engine answered pings of a client that does not read:
                # stop reading until the buffer drains, or pongs pile up.
                self._pause_for_replies()
        state = protocol.state
        if state is _OPEN or state is _CONNECTING:
            return
        close = protocol.close_sent
        if close is not None and protocol.close_rcvd is None:
            # The engine failed the connection (a protocol error, a message too
            # big, no pong in time): tell the application with the code it sent.
            self._set_disconnect(close.code, close.reason)
        if protocol.close_transport and not transport.is_closing():
            if protocol.half_close:
                self._linger(transport)
            else:
                transport.close()
                if not self._addresses[2] and not transport.get_write_buffer_size():
                    # Nothing left to write: the transport is lost right away,
                    # no timer needed. (TLS first exchanges close_notify.)
                    return
        self._arm_close_timer(CLOSE_TIMEOUT)

    def _pause_for_replies(self) -> None:
        if not self._replies_paused:
            self._replies_paused = True
            if not self._reading_paused and self.transport is not None:
                self.transport.pause_reading()

    def _connection_logger(self) -> ConnectionLogger:
        return self.logger

    # Keepalive, on the shared scheduler of tether's asyncio connections

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None and not self._lost:
            keepalive.schedule(self._loop, self, self.ping_interval)

    def _keepalive_due(self) -> None:
        """Send a keepalive ping, or fail with 1011 if the last one waited in vain."""
        protocol = self.protocol
        if protocol.state is not _OPEN or self._lost:
            return
        pings = self._pings
        if pings is None:
            pings = self._pings = PingTracker()
        if self.ping_timeout is not None and len(pings):
            self.logger.info("keepalive ping timeout: no pong within %s s", self.ping_timeout)
            protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            return
        payload = os.urandom(4)
        pings.add(payload, None, time.monotonic())
        protocol.send_ping(payload)
        self._flush()
        if self.ping_timeout is None:
            pings.drain()
            self._start_keepalive()
        else:
            # The pong schedules the next ping (_handle_event).
            keepalive.schedule(self._loop, self, self.ping_timeout)
