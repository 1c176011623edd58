"""The asyncio connection shared by clients and servers: an :class:`asyncio.BufferedProtocol`.

The transport reads into a buffer shared by the thread's connections and
feeds the engine from it; the engine's events fill the message
queue and its bytes go back to the transport. Waiting happens only where a
coroutine has nothing to do: no future is created for a message that is
already there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import (
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Sequence,
)
from typing import Any, cast

from tether.async_connection import AsyncConnection
from tether.asyncio import keepalive
from tether.asyncio._closing import TransportEnding
from tether.asyncio._wake import DIRECT_WAKE_READ, wake_now
from tether.asyncio._writing import write_chunks
from tether.asyncio.keepalive import Bucket
from tether.attributes import ConnectionAttributes
from tether.broadcasting import CLOSED, FULL, READY
from tether.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK, InvalidState
from tether.framelog import enable_frame_log
from tether.log import ConnectionLogger, LoggerLike, connection_logger
from tether.messages import MessageQueue, parse_budget, receive_messages, take_message
from tether.protocol.client import ClientProtocol
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CLOSED, _CLOSING, _OPEN, message_frame
from tether.protocol.events import CloseReceived, Event, Pong
from tether.protocol.server import ServerProtocol
from tether.protocol.speedups import speedups
from tether.read_buffer import READ_BUFFER_SIZE, shared_read_buffer
from tether.sending import DATA_TYPES, Data, is_single, run_closed_hooks, send_data

__all__ = [
    "READ_BUFFER_SIZE",
    "Connection",
    "Data",
    "anext_python",
    "check_limits",
    "data_received_python",
    "read_buffer",
    "send_python",
]

DEFAULT_WRITE_LIMIT = 32 * 1024

# Frames gathered in one loop iteration are written together once they reach
# this many bytes (or write_limit, if lower), and at the next iteration at the
# latest: see Connection._gather.
GATHER_LIMIT = 16 * 1024

# Windows' proactor loop lends the buffer to a read that completes later,
# while other connections start theirs: there, each connection needs its own.
_SHARED_READS = sys.platform != "win32"


def check_limits(
    max_queue: int | tuple[int | None, int | None] | None,
    write_limit: int | tuple[int, int | None],
) -> None:
    """Raise :class:`ValueError` for a ``max_queue`` or ``write_limit`` no connection can take.

    :func:`~tether.asyncio.server.serve` and :func:`~tether.asyncio.client.connect`
    check them when called: a server would otherwise fail each connection
    it accepts, in the event loop's log.
    """
    MessageQueue(max_queue)
    high, low = write_limit if isinstance(write_limit, tuple) else (write_limit, None)
    if high < 0 or (low is not None and not 0 <= low <= high):
        raise ValueError("write_limit must be at least 0, and its low mark between 0 and it")


def read_buffer() -> memoryview:
    """The buffer every connection of this thread's event loop reads into.

    See :mod:`tether.read_buffer`. On Windows each call makes a new buffer.
    """
    if not _SHARED_READS:  # pragma: no cover - Windows
        return memoryview(bytearray(READ_BUFFER_SIZE))
    return shared_read_buffer()


class Connection(
    AsyncConnection,
    ConnectionAttributes,
    TransportEnding,
    asyncio.BufferedProtocol,
    asyncio.Protocol,
):
    """An open WebSocket connection, on the client or the server side.

    It is made by :func:`tether.connect` or given to a handler by
    :func:`tether.serve`; applications do not create it themselves.
    """

    # A buffered protocol and a plain one: asyncio's own loops see the first
    # and lend it the shared read buffer (get_buffer, buffer_updated); uvloop
    # sees the second and hands each read over in one call (data_received)
    # instead of two, each of which takes the GIL and enters a context.

    # Slots rather than a dictionary per instance: more than 30 attributes
    # make CPython give each connection a dictionary of its own, 1.5 KiB
    # (what a server holding many idle connections pays for each). Other
    # attributes, set by applications, still go to a dictionary.
    __slots__ = (
        "_close_timer",
        "_eof_written",
        "_gather_limit",
        "_gather_room",
        "_gathered",
        "_id",
        "_keepalive",
        "_loop",
        "_lost",
        "_messages",
        "_pings",
        "_read_buffer",
        "_reader",
        "_reader_options",
        "_reading",
        "_reading_paused",
        "_replies",
        "_replies_paused",
        "_send_lock",
        "_sent_since_wait",
        "_spare_tick",
        "_tick_pending",
        "_waiters",
        "_writing_paused",
        "close_timeout",
        "latency",
        "logger",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "transport",
        "write_limit",
        "write_limit_low",
    )

    default_logger = "tether"
    """The name of the logger used when the ``logger`` option is not given."""

    # A cancelled fragmented send leaves the connection as it is.
    _fragments_pass = (ConnectionClosed, asyncio.CancelledError)

    # Called with the connection once it is closed, by whoever asked (topics).
    # A class attribute until then: most connections never need one.
    _on_closed: list[Callable[[Any], None]] | None = None

    def __init__(
        self,
        protocol: ClientProtocol | ServerProtocol,
        *,
        logger: LoggerLike | str | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        write_limit: int | tuple[int, int | None] = DEFAULT_WRITE_LIMIT,
    ) -> None:
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        low: int | None = None
        if isinstance(write_limit, tuple):
            write_limit, low = write_limit
        self.write_limit = write_limit
        """The write buffer's high-water mark, in bytes."""
        self.write_limit_low = low
        """Its low-water mark, or ``None`` for asyncio's default (a quarter of the high one)."""
        # Thousands of idle connections each hold what is made here: what
        # most of them never use (a uuid, a lock, pings, waiters) is made on
        # first use instead.
        self._id: uuid.UUID | None = None
        self.logger: ConnectionLogger = connection_logger(logger, self.default_logger, None, self)
        """The logger of this connection: records name it."""
        # Asked once per connection: with DEBUG off, frames cost no logging at all.
        enable_frame_log(protocol, self.logger)
        self.latency = 0.0
        """The round-trip time of the last ping answered, in seconds."""
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._read_buffer = read_buffer()
        self._messages = MessageQueue(max_queue)
        self._reader: asyncio.Future[None] | None = None
        # The C __anext__'s keyword arguments of the reader future, made on
        # its first wait ({"loop": self._loop}): see tether._speedups.
        self._reader_options: dict[str, Any] | None = None
        self._reading = False
        self._reading_paused = False
        self._writing_paused = False
        # Replies the engine wrote on its own (pongs) while the write buffer
        # was full, and whether reading stopped because of them.
        self._replies = 0
        self._replies_paused = False
        # Coroutines waiting for writing to resume or for the connection to
        # be lost: both events wake them all, and each checks what it awaits.
        self._waiters: list[asyncio.Future[None]] | None = None
        self._send_lock: asyncio.Lock | None = None
        # Pings waiting for their pong; a keepalive ping has no future.
        self._pings: dict[bytes, tuple[asyncio.Future[float] | None, float]] | None = None
        self._lost = False
        self._keepalive: Bucket | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._eof_written = False
        # Writes gathered per loop iteration (see _gather): whether a message
        # was sent since the reader last waited, whether _tick is scheduled,
        # and the frames waiting for it.
        self._sent_since_wait = False
        self._tick_pending = False
        # The _Tick to schedule next, kept while none is scheduled.
        self._spare_tick: _Tick | None = None
        self._gathered: bytearray | None = None
        self._gather_room = 0
        self._gather_limit = min(GATHER_LIMIT, write_limit)

    # Attributes

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier of the connection, for logs."""
        # Made when first asked for: by a log record or by the application.
        id_ = self._id
        if id_ is None:
            id_ = self._id = uuid.uuid4()
        return id_

    @property
    def local_address(self) -> Any:
        """The local address of the socket, as the socket module gives it."""
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket, as the socket module gives it."""
        return None if self.transport is None else self.transport.get_extra_info("peername")

    # Receiving

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text and ``bytes`` for binary.

        ``decode=True`` returns binary messages decoded as UTF-8 too, and
        ``decode=False`` returns text messages as UTF-8 bytes. With a
        ``timeout``, :class:`TimeoutError` is raised when no message arrived in
        time; no message is lost then, the next call returns it. Raise
        :class:`~tether.exceptions.ConnectionClosed` once the connection is
        closed and every message received before was read.
        """
        if self._reading:
            raise ConcurrencyError("another coroutine is already receiving from this connection")
        self._reading = True
        try:
            messages = self._messages
            if not messages.ready:
                if timeout is None:
                    # Entering a timeout context costs microseconds per message.
                    while not messages.ready:
                        await self._input()
                else:
                    async with asyncio.timeout(timeout):
                        while not messages.ready:
                            await self._input()
            message = messages.get(decode)
            if self._reading_paused or self.protocol.message_budget is not None:
                self._maybe_resume_reading()
            return message
        finally:
            self._reading = False
            self._reader = None

    async def __anext__(self) -> str | bytes:
        """The next message of ``async for``: see :meth:`__aiter__`."""
        # recv's body again rather than a call to it: an idle connection's
        # handler waits here, and each coroutine frame on its stack, like an
        # iterator object beside the connection, is memory that thousands of
        # idle connections hold.
        if self._reading:
            raise ConcurrencyError("another coroutine is already receiving from this connection")
        self._reading = True
        try:
            messages = self._messages
            while not messages.ready:
                # _input() written out: a call less per message.
                if self._lost:
                    raise self.protocol.close_exc()
                self._sent_since_wait = False
                reader = self._reader = self._loop.create_future()
                await reader
            message = take_message(messages)
            if message is None:
                message = messages.get()
            if self._reading_paused or self.protocol.message_budget is not None:
                self._maybe_resume_reading()
            return message
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        finally:
            self._reading = False
            self._reader = None

    def _begin_receiving(self) -> None:
        if self._reading:
            raise ConcurrencyError("another coroutine is already receiving from this connection")
        self._reading = True

    def _end_receiving(self) -> None:
        self._reading = False
        self._reader = None

    async def _flush_wait(self) -> None:
        self._flush()
        if self._writing_paused:
            await self._drain()

    def _input(self) -> asyncio.Future[None]:
        """A future done when something arrives; raise ConnectionClosed if nothing ever will.

        Not a coroutine: the reader awaits the future itself, one frame less.
        Readers clear ``_reader`` when they stop waiting, cancelled or not.
        """
        if self._lost:
            raise self.protocol.close_exc()
        self._sent_since_wait = False
        reader = self._reader = self._loop.create_future()
        return reader

    def _wake_reader(self) -> None:
        reader = self._reader
        if reader is not None:
            self._reader = None
            if not reader.done():
                reader.set_result(None)

    def _budget(self) -> int | None:
        """The engine's message budget: see :func:`~tether.messages.parse_budget`."""
        return parse_budget(self._messages, self.protocol)

    def _end_budget(self) -> None:
        """Drop the engine's message budget once it holds nothing back for it.

        The budget bounds one read (or one resumption): left at a number, it
        would keep the next reads off ``receive_messages``, which bounds
        compressed messages by the queue's room itself.
        """
        protocol = self.protocol
        if not protocol.held_back:
            protocol.message_budget = None

    def _maybe_resume_reading(self) -> None:
        protocol = self.protocol
        if protocol.held_back and self._messages.low:
            # Messages were read: parse what the engine held back for want of
            # room. Waiting for the queue to be half empty parses in batches.
            protocol.message_budget = self._budget()
            protocol.resume_parsing()
            self._end_budget()
            self._process()
        if (
            self._reading_paused
            and not self._messages.full
            and not protocol.held_back
            and self.transport is not None
        ):
            # Reading waits while the engine holds bytes back: they come first.
            self._reading_paused = False
            if not self._replies_paused:
                self.transport.resume_reading()

    # Sending

    async def send(
        self,
        message: Data | Iterable[Data] | AsyncIterable[Data],
        text: bool | None = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        An iterable or async iterable of ``str`` or bytes-like pieces sends
        one fragmented message, a frame per piece. ``text`` forces the
        opcode: ``True`` sends bytes (which must be UTF-8) as text, ``False``
        sends ``str`` as binary. Wait while the write buffer is over
        ``write_limit``. Raise :class:`~tether.exceptions.ConnectionClosed`
        once the connection is closing.
        """
        # The common case in one call: a whole message's frame, made by the
        # engine and written or gathered (see write_message_python).
        paused = write_message(self, message, text)
        if paused is None:
            lock = self._send_lock
            if isinstance(message, DATA_TYPES) or is_single(message):
                protocol = self.protocol
                if lock is not None and lock.locked():
                    async with lock:
                        send_data(protocol, message, text)  # type: ignore[arg-type]
                    self._flush()
                else:
                    # send_data() written out: this runs per message.
                    try:
                        protocol.send_message(message, text)  # type: ignore[arg-type]
                    except InvalidState:
                        raise protocol.close_exc() from None
                    self._write_message(protocol.data_to_send())
            else:
                # Only fragmented messages ever hold the lock: made for the first.
                if lock is None:
                    lock = self._send_lock = asyncio.Lock()
                async with lock:
                    await self._send_fragments(message, text)
            paused = self._writing_paused
        if paused:
            await self._drain()

    def send_nowait(self, message: Data, text: bool | None = None) -> None:
        """Send a whole message now, without waiting: ``str`` as text, bytes-like as binary.

        ``text`` forces the opcode as in :meth:`send`. Nothing waits for the
        write buffer to drain: the message joins it whatever its size, which
        is what a callback of a :class:`~tether.asyncio.listener.Listener`
        needs (see :mod:`tether.asyncio.listener` for the backpressure of
        listener connections). Raise
        :class:`~tether.exceptions.ConnectionClosed` once the connection is
        closing, and :class:`~tether.exceptions.ConcurrencyError` while a
        fragmented message is being sent. Like the event loop's own methods,
        it is not thread-safe: call it in the connection's event loop (from
        another thread, through :meth:`~asyncio.loop.call_soon_threadsafe`).
        """
        if write_message(self, message, text) is not None:
            return
        kind = type(message)
        if kind is not bytes and kind is not str and not isinstance(message, DATA_TYPES):
            raise TypeError(f"send_nowait sends str or bytes-like, not {kind.__name__}")
        lock = self._send_lock
        if lock is not None and lock.locked():
            raise ConcurrencyError("a fragmented message is being sent on this connection")
        protocol = self.protocol
        frame = message_frame(protocol, message, text)
        if frame is not None:
            self._write_frame(frame)
            return
        try:
            protocol.send_message(message, text)
        except InvalidState:
            raise protocol.close_exc() from None
        self._write_message(protocol.data_to_send())

    def _write_message(self, output: list[bytes]) -> None:
        """Write what the engine made of one message: at once, or gathered (see :meth:`_gather`)."""
        if len(output) == 1 and self.protocol.state is _OPEN:
            self._write_frame(output[0])
        else:
            self._flush(output)

    def _write_frame(self, frame: bytes) -> None:
        """Write the frame of one message sent while open: at once, or gathered."""
        if self._tick_pending:
            # Gathered even if the transport started closing meanwhile: the
            # gathered frames are then dropped together (_write_gathered).
            self._gather(frame)
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            self._flush([frame])
        else:
            transport.write(frame)
            if self._sent_since_wait:
                self._tick_pending = True
                self._loop.call_soon(self._tick)
            else:
                self._sent_since_wait = True

    def _gather(self, frame: bytes) -> None:
        """Keep a frame to write with the others sent in this loop iteration.

        A write to a socket costs a system call, more than building a small
        frame. So a connection that sends again before it waited for input
        writes its first frame at once and schedules :attr:`_tick` for the next
        loop iteration; what it sends until then is gathered in one buffer
        and written in one piece, by ``_tick`` or as soon as it reaches the
        gather limit (or as a loop closed before that iteration drops
        ``_tick``). An echo, which waits for input between sends, writes
        each reply at once and schedules nothing. Every other write
        (:meth:`_flush`) writes the gathered frames first, so frames never
        change order.

        ``write_limit`` counts gathered frames as if they waited in the
        transport's buffer: they are written as soon as both together reach
        it, and the transport's own check then makes ``send`` wait.
        """
        gathered = self._gathered
        if gathered is None:
            # The room for this gather: the gather limit, less what the
            # transport's buffer holds beyond write_limit - gather limit.
            transport: Any = self.transport  # Not None: a first frame was written.
            room = self._gather_limit
            over = transport.get_write_buffer_size() - (self.write_limit - room)
            if over > 0:
                room -= over
            if len(frame) >= room:
                # No room for more: the frame leaves alone, uncopied.
                if not transport.is_closing():
                    transport.write(frame)
                return
            self._gather_room = room
            self._gathered = bytearray(frame)
        else:
            gathered += frame
            if len(gathered) >= self._gather_room:
                self._write_gathered()

    def _write_gathered(self) -> None:
        """Write the gathered frames (there are some) in one piece; drop them if closed.

        A connection that closes writes them before its close frame
        (:meth:`_flush`); once its transport is closing or lost they are dropped,
        as what the transport's buffer holds is on ``abort``. The buffer goes
        to the transport, which may keep it: it is never written to again.
        """
        gathered = self._gathered
        assert gathered is not None
        self._gathered = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(gathered)

    @property
    def _tick(self) -> _Tick:
        """What ``call_soon`` runs at the next loop iteration to end the gathering.

        A :class:`_Tick`: only the loop holds it while it is scheduled, and
        one dropped unrun writes the gathered frames as it goes.
        """
        tick = self._spare_tick
        if tick is None:
            tick = _Tick()
        else:
            self._spare_tick = None
        tick.connection = self
        return tick

    async def _drain(self) -> None:
        while self._writing_paused and not self._lost:
            await self._change()
        if self._lost:
            # What waited in the buffer may never have reached the peer.
            raise self.protocol.close_exc()

    def _change(self) -> asyncio.Future[None]:
        """A future done when writing resumes or the connection is lost."""
        # A future per waiter: cancelling one waiter cancels no other.
        waiter = self._loop.create_future()
        waiters = self._waiters
        if waiters is None:
            self._waiters = [waiter]
        else:
            waiters.append(waiter)
        return waiter

    def _wake_waiters(self) -> None:
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def ping(self, data: Data | None = None) -> Awaitable[float]:
        """Send a ping; return an awaitable that gives the round-trip time when the pong comes.

        Without ``data``, four random bytes make the ping unique. Raise
        :class:`~tether.exceptions.ConcurrencyError` if a ping with the same
        data is still waiting for its pong.
        """
        waiter = self._send_ping(data, keepalive=False)
        assert waiter is not None
        return waiter

    def _send_ping(self, data: Data | None, keepalive: bool) -> asyncio.Future[float] | None:
        """Send a ping and record it; return its waiter, or None for a keepalive ping."""
        waiter: asyncio.Future[float] | None = None if keepalive else self._loop.create_future()
        self._record_ping(data, waiter)
        self._flush()
        return waiter

    def _pong_waiter_done(self, waiter: asyncio.Future[float], latency: float) -> None:
        if not waiter.done():
            waiter.set_result(latency)

    def _keepalive_answered(self) -> None:
        if self.ping_timeout is not None:
            # The next keepalive ping is an interval after this pong.
            self._start_keepalive()

    # Closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is closed.

        The wait lasts at most ``close_timeout`` after the handshake starts;
        then TCP is dropped. Closing a closed connection does nothing.
        """
        self._start_close(code, reason)
        while not self._lost:
            await asyncio.shield(self._change())

    def _start_close(self, code: int, reason: str) -> None:
        """Send a close frame, if the connection is open, and read on for the peer's."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
            # The peer's close frame may wait behind messages nobody reads:
            # read on, or the handshake could only end by close_timeout.
            if self.protocol.held_back:
                self.protocol.message_budget = None
                self.protocol.resume_parsing()
                self._process()
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                if not self._replies_paused:
                    self.transport.resume_reading()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        if self._lost:
            return
        # The waiter itself, not a shield() of it: an idle connection's
        # handler waits here, and a shield costs it two futures and their
        # callbacks. Cancelling this cancels only this waiter.
        while not self._lost:
            await self._change()
        # Resume a loop iteration after connection_lost(), as when this
        # awaited a shared future: a peer in the same process has seen the
        # EOF by then.
        await asyncio.sleep(0)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: send a close frame if possible and drop TCP."""
        self.logger.info("failing connection with code %d: %s", code, reason)
        self.protocol.fail(code, reason)
        self._flush()

    # Keepalive

    # The loop's keepalive scheduler rather than a timer per connection: an
    # idle connection then costs an entry in a shared bucket, not a timer
    # handle. ``_keepalive`` is the bucket the connection waits in: for its
    # next ping, or for the pong of a keepalive ping still in ``_pings``.

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None and not self._lost:
            keepalive.schedule(self._loop, self, self.ping_interval)

    def _keepalive_due(self) -> None:
        """Send a keepalive ping, or fail if the last one waited ``ping_timeout`` in vain."""
        pings = self._pings
        if (
            self.ping_timeout is not None
            and pings is not None
            and any(waiter is None for waiter, _ in pings.values())
        ):
            self.logger.warning("no pong within %s seconds", self.ping_timeout)
            self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            return
        try:
            self._send_ping(None, keepalive=True)
        except ConnectionClosed:
            return
        if self.ping_timeout is None:
            self._start_keepalive()
        else:
            # The pong reschedules for the next ping (_pong_received).
            keepalive.schedule(self._loop, self, self.ping_timeout)

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Take the transport (asyncio calls this)."""
        # uvloop's transports do not inherit from asyncio.Transport: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(self.write_limit, self.write_limit_low)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Lend the buffer for the next read (asyncio calls this)."""
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        """Feed the bytes just read into the buffer to the engine (asyncio's loops call this)."""
        self.data_received(self._read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Feed a read to the engine (uvloop calls this)."""
        messages = self._messages
        reader = self._reader
        # A small read's whole messages wake the reader directly, once the
        # whole read is fed: its task runs here (see tether.asyncio._wake).
        direct = reader is not None and len(data) <= DIRECT_WAKE_READ
        # The common read first, in one call: whole messages, queued at once
        # (see tether.messages.receive_messages).
        taken = receive_messages(self.protocol, data, messages, None if direct else reader)
        if taken == len(data):
            if messages.ready >= messages.full_at:
                self._pause_if_full()
        else:
            self._receive(memoryview(data)[taken:] if taken > 0 else data, taken > 0)
        if direct and taken > 0 and self._reader is reader:
            self._reader = None
            wake_now(reader, self._loop)  # type: ignore[arg-type]

    def _receive(self, data: bytes | memoryview, queued: bool) -> None:
        """Feed a read to the engine's general path; ``queued``: messages of it were queued."""
        protocol = self.protocol
        if protocol.extensions:
            # One read of compressed data must not inflate into more messages
            # than the queue holds: the engine keeps the rest, compressed.
            protocol.message_budget = self._budget()
            only_messages = protocol.receive_data(data)
            self._end_budget()
        else:
            only_messages = protocol.receive_data(data)
        if queued and self._messages.ready >= self._messages.full_at:
            # Checked once the engine read the rest: not while closing.
            self._pause_if_full()
        written = self._process(only_messages)
        if written and self._writing_paused:
            self._limit_replies(written)

    def _limit_replies(self, written: int) -> None:
        """Stop reading while a peer that does not read makes the engine answer it.

        Each ping gets a pong whether or not the peer reads them: a peer that
        floods pings and never reads would grow the write buffer without
        bound. Once such replies pass ``write_limit`` while writing is
        paused, reading waits until the buffer drains. Messages and the
        application's own sends never count, so two peers streaming to each
        other cannot block each other this way.
        """
        self._replies += written
        if self._replies > self.write_limit and not self._replies_paused:
            self._replies_paused = True
            if not self._reading_paused and self.transport is not None:
                self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        """Note that the peer closed its side (asyncio calls this)."""
        self.protocol.receive_eof()
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Wrap up once the transport is closed (asyncio calls this)."""
        if self.protocol.state is not _CLOSED:
            self.protocol.receive_eof()
            self._process()
        self._cancel_close_timer()
        # Now, so that the scheduler holds no reference to a closed connection.
        keepalive.cancel(self)
        pings = self._pings
        if pings is not None:
            self._pings = None
            closed = self.protocol.close_exc()
            for waiter, _ in pings.values():
                if waiter is not None and not waiter.done():
                    waiter.set_exception(closed)
                    waiter.exception()  # Nobody may await it: do not log it as lost.
        self._lost = True
        # Frames gathered for the next loop iteration can never leave: drop
        # them now (_tick would find the transport closed and drop them too).
        self._gathered = None
        self._wake_waiters()
        self._wake_reader()
        if self._on_closed is not None:
            run_closed_hooks(self)
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("connection closed: %s", self.protocol.close_exc())

    def pause_writing(self) -> None:
        """Stop sending while the write buffer is over ``write_limit`` (asyncio calls this)."""
        self._writing_paused = True

    def resume_writing(self) -> None:
        """Resume sending (asyncio calls this)."""
        self._writing_paused = False
        self._replies = 0
        if self._replies_paused:
            self._replies_paused = False
            if not self._reading_paused and self.transport is not None:
                self.transport.resume_reading()
        self._wake_waiters()

    # Plumbing

    def _process(self, only_messages: bool = False) -> int:
        """Handle the engine's events, then send what it has to send; return its size.

        ``only_messages`` is what ``receive_data`` said of the read: that it
        brought nothing but messages and left nothing to send.
        """
        events = self.protocol.events()
        if events:
            messages = self._messages
            others: Sequence[Event]
            if only_messages:
                messages.extend_whole(events)
                others = ()
            else:
                others = messages.extend(events)
            if only_messages or len(others) < len(events):
                # Something was queued: stop reading once max_queue messages
                # wait, and wake the reader.
                if messages.ready >= messages.full_at:
                    self._pause_if_full()
                reader = self._reader
                if reader is not None:
                    # _wake_reader() written out: this runs per read.
                    self._reader = None
                    if not reader.done():
                        reader.set_result(None)
            for event in others:
                self._handle_event(event)
        if only_messages:
            return 0
        if self.transport is None:
            # Not connected yet: the bytes wait in the engine, as in _flush.
            return 0
        data = self.protocol.data_to_send()
        if data or self.protocol.state is not _OPEN:
            return self._flush(data)
        # Mostly the case after reading messages: nothing to write, nothing to close.
        return 0

    def _pause_if_full(self) -> None:
        """Stop reading: ``max_queue`` messages wait (unless closing, or paused already)."""
        if not self._reading_paused and self.transport is not None and self.protocol.state is _OPEN:
            self._reading_paused = True
            self.transport.pause_reading()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, Pong):
            self._pong_received(event.data)
        elif isinstance(event, CloseReceived):
            self.logger.debug("received close frame: %s", event.close)

    def _write_room(self) -> int:
        """Whether a broadcast frame may be written now: see :mod:`tether.broadcasting`."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return CLOSED
        return FULL if transport.get_write_buffer_size() > self.write_limit else READY

    def _flush(self, data: list[bytes] | None = None) -> int:
        """Write what the engine has to send, or ``data`` taken from it; return how many bytes."""
        transport = self.transport
        if transport is None:
            return 0
        if self._gathered is not None:
            # What send() gathered goes first.
            self._write_gathered()
        protocol = self.protocol
        if data is None:
            data = protocol.data_to_send()
        if not data or transport.is_closing():
            written = 0
        elif len(data) == 1:
            frame = data[0]
            written = len(frame)
            transport.write(frame)
        else:
            written = sum(map(len, data))
            write_chunks(transport, data)
        state = protocol.state
        if state is _OPEN:
            return written
        if state is _CLOSING or state is _CLOSED:
            if self.protocol.close_transport and not transport.is_closing():
                if self.protocol.half_close:
                    self._linger(transport)
                else:
                    transport.close()
            self._arm_close_timer(self.close_timeout)
        return written

    # Write what the engine has to send: the transport never waits. The same
    # function, not a call to it: broadcasts and topics call it per connection.
    _flush_nowait = _flush

    def _connection_logger(self) -> ConnectionLogger:
        return self.logger


class _Tick:
    """The end of one loop iteration's gathering on a connection: see ``Connection._gather``.

    Scheduled with ``call_soon``, it writes what was gathered. While it is
    scheduled, only the loop holds it; once it ran, its connection keeps it
    for the next time. A loop stopped in the iteration that scheduled it,
    then closed, drops it without running it (asyncio's loop does; uvloop
    runs it before it stops): then its finalizer writes the gathered frames,
    so that every frame a send took reaches the transport, as a frame
    written at once does (and as with websockets, which writes each at once).
    """

    __slots__ = ("connection",)

    connection: Connection | None

    def __call__(self) -> None:
        connection = self.connection
        if connection is None:
            return
        self.connection = None
        connection._spare_tick = self
        connection._tick_pending = False
        if connection._gathered is not None:
            connection._write_gathered()
        else:
            # Nothing was gathered: the next send is written at once again
            # and schedules nothing, as if the reader had waited.
            connection._sent_since_wait = False

    def __del__(self) -> None:
        if getattr(self, "connection", None) is not None:
            # Dropped by a closed loop without running. (A finalizer must not raise.)
            with contextlib.suppress(Exception):
                self()


def write_message_python(connection: Connection, data: object, text: bool | None) -> bool | None:
    """Send one whole message on ``connection`` in the common case, in one call.

    The common case is the engine's (see
    :meth:`tether.protocol.connection.Connection.message_frame`), on a
    connection with no fragmented message ever sent (no lock) that is
    gathering its sends or has a transport that is not closing. Then the
    frame is written at once or gathered, as
    ``Connection._write_frame`` does, and the result says whether writing
    is paused: a sender waits for the buffer to drain. Otherwise return
    ``None`` with nothing done, and the caller takes its general path. The C
    accelerator's ``write_message(connection, data, text)`` does the same.
    """
    if connection._send_lock is not None:
        return None
    if not connection._tick_pending:
        transport = connection.transport
        if transport is None or transport.is_closing():
            return None
    frame = message_frame(connection.protocol, data, text)
    if frame is None:
        return None
    connection._write_frame(frame)
    return connection._writing_paused


write_message: Callable[[Connection, object, bool | None], bool | None] = (
    write_message_python if speedups is None else speedups.write_message
)
""":func:`write_message_python`, in C when built."""

# With the accelerator, three methods run per message are replaced by their C
# versions (tether._speedups): the same steps without a Python frame, and
# for __anext__ and send without a coroutine per message (the awaitable
# __anext__ returns waits on the same _reader future; the one send returns
# writes when first awaited, as the coroutine does, and awaits _drain() or
# the Python send itself when that has more to do). The Python methods stay
# the specification and the fallback.

anext_python = Connection.__anext__
"""``Connection.__anext__`` as written in Python: the specification of the C one."""

data_received_python = Connection.data_received
"""``Connection.data_received`` as written in Python: the specification of the C one."""

send_python = Connection.send
"""``Connection.send`` as written in Python: the specification of the C one."""

if speedups is not None:
    Connection.__anext__ = speedups.anext_method(Connection)  # type: ignore[method-assign]
    Connection.data_received = speedups.data_received_method(  # type: ignore[method-assign]
        Connection
    )
    Connection.send = speedups.send_method(Connection, send_python)  # type: ignore[method-assign]
