"""The trio connection shared by clients and servers.

Reading a plain socket (where :mod:`tether.trio.watcher` is available, on
Linux). The connection has no task of its own: the task waiting in ``recv``,
``recv_streaming``, ``wait_closed`` or ``async for`` waits for the socket to
be readable, reads it without waiting and feeds the engine; a cancelled
wait read nothing, and what was read is queued before anything else can be
cancelled, so a cancelled ``recv`` loses no message. While no task reads,
the run's watcher does, after a short grace, so pings are answered and
closing handshakes finish while the application does something else; it
also keeps the connection's deadlines (the next keepalive ping, the wait
for its pong, the end of the closing handshake). An idle connection whose
handler waits in ``recv`` costs the handler's task and nothing else.

Reading a TLS stream, or anywhere without epoll: one task per connection
reads the stream (``Connection._run``): it feeds the engine, queues the
messages and wakes the task waiting in ``recv``, which takes them from the
queue with no await in between. The same task keeps the deadlines as the
deadline of the cancel scope it reads in.

Writing. The task that sends writes the engine's bytes itself; while it
writes, frames from other tasks wait in a buffer that it writes next, and
those senders wait only while the buffer is over ``write_limit``. A plain
socket is written to directly, so that a sender cancelled while the peer
does not read knows what went out: the rest is handed to a writer task and
the stream stays whole. Writes that may not wait (keepalive pings,
broadcasts) are handed to a writer task when nobody is writing.

When the server's nursery is cancelled, or ``trio.run`` ends for a client,
the connection closes with 1001 (going away), shielded for at most
``close_timeout``: in the handler's task, in the watcher, or in the reader
task.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Generator, Iterable
from typing import Any

import trio

from tether.async_connection import AsyncConnection
from tether.attributes import ConnectionAttributes
from tether.broadcasting import CLOSED, FULL, READY
from tether.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK, InvalidState
from tether.framelog import enable_frame_log
from tether.log import ConnectionLogger, LoggerLike, connection_logger
from tether.messages import MessageQueue, parse_budget
from tether.protocol.client import ClientProtocol
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CLOSED, _OPEN
from tether.protocol.events import CloseReceived, Event, Pong
from tether.protocol.server import ServerProtocol
from tether.sending import DATA_TYPES, Data, is_single, run_closed_hooks, send_data
from tether.trio.watcher import AVAILABLE, Timer, Watcher, watcher

__all__ = ["DEFAULT_WRITE_LIMIT", "Connection", "Data", "PongWaiter"]

DEFAULT_WRITE_LIMIT = 32 * 1024

READ_SIZE = 65536
"""How much a stream without a socket (TLS) reads at once."""

# How long a cancelled connection may take to close with 1001 when it has no
# close_timeout: a shielded wait must end.
_GOING_AWAY_LIMIT = 10.0

_INF = math.inf

_Spawn = Callable[[Callable[[], Any], str], None]
"""How a connection starts a task of its own: in the server's nursery, or as a system task."""

_Abort = trio.lowlevel.Abort

# Sockets are read and written through their descriptor, except on Windows,
# where os.read and os.write do not take sockets.
_FD_IO = sys.platform != "win32"

# What the deadlines that passed ask for.
_NOTHING, _WRITE, _CLOSE = 0, 1, 2


class PongWaiter:
    """What :meth:`Connection.ping` returns: await it for the round-trip time, in seconds.

    It raises :class:`~tether.exceptions.ConnectionClosed` if the connection
    closes before the pong comes.
    """

    __slots__ = ("_done", "_exc", "_latency")

    def __init__(self) -> None:
        self._done = trio.Event()
        self._latency = 0.0
        self._exc: ConnectionClosed | None = None

    def _set(self, latency: float) -> None:
        self._latency = latency
        self._done.set()

    def _fail(self, exc: ConnectionClosed) -> None:
        self._exc = exc
        self._done.set()

    async def wait(self) -> float:
        """Wait for the pong; return the round-trip time."""
        await self._done.wait()
        if self._exc is not None:
            raise self._exc
        return self._latency

    def __await__(self) -> Generator[Any, None, float]:
        return self.wait().__await__()


