"""Callbacks for the hot path: :class:`Listener`, :func:`listen` and ``connect(listener=...)``.

A listener connection hands each message to :meth:`Listener.on_message`
straight from the protocol, in the read that brought it: no queue, no future,
no task wake-up. The engine underneath is the same as for the coroutine API,
with the same limits and the same closing handshake.

Backpressure: a callback cannot wait, so reading waits instead. While the
transport's write buffer is over ``write_limit`` nothing more is read from
the peer; reading resumes once the buffer drains below its low-water mark.
A peer that does not read what it is sent is not read from either.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tether.asyncio.client import ClientConnection
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection, serve
from tether.exceptions import ConcurrencyError, ConnectionClosed, PayloadTooBig, ProtocolError
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN
from tether.protocol.connection import Connection as Engine
from tether.protocol.events import Event, Message, ResponseReceived
from tether.protocol.frames import read_messages_python
from tether.protocol.speedups import speedups

__all__ = [
    "Listener",
    "ListenerClientConnection",
    "ListenerConnection",
    "ListenerServerConnection",
    "deliver_messages",
    "deliver_messages_python",
    "listen",
    "listener_connection",
]

_NOT_HERE = "this connection's messages go to its listener's on_message, not to recv"


OnMessage = Callable[[Any, str | bytes], object]


def deliver_messages_python(
    engine: Engine,
    data: bytes | bytearray | memoryview,
    on_message: OnMessage,
    connection: Any,
    limit: int | None = None,
) -> int | tuple[int, Exception]:
    """Hand the whole messages at the start of a read to ``on_message``, one by one.

    The messages are those the engine's fast path reads (each whole in one
    plain frame, within ``max_size``, valid UTF-8 for text, or compressed in
    one frame through the engine's only extension when it takes whole
    messages: see :func:`~tether.protocol.frames.read_messages_python`), at
    most ``limit`` of them (``None``: no bound), and only while the engine
    is between frames with nothing buffered; they never become events.
    ``on_message(connection, message)`` gets each as soon as it is read.
    Return how many bytes they took: the engine reads the rest. Return -1,
    with nothing done, when the engine is not free to skip. If
    ``on_message`` raises, return the bytes taken, its message included, and
    the exception. A compressed message that is invalid or over
    ``max_size`` fails the engine, as ``receive_data`` would, and the bytes
    taken end before its frame. The C accelerator's ``deliver_messages``
    does the same.
    """
    if engine._buffer or engine._partial is not None or engine._msg_text is not None:
        return -1
    if engine._input_done:
        return -1
    pos = count = 0
    messages: list[Event] = []
    while limit is None or count < limit:
        try:
            end = read_messages_python(
                data, pos, engine._expect_mask, engine._fast_max_size, 1, messages, engine._whole
            )
        except (ProtocolError, PayloadTooBig) as exc:
            engine._fail_with(exc)
            return pos
        if end == pos:
            return pos
        pos = end
        count += 1
        message = messages.pop()
        assert isinstance(message, Message)
        try:
            on_message(connection, message.data)
        except Exception as exc:
            return pos, exc
    return pos


deliver_messages: Callable[
    [Engine, bytes | bytearray | memoryview, OnMessage, Any, int | None],
    int | tuple[int, Exception],
] = deliver_messages_python if speedups is None else speedups.deliver_messages
""":func:`deliver_messages_python`, in C when the accelerator is built."""


class Listener:
    """What a listener connection calls back: subclass it and override what you need.

    Every method is optional (the base class's do nothing) and is a plain
    function, called in the event loop: it must return quickly and never
    block. Send with :meth:`~tether.asyncio.connection.Connection.send_nowait`;
    start anything longer as a task.

    An exception raised by :meth:`on_open` or :meth:`on_message` is logged
    with its traceback on the connection's logger (under ``tether``) and
    closes the connection with 1011, as an exception in a
    :func:`~tether.asyncio.server.serve` handler does; no message is delivered after it.
    One raised by :meth:`on_close` is logged.
    """

    def on_open(self, ws: Connection) -> None:
        """The connection ``ws`` is open: its handshake succeeded."""

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        """A whole message arrived on ``ws``: ``str`` for text, ``bytes`` for binary.

        Messages come whole, however many frames carried them, within the
        same limits as ``recv``'s: ``max_size`` (1009) and valid UTF-8 for
        text (1007).
        """

    def on_close(self, ws: Connection) -> None:
        """``ws`` is closed; called once, for a connection that opened.

        :attr:`~tether.attributes.ConnectionAttributes.close_code` and
        :attr:`~tether.attributes.ConnectionAttributes.close_reason` tell why.
        """


class ListenerConnection(Connection):
    """A connection that hands its messages to a :class:`Listener` instead of a queue.

    The receiving side of the coroutine API (``recv``, ``recv_streaming``,
    ``async for``) raises :class:`~tether.exceptions.ConcurrencyError` here;
    sending, ``ping``, ``close`` and ``wait_closed`` work as on any
    connection. :class:`ListenerServerConnection` and
    :class:`ListenerClientConnection` are the two sides.
    """

    # A mixin of the server and client connections: their slots hold the state.
    __slots__ = ()

    listener: Listener | None
    """The listener this connection calls back, once it is open."""

    _on_message: Callable[[Connection, str | bytes], None] | None
    _plain: bool
    _deliver_limit: int | None

    def _listening(self, listener: Listener | None) -> None:
        """Set up the state of a listener connection (the subclasses' ``__init__`` call this)."""
        self.listener = listener
        # The listener's on_message while messages go to it: None before
        # on_open and after a callback failed.
        self._on_message = None
        self._plain = False
        self._deliver_limit = None
        # Messages come whole, never piece by piece.
        self.protocol.streaming = False

    # No receiving here.

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> str | bytes:
        """Raise :class:`~tether.exceptions.ConcurrencyError`: messages go to the listener."""
        raise ConcurrencyError(_NOT_HERE)

    async def __anext__(self) -> str | bytes:
        """Raise :class:`~tether.exceptions.ConcurrencyError`: messages go to the listener."""
        raise ConcurrencyError(_NOT_HERE)

    def _begin_receiving(self) -> None:
        raise ConcurrencyError(_NOT_HERE)

    # The listener's calls.

    def _open_listener(self, listener: Listener | None = None) -> None:
        """Call ``on_open``: the handshake succeeded."""
        try:
            if listener is not None:
                self.listener = listener
            assert self.listener is not None
            self.listener.on_open(self)
        except Exception:
            self._callback_failed("on_open")
            return
        self._on_message = self.listener.on_message
        # Reads of whole messages may skip the engine's events: plain ones,
        # or compressed by the only extension if it takes whole messages
        # (permessage-deflate); not with an engine that logs its frames.
        protocol = self.protocol
        self._plain = (not protocol.extensions or protocol._whole is not None) and not hasattr(
            protocol, "frame_log"
        )
        # Compressed reads hand over as many messages at a time as the
        # engine's general path parses (see _feed_engine).
        self._deliver_limit = self._budget()

    def _callback_failed(self, name: str, exc: BaseException | None = None) -> None:
        """Log the exception being handled (or ``exc``) and close the connection with 1011.

        A :class:`~tether.exceptions.ConnectionClosed` let out once this
        connection is closing is no error (a send after the peer's close),
        as for a handler: it is logged at DEBUG only. Either way, the
        listener gets no more messages.
        """
        self._on_message = None
        if exc is None:
            exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionClosed) and self.protocol.state is not _OPEN:
            self.logger.debug("listener %s ended by the closure: %s", name, exc)
            return
        self.logger.error("listener %s failed", name, exc_info=exc)
        self._start_close(CloseCode.INTERNAL_ERROR, "")

    def _deliver(self, events: Sequence[Event]) -> None:
        """Hand the messages among ``events`` to the listener and handle the others, in order."""
        on_message = self._on_message
        for event in events:
            if type(event) is Message:
                if on_message is not None:
                    try:
                        on_message(self, event.data)
                    except Exception:
                        self._callback_failed("on_message")
                        on_message = None
                    else:
                        # on_message may have closed the connection, or failed it.
                        on_message = self._on_message
            else:
                self._handle_event(event)
                # The handshake's response opens a client's listener.
                on_message = self._on_message

    # Receiving from the engine.

    def data_received(self, data: bytes | memoryview) -> None:
        """Feed a read to the engine, and each message to the listener (uvloop calls this)."""
        # As when a reader waits: the first message sent is written at once.
        self._sent_since_wait = False
        on_message = self._on_message
        if self._plain and on_message is not None:
            # The common read, in one call: its messages straight to the listener.
            taken = deliver_messages(self.protocol, data, on_message, self, self._deliver_limit)
            if taken == len(data):
                if self._gathered is not None:
                    self._write_gathered()
                return
            if type(taken) is not int:
                taken, exc = taken  # type: ignore[misc]
                self._callback_failed("on_message", exc)
            if taken > 0:
                data = data[taken:]
        self._feed_engine(data)

    def _feed_engine(self, data: bytes | memoryview) -> None:
        """Feed a read to the engine's general path, and each message to the listener."""
        protocol = self.protocol
        if protocol.extensions:
            # One read of compressed data inflates into at most max_queue
            # messages at a time, each handed over before the next are made;
            # none while writing waits (after those deliver_messages took).
            protocol.message_budget = 0 if self._writing_paused else self._budget()
            protocol.receive_data(data)
            written = self._process()
            while protocol.held_back and not self._writing_paused:
                written += self._parse_held_back()
        else:
            written = self._process(protocol.receive_data(data))
        if self._gathered is not None:
            self._write_gathered()
        if written and self._writing_paused:
            self._limit_replies(written)

    def _parse_held_back(self) -> int:
        protocol = self.protocol
        protocol.message_budget = self._budget()
        protocol.resume_parsing()
        return self._process()

    def _process(self, only_messages: bool = False) -> int:
        """Hand the engine's events over, then send what it has to send; return its size."""
        events = self.protocol.events()
        if events:
            self._deliver(events)
        if only_messages or self.transport is None:
            return 0
        data = self.protocol.data_to_send()
        if data or self.protocol.state is not _OPEN:
            return self._flush(data)
        return 0

    def eof_received(self) -> bool | None:
        """Deliver what the engine held back, then note the end of input (asyncio calls this)."""
        if self.protocol.held_back:
            self.protocol.message_budget = None
            self.protocol.resume_parsing()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """Wrap up, then call ``on_close`` if ``on_open`` was called."""
        self._on_message = None
        super().connection_lost(exc)
        listener = self.listener
        if listener is not None:
            self.listener = None
            try:
                listener.on_close(self)
            except Exception:
                self.logger.error("listener on_close failed", exc_info=True)

    # Backpressure: reading waits while writing does.

    def pause_writing(self) -> None:
        """Stop reading from the peer while the write buffer is over ``write_limit``."""
        super().pause_writing()
        transport = self.transport
        if not self._reading_paused and transport is not None and self.protocol.state is _OPEN:
            self._reading_paused = True
            if not self._replies_paused:
                transport.pause_reading()

    def resume_writing(self) -> None:
        """Read again once the write buffer drained."""
        resume = self._reading_paused and not self._replies_paused
        self._reading_paused = False
        super().resume_writing()
        transport = self.transport
        if resume and transport is not None and not transport.is_closing():
            transport.resume_reading()
        self._sent_since_wait = False
        while self.protocol.held_back and not self._writing_paused:
            self._parse_held_back()
        if self._gathered is not None:
            self._write_gathered()


class ListenerServerConnection(ListenerConnection, ServerConnection):
    """The server side of a listener connection, made by :func:`listen`."""

    __slots__ = ("_deliver_limit", "_listener_factory", "_on_message", "_plain", "listener")

    def __init__(
        self,
        protocol: Any,
        server: Server,
        *,
        listener: Callable[[], Listener],
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol, server, **kwargs)
        self._listener_factory = listener
        self._listening(None)

    def _start(self) -> None:
        """Make this connection's listener and call its ``on_open``."""
        try:
            listener = self._listener_factory()
            if not isinstance(listener, Listener):
                raise TypeError(
                    f"the listener factory returned {type(listener).__name__}, not a Listener"
                )
        except Exception:
            self._callback_failed("factory")
            return
        self._open_listener(listener)


class ListenerClientConnection(ListenerConnection, ClientConnection):
    """The client side of a listener connection, made by ``connect(uri, listener=...)``."""

    __slots__ = ("_deliver_limit", "_on_message", "_opening_listener", "_plain", "listener")

    def __init__(self, protocol: Any, *, listener: Listener, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._opening_listener = listener
        self._listening(None)

    def _handle_event(self, event: Event) -> None:
        super()._handle_event(event)
        if type(event) is ResponseReceived and self.protocol.handshake_exc is None:
            self._open_listener(self._opening_listener)


def listener_connection(
    listener: Listener, create_connection: Callable[..., ClientConnection] | None
) -> Callable[..., ClientConnection]:
    """What makes the connections of ``connect(uri, listener=...)``.

    ``create_connection`` (a :class:`ListenerClientConnection` by default)
    gets ``listener=`` too. Raise :class:`TypeError` if ``listener`` is not
    a :class:`Listener`.
    """
    if not isinstance(listener, Listener):
        raise TypeError(f"listener must be a Listener, not {type(listener).__name__}")
    make = ListenerClientConnection if create_connection is None else create_connection
    return functools.partial(make, listener=listener)


async def _no_handler(connection: ServerConnection) -> None:  # pragma: no cover - never run
    raise AssertionError("a listener connection has no handler")


class listen(serve):
    """Start a WebSocket server whose connections call back a :class:`Listener`.

    ``factory`` is called once per connection, when its handshake
    succeeded, and returns that connection's listener: a :class:`Listener`
    subclass, or any callable returning a listener. Every other argument is
    :func:`~tether.asyncio.server.serve`'s, and the result is the same
    :class:`~tether.asyncio.server.Server`: await it, or use it with
    ``async with``. ``create_connection`` must then be a subclass of
    :class:`ListenerServerConnection`.

    ``max_queue`` has no effect on listener connections (there is no queue);
    ``write_limit`` is where reading pauses (see the module's documentation).
    """

    def __init__(
        self,
        factory: Callable[[], Listener],
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        create_connection: type[ListenerServerConnection] | None = None,
        **options: Any,
    ) -> None:
        if not callable(factory):
            raise TypeError(f"factory must be callable, not {type(factory).__name__}")
        if create_connection is not None and not issubclass(
            create_connection, ListenerServerConnection
        ):
            raise TypeError("create_connection must be a subclass of ListenerServerConnection")
        super().__init__(
            _no_handler,
            host,
            port,
            create_connection=create_connection or ListenerServerConnection,
            **options,
        )
        self.connection_options["listener"] = factory