class Connection(AsyncConnection, ConnectionAttributes, trio.abc.AsyncResource):
    """An open WebSocket connection over a trio stream, on the client or the server side.

    It is made by :func:`tether.trio.connect` or given to a handler by
    :func:`tether.trio.serve`; applications do not create it themselves.
    """

    # Slots rather than a dictionary per instance: an instance dictionary
    # grows past CPython's shared keys as the state changes, to about 1 KiB
    # per connection, which a server holding many idle connections pays for
    # each. Attributes set by others (the topics' close hooks) still go to a
    # dictionary.
    __slots__ = (
        "_armed_reads",
        "_close_by",
        "_closed",
        "_cold",
        "_direct",
        "_drained",
        "_eof_written",
        "_fd",
        "_fed",
        "_id",
        "_idle_queued",
        "_lost",
        "_messages",
        "_out",
        "_out_size",
        "_paused",
        "_ping_at",
        "_pings",
        "_pong_by",
        "_queued",
        "_reader_parked",
        "_reading",
        "_reads",
        "_receiving",
        "_recv_task",
        "_replies",
        "_scope",
        "_send_lock",
        "_socket",
        "_spawn",
        "_stream_closed",
        "_throttled",
        "_timer",
        "_watched",
        "_watcher",
        "_write_error",
        "_writing",
        "close_timeout",
        "latency",
        "logger",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "stream",
        "write_limit",
    )

    default_logger = "tether"
    """The name of the logger used when the ``logger`` option is not given."""

    # Hooks to call once closed (topics): on the class until the first one.
    _on_closed: list[Callable[[Any], None]] | None = None

    def __init__(
        self,
        stream: trio.abc.Stream,
        protocol: ClientProtocol | ServerProtocol,
        *,
        logger: LoggerLike | str | None = None,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | None = 16,
        write_limit: int = DEFAULT_WRITE_LIMIT,
    ) -> None:
        self.stream = stream
        """The trio stream underneath: a :class:`trio.SocketStream` or a :class:`trio.SSLStream`."""
        # A plain socket is read into the shared buffer and written directly.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        # A plain socket is read by the task in recv, or by the watcher: no reader task.
        self._direct = self._socket is not None and AVAILABLE
        self._fd = -1 if self._socket is None else self._socket.fileno()
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.write_limit = write_limit
        self.logger: ConnectionLogger = connection_logger(logger, self.default_logger, None, self)
        """The logger of this connection: records name it."""
        # Asked once per connection: with DEBUG off, frames cost no logging at all.
        enable_frame_log(protocol, self.logger)
        self._messages = MessageQueue(max_queue)
        self.latency = 0.0
        """The round-trip time of the last ping answered, in seconds."""
        self._id: uuid.UUID | None = None
        self._receiving = False
        # The task parked in recv until the reader brings something.
        self._recv_task: trio.lowlevel.Task | None = None
        # The reader waits for room in the queue: parked here.
        self._paused = False
        self._reader_parked: trio.lowlevel.Task | None = None
        # Bytes waiting for the task that writes (a list made on first use), and
        # whether one writes.
        self._out: list[bytes] | None = None
        self._out_size = 0
        self._writing = False
        # Bytes of replies the reader queued while another task wrote.
        self._replies = 0
        self._drained: trio.Event | None = None
        self._write_error: BaseException | None = None
        self._send_lock: trio.Lock | None = None
        self._pings: dict[bytes, tuple[PongWaiter | None, float]] | None = None
        # Deadlines on trio's clock: the next keepalive ping, the pong of the
        # last one, the end of the closing handshake.
        self._ping_at = _INF
        self._pong_by = _INF
        self._close_by = _INF
        self._scope: trio.CancelScope | None = None
        self._spawn: _Spawn | None = None
        self._stream_closed = False
        self._eof_written = False
        self._lost = False
        # Set once closed, made by the first task that waits for it.
        self._closed: trio.Event | None = None
        # Reading a plain socket without a reader task (see the module).
        self._watcher: Watcher | None = None
        self._timer: Timer | None = None
        # A task waits for the socket to be readable (recv or wait_closed).
        self._reading = False
        # The watcher waits for the socket; the connection waits for its grace.
        self._watched = False
        self._queued = False
        # Receives by the application, and their count when the watcher was armed.
        self._reads = 0
        self._armed_reads = 0
        # The watcher stopped reading until the replies it queued are written.
        self._throttled = False
        # Reads of the socket by a task; whether one waiting to read is queued
        # to be cooled, or was: it then waits for the watcher, not the socket.
        self._fed = 0
        self._idle_queued = False
        self._cold = False

    # Attributes

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier of the connection, for logs."""
        id_ = self._id
        if id_ is None:
            id_ = self._id = uuid.uuid4()
        return id_

    @property
    def local_address(self) -> Any:
        """The local address of the socket, as the socket module gives it; ``None`` once closed."""
        try:
            return self._stream_socket().getsockname()
        except OSError:
            return None

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket, as the socket module gives it; ``None`` once closed."""
        try:
            return self._stream_socket().getpeername()
        except OSError:
            return None

    def _stream_socket(self) -> trio.socket.SocketType:
        stream: Any = self.stream
        while not isinstance(stream, trio.SocketStream):
            stream = stream.transport_stream
        return stream.socket

    # Receiving

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` for text and ``bytes`` for binary.

        ``decode=True`` returns binary messages decoded as UTF-8 too, and
        ``decode=False`` returns text messages as UTF-8 bytes. With a
        ``timeout``, :class:`TimeoutError` is raised when no message arrived in
        time. Cancelling ``recv`` loses no message: the next call returns it.
        Raise :class:`~tether.exceptions.ConnectionClosed` once the connection
        is closed and every message received before was read.
        """
        if self._receiving:
            raise ConcurrencyError("another task is already receiving from this connection")
        self._receiving = True
        try:
            messages = self._messages
            if messages.ready:
                # A cancellation point: a message waiting is returned at once.
                await trio.lowlevel.checkpoint_if_cancelled()
            elif timeout is None:
                while not messages.ready:
                    await self._input()
            else:
                with trio.move_on_after(timeout):
                    while not messages.ready:
                        await self._input()
                if not messages.ready:
                    raise TimeoutError("no message received in time")
            message = messages.get(decode)
            if self._paused or self.protocol.message_budget is not None:
                self._maybe_resume_reading()
            return message
        finally:
            self._receiving = False
            if self._direct:
                self._after_recv()

    async def __anext__(self) -> str | bytes:
        """The next message of ``async for``: see :meth:`__aiter__`."""
        # recv's body again rather than a call to it, as in the asyncio
        # connection: an idle connection's handler waits here, and each
        # coroutine on its stack is memory that thousands of them hold.
        if self._receiving:
            raise ConcurrencyError("another task is already receiving from this connection")
        self._receiving = True
        try:
            messages = self._messages
            if messages.ready:
                await trio.lowlevel.checkpoint_if_cancelled()
            else:
                while not messages.ready:
                    await self._input()
            message = messages.get()
            if self._paused or self.protocol.message_budget is not None:
                self._maybe_resume_reading()
            return message
        except ConnectionClosedOK:
            raise StopAsyncIteration from None
        finally:
            self._receiving = False
            if self._direct:
                self._after_recv()

    def _begin_receiving(self) -> None:
        if self._receiving:
            raise ConcurrencyError("another task is already receiving from this connection")
        self._receiving = True

    def _end_receiving(self) -> None:
        self._receiving = False
        if self._direct:
            self._after_recv()

    def _input(self) -> Awaitable[object]:
        """What to await until something was read; raise ConnectionClosed if never.

        Read the socket if nobody else does; otherwise wait for the task
        that reads. Not a coroutine: the receiver awaits trio's trap itself,
        so that an idle connection's task holds one coroutine frame less.
        """
        if self._lost:
            raise self.protocol.close_exc()
        if self._direct and not self._reading:
            if not self._cold:
                return self._read_step()
            # Idle a while: the watcher reads, and wakes this task with a message.
            self._watch()
        self._recv_task = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._abort_input)

    async def _read_step(self) -> None:
        """Wait until the socket is readable, read it once and write the engine's answers."""
        self._reading = True
        if not self._idle_queued and self._watcher is not None:
            self._idle_queued = True
            self._watcher.cool_later(self, self._fed)
        try:
            await trio.lowlevel.wait_readable(self._fd)
        except (OSError, trio.ClosedResourceError):
            # Closed meanwhile: by this side (then lost), or behind its
            # back, which the read below finds out.
            pass
        finally:
            self._reading = False
            # A receiver waiting for this task reads now, if it must.
            self._wake_reader()
        if self._feed():
            await self._reply()

    def _feed(self) -> bool:
        """Read the socket without waiting and feed the engine; return whether to write.

        At the end of the stream, close it and wrap up.
        """
        if self._stream_closed:
            return False
        protocol = self.protocol
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        self._fed += 1
        if not data:
            protocol.receive_eof()
            self._process()
            self._close_now()
            return False
        if protocol.extensions:
            # One read of compressed data must not inflate into more
            # messages than the queue holds: the engine keeps the rest.
            protocol.message_budget = parse_budget(self._messages, protocol)
        if protocol.receive_data(data):
            self._process(True)
            return False
        self._process()
        return bool(protocol._output) or protocol.state is not _OPEN

    # Who reads while no task does: the watcher (plain sockets)

    def _after_recv(self) -> None:
        """The receiver leaves recv: the watcher reads if nobody calls it again soon."""
        self._reads += 1
        self._cold = False
        if not (self._queued or self._watched or self._lost):
            self._grace_or_watch()

    def _grace_or_watch(self) -> None:
        watcher = self._watcher
        if watcher is None:
            return
        if self.protocol.state is not _OPEN or self._pings is not None:
            # A closing handshake or a pong to read: at once.
            self._watch()
        else:
            self._queued = True
            watcher.after_recv(self, self._reads)

    def _on_grace(self, reads: int) -> None:
        """The grace after a recv is over (in the watcher)."""
        self._queued = False
        if self._lost or self._watched or self._receiving:
            # A receiver that leaves queues the connection again.
            return
        if reads != self._reads:
            # Received again meanwhile: likely to go on, look later.
            self._grace_or_watch()
            return
        self._watch()

    def _on_idle(self, fed: int) -> None:
        """A task waits to read since IDLE seconds (in the watcher): wait for it, if still so."""
        self._idle_queued = False
        if self._lost or not self._reading or self._cold:
            # A task that starts waiting again queues the connection again.
            return
        if fed != self._fed or self._writing:
            # Read meanwhile; or a writer waits for the socket too, and
            # notify_closing would wake it as well.
            self._idle_queued = True
            assert self._watcher is not None
            self._watcher.cool_later(self, self._fed)
            return
        self._cold = True
        # Ends the task's wait_readable with ClosedResourceError; the
        # socket stays open and the task then waits for the watcher.
        trio.lowlevel.notify_closing(self._fd)

    def _watch(self) -> None:
        """Have the watcher read once the socket is readable."""
        if self._watched or self._lost or self._watcher is None:
            return
        if self._paused and self.protocol.state is _OPEN:
            # The queue is full: recv arms it again once it made room.
            return
        self._watched = True
        self._armed_reads = self._reads
        self._watcher.arm(self, self._fd)

    def _on_readable(self) -> None:
        """The socket is readable and the watcher was armed (in the watcher)."""
        self._watched = False
        if self._lost or self._reading:
            return
        protocol = self.protocol
        if (
            not self._receiving
            and self._reads != self._armed_reads
            and protocol.state is _OPEN
            and self._pings is None
        ):
            # The application reads: leave the data to it, unless it stops.
            self._grace_or_watch()
            return
        if self._paused and protocol.state is _OPEN:
            return
        if self._feed():
            self._flush_nowait()
            if self._writing and self._out_size > self.write_limit:
                # A peer that floods pings and never reads: read on once
                # the answers are written.
                self._throttled = True
                return
        if not self._receiving or self._recv_task is not None:
            # Nobody reads, or a task waits in recv for the watcher.
            self._watch()

    def _on_deadline(self, now: float) -> None:
        """A deadline of the connection passed (in the watcher)."""
        if (
            now >= self._pong_by
            and not self._reading
            and not (self._paused and self.protocol.state is _OPEN)
            and self._feed()
        ):
            # The pong may be waiting unread (nobody reads, and the watcher
            # waits for the grace after a recv): read before giving up.
            self._flush_nowait()
        action = self._deadlines_passed(now)
        if action == _CLOSE:
            self._close_now()
        elif action == _WRITE:
            self._flush_nowait()
        if not self._lost:
            self._update_deadline()

    def _close_now(self) -> None:
        """Close the socket and wrap up (plain sockets without a reader task)."""
        if self._stream_closed:
            return
        self._stream_closed = True
        self._wake_drained()
        watcher = self._watcher
        if watcher is not None:
            watcher.remove(self, self._fd)
        assert self._socket is not None
        # Wakes a task waiting for the socket, with ClosedResourceError.
        self._socket.close()
        if self._spawn is not None:
            self._wrap_up()

    def _go_away_nowait(self) -> None:
        """Start closing with 1001 without waiting (the watcher, when trio.run ends)."""
        self._start_closing(CloseCode.GOING_AWAY, "")
        self._flush_nowait()
        self._watch()

    async def _finish(self) -> None:
        """After the server's handler: close with 1001 if still open (cancelled), then wait.

        The caller shields this; it lasts ``close_timeout`` at most.
        """
        if not self._direct:
            # The reader task closes with 1001 when it is cancelled.
            await self.wait_closed()
            return
        if self._lost:
            return
        limit = self.close_timeout
        with trio.move_on_after(_GOING_AWAY_LIMIT if limit is None else limit):
            self._start_closing(CloseCode.GOING_AWAY, "")
            while self._writing and not self._stream_closed:
                await self._wait_drained()
            await self._write_all()
            await self.wait_closed()
        self._close_now()

    def _abort_input(self, _: Any) -> _Abort:
        self._recv_task = None
        return _Abort.SUCCEEDED

    def _wake_reader(self) -> None:
        """Wake the task waiting in recv, if any."""
        task = self._recv_task
        if task is not None:
            self._recv_task = None
            trio.lowlevel.reschedule(task)

    def _maybe_resume_reading(self) -> None:
        protocol = self.protocol
        if protocol.held_back and self._messages.low:
            # Messages were read: parse what the engine held back for want of room.
            protocol.message_budget = parse_budget(self._messages, protocol)
            protocol.resume_parsing()
            self._process()
            self._flush_nowait()
        if self._paused and not self._messages.full and not protocol.held_back:
            self._resume()

    def _resume(self) -> None:
        self._paused = False
        task = self._reader_parked
        if task is not None:
            self._reader_parked = None
            trio.lowlevel.reschedule(task)

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
        sends ``str`` as binary. Return once the message is written to the
        socket, or waits behind another task's write in a buffer under
        ``write_limit``. Raise :class:`~tether.exceptions.ConnectionClosed`
        once the connection is closing.
        """
        # A cancellation point; the task yields to others only when it waits.
        await trio.lowlevel.checkpoint_if_cancelled()
        lock = self._send_lock
        if isinstance(message, DATA_TYPES) or is_single(message):
            protocol = self.protocol
            if lock is not None and lock.locked():
                async with lock:
                    send_data(protocol, message, text)  # type: ignore[arg-type]
            else:
                try:
                    protocol.send_message(message, text)  # type: ignore[arg-type]
                except InvalidState:
                    raise protocol.close_exc() from None
            await self._flush_wait()
        else:
            # Only fragmented messages ever hold the lock: made for the first.
            if lock is None:
                lock = self._send_lock = trio.Lock()
            async with lock:
                await self._send_fragments(message, text)

    async def ping(self, data: Data | None = None) -> PongWaiter:
        """Send a ping; return an awaitable that gives the round-trip time when the pong comes.

        Without ``data``, four random bytes make the ping unique. Raise
        :class:`~tether.exceptions.ConcurrencyError` if a ping with the same
        data is still waiting for its pong.
        """
        waiter = PongWaiter()
        self._record_ping(data, waiter)
        if not self._reading:
            # Read the pong as soon as it comes, for a true round-trip time.
            self._watch()
        await self._flush_wait()
        return waiter

    def _pong_waiter_done(self, waiter: PongWaiter, latency: float) -> None:
        waiter._set(latency)

    def _keepalive_answered(self) -> None:
        if self.ping_interval is not None:
            # The next keepalive ping is an interval after this pong.
            self._pong_by = _INF
            self._ping_at = trio.current_time() + self.ping_interval
            self._update_deadline()

    # Closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is closed.

        The wait lasts at most ``close_timeout`` after the handshake starts;
        then TCP is dropped. Closing a closed connection does nothing.
        """
        self._start_closing(code, reason)
        if self._writing:
            self._flush_nowait()
        else:
            with contextlib.suppress(ConnectionClosed):
                await self._flush_wait()
        await self.wait_closed()

    async def aclose(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection: :meth:`close`, under trio's name for it."""
        await self.close(code, reason)

    def _start_closing(self, code: int, reason: str) -> None:
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return
        protocol.send_close(code, reason)
        # The peer's close frame may wait behind messages nobody reads: read on.
        if protocol.held_back:
            protocol.message_budget = None
            protocol.resume_parsing()
            self._process()
        if self._paused:
            self._resume()
        self._arm_close_deadline()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed, reading it meanwhile if no other task does."""
        if self._lost:
            await trio.lowlevel.checkpoint()
            return
        if self._direct and not (self._reading or self._receiving) and self._spawn is not None:
            try:
                # Another task may start reading meanwhile (a recv): it reads
                # for both, and this one waits for the end below.
                while not (self._lost or self._cold or self._reading):
                    if self._paused and self.protocol.state is _OPEN:
                        # Nobody makes room in the queue here: wait for recv.
                        self._reader_parked = trio.lowlevel.current_task()
                        await trio.lowlevel.wait_task_rescheduled(self._abort_pause)
                    else:
                        await self._read_step()
            finally:
                if self._cold:
                    # Idle a while: the watcher reads from now on.
                    self._watch()
                elif not (self._lost or self._reading or self._watched or self._queued):
                    self._grace_or_watch()
            if self._lost:
                return
        closed = self._closed
        if closed is None:
            closed = self._closed = trio.Event()
        await closed.wait()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection: send a close frame if possible and drop TCP."""
        self.logger.info("failing connection with code %d: %s", code, reason)
        self.protocol.fail(code, reason)
        self._arm_close_deadline()
        self._flush_nowait()

    # Deadlines, kept by the reader's cancel scope

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None:
            self._ping_at = trio.current_time() + self.ping_interval

    def _arm_close_deadline(self) -> None:
        if self._close_by == _INF and self.close_timeout is not None:
            self._close_by = trio.current_time() + self.close_timeout
        # Keepalive ends with the closing handshake.
        self._ping_at = self._pong_by = _INF
        self._update_deadline()
        if not (self._reading or self._receiving):
            # The peer's answer must be read even if nobody calls recv.
            self._watch()

    def _update_deadline(self) -> None:
        deadline = min(self._ping_at, self._pong_by, self._close_by)
        if not self._direct:
            scope = self._scope
            if scope is not None:
                scope.deadline = deadline
            return
        watcher = self._watcher
        if watcher is None:
            return
        timer = self._timer
        if timer is not None:
            if timer[0] == deadline:
                return
            timer[2] = None
            self._timer = None
        if deadline != _INF:
            self._timer = watcher.schedule(deadline, self)

    async def _deadline_passed(self) -> None:
        action = self._deadlines_passed(trio.current_time())
        if action == _CLOSE:
            await self._close_stream(forcefully=True)
        elif action == _WRITE:
            if self._writing:
                self._take_output()
            else:
                await self._write_all()

    def _deadlines_passed(self, now: float) -> int:
        """Act on the deadlines that passed; return what remains: write, close or nothing."""
        if now >= self._close_by:
            self.logger.debug("closing timed out after %s seconds", self.close_timeout)
            return _CLOSE
        if now >= self._pong_by:
            self.logger.warning("no pong within %s seconds", self.ping_timeout)
            self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            return _WRITE
        if now >= self._ping_at:
            self._ping_at = _INF
            try:
                self._record_ping(None, None)
            except ConnectionClosed:
                return _NOTHING
            if self.ping_timeout is not None:
                self._pong_by = now + self.ping_timeout
            else:
                assert self.ping_interval is not None
                self._ping_at = now + self.ping_interval
            return _WRITE
        return _NOTHING

    # Reading, in the connection's own task

    def _start(self, spawn: _Spawn) -> None:
        """Start the reader task, once the handshake succeeded."""
        self._spawn = spawn
        if self._direct:
            self._watcher = watcher()
            self._watcher.add(self)
            self._update_deadline()
            self._watch()
        else:
            spawn(self._run, f"tether reader {self.id}")
        # Frames that came with the handshake may have made answers already.
        if self.protocol.state is not _OPEN:
            self._arm_close_deadline()
        self._flush_nowait()

    async def _run(self) -> None:
        """Read until the connection ends; close with 1001 if cancelled from outside."""
        try:
            await self._read_with_deadlines()
        except trio.Cancelled:
            with trio.CancelScope(shield=True) as scope:
                limit = self.close_timeout
                scope.deadline = trio.current_time() + (
                    _GOING_AWAY_LIMIT if limit is None else limit
                )
                self._start_closing(CloseCode.GOING_AWAY, "")
                # Writers of the cancelled tasks let go soon: then write the close frame.
                while self._writing and not self._stream_closed:
                    await self._wait_drained()
                await self._write_all()
                await self._read_with_deadlines()
            raise
        except Exception:
            self.logger.error("unexpected internal error", exc_info=True)
        finally:
            with trio.CancelScope(shield=True):
                await self._close_stream(forcefully=True)
                self._wrap_up()

    async def _read_with_deadlines(self) -> None:
        while not self._stream_closed:
            deadline = min(self._ping_at, self._pong_by, self._close_by)
            with trio.CancelScope(deadline=deadline) as scope:
                self._scope = scope
                await self._read()
            self._scope = None
            if scope.cancelled_caught:
                await self._deadline_passed()

    async def _read(self) -> None:
        """Read and feed the engine until the stream ends or is closed."""
        protocol = self.protocol
        sock = self._socket
        stream = self.stream
        while True:
            while self._paused:
                self._reader_parked = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._abort_pause)
            try:
                if sock is None:
                    data: bytes | bytearray = await stream.receive_some(READ_SIZE)
                elif _FD_IO:
                    # Wait, then read the descriptor: one trip through trio's
                    # scheduler per read, where the socket's recv takes two.
                    await trio.lowlevel.wait_readable(sock)
                    fd = sock.fileno()
                    if fd < 0:
                        raise trio.ClosedResourceError
                    try:
                        data = os.read(fd, READ_SIZE)
                    except BlockingIOError:
                        continue
                else:  # pragma: no cover - Windows
                    data = await sock.recv(READ_SIZE)
                size = len(data)
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                size = 0
                data = b""
            if not size:
                protocol.receive_eof()
                self._process()
                await self._close_stream(forcefully=True)
                return
            if protocol.extensions:
                # One read of compressed data must not inflate into more
                # messages than the queue holds: the engine keeps the rest.
                protocol.message_budget = parse_budget(self._messages, protocol)
            if protocol.receive_data(data):
                self._process(True)
                continue
            self._process()
            if protocol._output or protocol.state is not _OPEN:
                await self._reply()
            if self._stream_closed:
                return

    def _abort_pause(self, _: Any) -> _Abort:
        self._reader_parked = None
        return _Abort.SUCCEEDED

    async def _reply(self) -> None:
        """Write what the engine answered (pongs, close frames).

        While another task writes, the answers wait in the buffer; once they
        pass ``write_limit`` there, reading waits until it drains, so that a
        peer which floods pings and never reads cannot grow it without bound.
        """
        if not self._writing:
            await self._write_all()
            return
        self._replies += self._take_output()
        while self._writing and self._replies > self.write_limit and not self._stream_closed:
            await self._wait_drained()

    def _process(self, only_messages: bool = False) -> None:
        """Queue the engine's messages, wake the receiver, handle the other events."""
        events = self.protocol.events()
        if not events:
            return
        messages = self._messages
        if only_messages:
            messages.extend_whole(events)
            others: Iterable[Event] = ()
        else:
            others = messages.extend(events)
        if messages.ready:
            if (
                messages.ready >= messages.full_at
                and not self._paused
                and self.protocol.state is _OPEN
            ):
                self._paused = True
            self._wake_reader()
        for event in others:
            self._handle_event(event)
        if self.protocol.state is not _OPEN:
            self._arm_close_deadline()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, Pong):
            self._pong_received(event.data)
        elif isinstance(event, CloseReceived):
            self.logger.debug("received close frame: %s", event.close)

    def _wrap_up(self) -> None:
        """Mark the connection closed and wake everyone waiting on it."""
        if self.protocol.state is not _CLOSED:
            self.protocol.receive_eof()
        self.protocol.events()
        self._lost = True
        pings = self._pings
        if pings is not None:
            self._pings = None
            closed = self.protocol.close_exc()
            for waiter, _ in pings.values():
                if waiter is not None:
                    waiter._fail(closed)
        self._ping_at = self._pong_by = self._close_by = _INF
        self._wake_reader()
        self._wake_drained()
        if self._paused:
            self._resume()
        if self._closed is not None:
            self._closed.set()
        if self._on_closed is not None:
            run_closed_hooks(self)
        if self.logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("connection closed: %s", self.protocol.close_exc())

    # Writing

    def _take_output(self) -> int:
        """Move what the engine has to send to the buffer; return how many bytes."""
        data = self.protocol.data_to_send()
        if not data:
            return 0
        size = sum(map(len, data)) if len(data) > 1 else len(data[0])
        out = self._out
        if out is None:
            self._out = data
        else:
            out += data
        self._out_size += size
        return size

    def _write_room(self) -> int:
        """Whether a broadcast frame may be written now: see :mod:`tether.broadcasting`."""
        if self._stream_closed or self._write_error is not None:
            return CLOSED
        return FULL if self._out_size > self.write_limit else READY

    def _flush_nowait(self) -> None:
        """Have what the engine has to send written, without waiting: by a writer task if needed."""
        self._take_output()
        if self._writing or self._spawn is None:
            return
        protocol = self.protocol
        if self._direct and self._out and self._write_now():
            if not protocol.close_transport or self._stream_closed:
                return
            if protocol.half_close:
                self._half_close_now()
            else:
                self._close_now()
            return
        if self._out or (
            protocol.close_transport and not self._stream_closed and not self._eof_written
        ):
            self._writing = True
            self._spawn(self._write_in_task, f"tether writer {self.id}")

    def _write_now(self) -> bool:
        """Write the buffer without waiting (plain sockets); return whether all of it went."""
        out = self._out
        assert out
        if self._stream_closed:
            return False
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            sent = os.write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # A writer task meets the error again and closes the connection.
            return False
        if sent == len(data):
            self._out = None
            self._out_size = 0
            return True
        rest = data[sent:]
        self._out = [rest]
        self._out_size = len(rest)
        return False

    async def _flush_wait(self) -> None:
        """Write what the engine has to send; wait if another task writes and the buffer is full.

        Raise :class:`~tether.exceptions.ConnectionClosed` when writing failed.
        """
        if not self._writing:
            await self._write_all()
        else:
            self._take_output()
            if self._out_size > self.write_limit:
                while self._writing and self._out_size > self.write_limit:
                    await self._wait_drained()
            else:
                await trio.lowlevel.checkpoint()
        if self._write_error is not None:
            await self.wait_closed()
            raise self.protocol.close_exc() from self._write_error

    async def _write_all(self) -> None:
        self._take_output()
        if not self._out and not (self.protocol.close_transport and not self._stream_closed):
            await trio.lowlevel.checkpoint()
            return
        self._writing = True
        await self._write_loop(handoff=self._spawn is not None)

    async def _write_in_task(self) -> None:
        try:
            await self._write_loop(handoff=False)
        except BaseException:
            # Cancelled with its nursery: whoever closes the connection writes the rest.
            self.logger.debug("writer task ended", exc_info=True)

    async def _write_loop(self, *, handoff: bool) -> None:
        """Write the buffer until it is empty; the caller set ``_writing``.

        A cancelled write puts what it did not write back at the head of the
        buffer: with ``handoff``, a writer task goes on with it; otherwise the
        next writer does.
        """
        protocol = self.protocol
        handed_off = False
        try:
            while True:
                self._take_output()
                out = self._out
                if not out:
                    break
                self._out = None
                self._out_size = 0
                if self._stream_closed or self._write_error is not None:
                    continue
                data = out[0] if len(out) == 1 else b"".join(out)
                try:
                    await self._send_all(data)
                except trio.Cancelled:
                    if handoff and not self._stream_closed:
                        handed_off = True
                        assert self._spawn is not None
                        self._spawn(self._write_in_task, f"tether writer {self.id}")
                    raise
            self._replies = 0
            if protocol.close_transport and not self._stream_closed:
                if protocol.half_close:
                    await self._linger()
                else:
                    await self._close_stream(forcefully=False)
        finally:
            if not handed_off:
                self._writing = False
                self._wake_drained()
                if self._throttled:
                    # The watcher stopped reading until the answers were written.
                    self._throttled = False
                    self._watch()

    async def _send_all(self, data: bytes) -> None:
        """Write ``data``; if cancelled, put back at the buffer's head what did not go out."""
        sock = self._socket
        if sock is None:
            try:
                await self.stream.send_all(data)
            except trio.Cancelled:
                # What went out of a TLS stream is unknown: it cannot go on.
                self._write_error = ConnectionAbortedError("write cancelled")
                with trio.CancelScope(shield=True):
                    await self._close_stream(forcefully=True)
                raise
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                await self._write_failed(exc)
            return
        view = memoryview(data)
        sent = 0
        try:
            while sent < len(data):
                if not _FD_IO:  # pragma: no cover - Windows
                    sent += await sock.send(view[sent:])
                    continue
                # Write the descriptor at once; wait only when the kernel
                # has no room.
                fd = sock.fileno()
                if fd < 0:
                    raise trio.ClosedResourceError
                try:
                    sent += os.write(fd, view[sent:])
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
        except trio.Cancelled:
            # A cancelled send wrote nothing: the rest waits for the next writer.
            rest = bytes(view[sent:])
            self._out = [rest] if self._out is None else [rest, *self._out]
            self._out_size += len(rest)
            raise
        except (OSError, trio.ClosedResourceError) as exc:
            await self._write_failed(exc)

    async def _write_failed(self, exc: BaseException) -> None:
        self.logger.debug("write failed: %s", exc)
        if self._write_error is None:
            self._write_error = exc
        self.protocol.data_to_send()
        self._out = None
        self._out_size = 0
        await self._close_stream(forcefully=True)

    def _wake_drained(self) -> None:
        event = self._drained
        if event is not None:
            self._drained = None
            event.set()

    async def _wait_drained(self) -> None:
        event = self._drained
        if event is None:
            event = self._drained = trio.Event()
        await event.wait()

    async def _linger(self) -> None:
        """Half-close, then read and drop the peer's input until its EOF or the close deadline.

        After failing on the peer's data, or after the closing handshake (see
        :attr:`~tether.protocol.connection.Connection.half_close`): closing
        with the peer's bytes unread, or with more to come, would make the
        kernel answer with a RST, and the peer might lose our close frame.
        TLS cannot half-close: a TLS stream is closed.
        """
        if self._eof_written:
            return
        if self._direct:
            self._half_close_now()
            return
        stream = self.stream
        if not isinstance(stream, trio.SocketStream):
            await self._close_stream(forcefully=False)
            return
        self._eof_written = True
        self._arm_close_deadline()
        try:
            await stream.send_eof()
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self._close_stream(forcefully=True)
        if self._paused:
            self._resume()
        if not (self._reading or self._receiving):
            # Read until the peer's EOF, even if nobody calls recv.
            self._watch()

    def _half_close_now(self) -> None:
        """:meth:`_linger` on a plain socket: send EOF without waiting; the watcher reads on."""
        self._eof_written = True
        self._arm_close_deadline()
        assert self._socket is not None
        try:
            self._socket.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_now()
            return
        if self._paused:
            self._resume()
        if not (self._reading or self._receiving):
            # Read until the peer's EOF, even if nobody calls recv.
            self._watch()

    async def _close_stream(self, *, forcefully: bool) -> None:
        """Close the stream, once; a reader blocked on it wakes up."""
        if self._stream_closed:
            return
        if self._direct:
            self._close_now()
            return
        self._stream_closed = True
        self._wake_drained()
        if forcefully or self._socket is not None:
            await trio.aclose_forcefully(self.stream)
            return
        # A TLS stream says goodbye (close_notify), within close_timeout.
        with trio.move_on_after(
            _GOING_AWAY_LIMIT if self.close_timeout is None else self.close_timeout
        ):
            try:
                await self.stream.aclose()
                return
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(self.stream)
