"""The threading connection shared by clients and servers.

Reading the socket. A thread that calls ``recv`` and finds no message waiting
reads the socket itself, so a request/response exchange never hands a message
from one thread to another (a wake-up and two context switches each). A
background reader reads when no application thread does, so pings are
answered, closing handshakes finish and pongs are seen even while the
application does not call ``recv``. Whoever reads holds the read token
(``_reading``); the background reader never holds it while it blocks: it
waits for the socket to become readable without it, then takes it, so that a
``recv`` can always take over. While an application thread is reading, or
read less than ``READER_GRACE`` ago, the background reader sleeps instead
of polling the socket: otherwise each incoming message would wake both.

The background reader of a plain socket has no thread while it has nothing
to do (``_watch``, a ``WATCH_*`` value): the socket waits in the selector of
:mod:`tether.sync.watcher`, shared by every connection of the process, or
nobody looks (a thread in ``recv`` reads, the queue is full, or the grace
after a ``recv`` runs on the scheduler). When the socket becomes readable, a
reader thread starts and runs as before; after ``READER_LINGER`` seconds
with nothing to do it hands over again and ends. Only one reader thread
exists at a time, and whoever sees the connection end closes the socket: the
reader thread if there is one, else the thread that read the end. A TLS
socket keeps its reader thread all along: an SSL read may block on a partial
record whatever poll said, and it must never stall a shared thread.

A mutex guards the engine and the message queue; ``recv`` waits on one
condition of it (for a message read by the background thread) and the
background thread sleeps on another.

Writing to the socket happens outside that mutex, under a separate write lock:
a ``sendall`` that blocks because the peer does not read must not stop this
side from reading, or two peers sending large messages to each other would
wait on each other forever. Whoever holds the write lock writes everything the
engine has to send, in the engine's order, and lets it go only when nothing is
left; a reading thread never waits for the write lock, so it keeps reading
while another thread writes its pongs for it.

Keepalive pings, their timeouts and the closing timeout run on the one thread
of :mod:`tether.sync.scheduler`, shared by every connection of the process:
what runs there never waits for the write lock nor blocks on a full socket
(``_flush(nowait=True)``), so that one stuck connection delays no other.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Protocol, Self, cast

from tether.attributes import ConnectionAttributes
from tether.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK, InvalidState
from tether.framelog import enable_frame_log
from tether.log import ConnectionLogger, LoggerLike, base_logger, connection_logger
from tether.messages import MessageQueue, piece_converter
from tether.pings import answer_pings, ping_payload
from tether.protocol.client import ClientProtocol
from tether.protocol.close import CloseCode
from tether.protocol.connection import _CLOSED, _CLOSING, _OPEN
from tether.protocol.events import Event, Fragment, Message, Pong
from tether.protocol.server import ServerProtocol
from tether.sending import Data, Fragments, is_single, run_closed_hooks, send_data
from tether.sync.scheduler import Timer, scheduler
from tether.sync.threads import LeanThread
from tether.sync.waiting import Condition, Flag
from tether.sync.watcher import watcher

__all__ = ["Connection"]

READ_SIZE = 65536

REPLY_LIMIT = 65536
"""Bytes of answers (pongs) that may wait while another thread's write is stuck."""

READER_GRACE = 0.05
"""Seconds without a read by an application thread before the background thread reads.

Pings and closes don't wait for it: the background thread reads at once while
a ping of ours waits for its pong or the connection is closing.
"""

JOIN_LIMIT = 16384
"""Up to this many bytes, pieces written together are joined; beyond, sent as a vector."""

IOV_MAX = 512
"""Buffers per ``sendmsg`` call, under every system's limit."""

TLS_NOWAIT_LIMIT = 4096
"""Up to this many bytes, a shared thread writes to a TLS socket that has room."""

READER_LINGER = 1.0
"""Seconds a reader thread of a plain socket waits for work before handing over.

It gives the socket to the shared watcher, or to the thread in ``recv``,
and ends: an idle connection has no thread of its own.
"""

# Who reads the socket while no application thread does (plain sockets; a
# TLS socket always has its reader thread: an SSL read may block on a partial
# record whatever poll said).
WATCH_NONE = 0  # nobody: a thread in recv reads, or the queue is full
WATCH_SOCKET = 1  # the shared watcher waits for the socket to be readable
WATCH_GRACE = 2  # nobody until the grace timer: the application read a moment ago
WATCH_THREAD = 3  # a reader thread of this connection

# What the application thread in recv does, if there is one (one at a time).
RECV_NONE = 0  # no thread waits for data
RECV_READY = 1  # one does, and reads the socket whenever nobody else does
RECV_WAITING = 2  # it waits for the background thread, which is reading
RECV_DELEGATED = 3  # it waits for the background thread to read for it (TLS with a timeout)


# Makes each connection's id once, whichever threads ask at the same time.
_id_lock = threading.Lock()


class _Waiter(Protocol):
    def set(self) -> None: ...


class _PongOnly:
    """The waiter of a ping whose event is set by its pong only, not by the closure."""

    __slots__ = ("event",)

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def set(self) -> None:
        self.event.set()


class _KeepalivePong:
    """Waits for the pong of a keepalive ping; set under the connection's mutex."""

    __slots__ = ("answered", "connection")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.answered = False

    def set(self) -> None:
        self.answered = True
        self.connection._keepalive_answered()


class _Reader(LeanThread):
    """The background reader thread of a connection."""

    def __init__(self, connection: Connection, name: str) -> None:
        super().__init__(name)
        self.connection = connection

    def run(self) -> None:
        self.connection._background_read()


class Connection(ConnectionAttributes):
    """An open WebSocket connection with blocking methods, on either side.

    It is made by :func:`tether.sync.connect` or given to a handler by
    :func:`tether.sync.serve`. ``send`` is safe to call from several threads
    at once; ``recv`` is for one thread at a time.
    """

    # Slots rather than a dictionary per instance: a server holds thousands
    # of idle connections, and more than 30 attributes give each its own
    # dictionary, 1.5 KiB. Attributes that applications set still go to one.
    __slots__ = (
        "_app_reads",
        "_changed",
        "_close_timer",
        "_closed",
        "_grace",
        "_id",
        "_keepalive",
        "_logger",
        "_logger_option",
        "_messages",
        "_mutex",
        "_pings",
        "_reader_parked",
        "_reading",
        "_receiving",
        "_recv_state",
        "_send_mutex",
        "_shut_down",
        "_wake_reader",
        "_watch",
        "_write_error",
        "_write_lock",
        "close_timeout",
        "latency",
        "ping_interval",
        "ping_timeout",
        "protocol",
        "socket",
    )

    default_logger = "tether"

    # Whether a thread in recv with no timeout blocks in the socket's recv at
    # once. Not on servers: a handler idle in recv waits for data first, and
    # holds no read buffer. On clients: one system call less per message.
    _recv_blocks = False

    # Called with the connection once it is closed, by whoever asked (topics).
    # A class attribute until then: most connections never need one.
    _on_closed: list[Callable[[Any], None]] | None = None

    def __init__(
        self,
        sock: socket.socket,
        protocol: ClientProtocol | ServerProtocol,
        *,
        ping_interval: float | None = 20,
        ping_timeout: float | None = 20,
        close_timeout: float | None = 10,
        max_queue: int | tuple[int | None, int | None] | None = 16,
        logger: LoggerLike | str | None = None,
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        # Thousands of idle connections each hold what is made here: what
        # most of them never use (a uuid, a waiter's list) is made on first use.
        self._id: uuid.UUID | None = None
        # The logger option, until the connection's own logger is made: by
        # the first record that is logged (see logger).
        self._logger: ConnectionLogger | None = None
        self._logger_option = logger
        # Asked once per connection: with DEBUG off, frames cost no logging at all.
        if self._base_logger().isEnabledFor(logging.DEBUG):
            enable_frame_log(protocol, self.logger)
        self.latency = 0.0
        """The round-trip time of the last ping answered, in seconds."""
        self._mutex = threading.Lock()
        # The receiving thread waits on this one for the background thread,
        # and the background thread sleeps on the other one. Each is made by
        # its first wait (see _wait_changed and _reader_wait): an idle
        # connection's thread waits on neither.
        self._changed: Condition | None = None
        self._wake_reader: Condition | None = None
        # Held while a fragmented message goes out, piece by piece: other
        # messages wait for its end. Made by the first such message.
        self._send_mutex: threading.Lock | None = None
        # Held while writing to the socket; never taken by a thread holding
        # _mutex except with blocking=False.
        self._write_lock = threading.Lock()
        self._shut_down = False
        # Set once a write fails: bytes queued by one thread may be written
        # by another, so every later writer must learn of the failure.
        self._write_error: OSError | None = None
        self._close_timer: Timer | None = None
        self._messages = MessageQueue(max_queue)
        # An application thread is in recv or recv_streaming (one at a time).
        self._receiving = False
        # What it does while it waits for data: a RECV_* value. Few
        # attributes keep the instance dictionary small (shared keys).
        self._recv_state = RECV_NONE
        # The read token: a thread reads the socket and feeds the engine.
        self._reading = False
        # Socket reads by application threads: tells the background thread
        # that the application reads, and that its poll result is stale.
        self._app_reads = 0
        # The background reader waits until the receiving thread leaves,
        # which wakes it, or re-arms it if it has no thread (WATCH_NONE).
        self._reader_parked = False
        # A WATCH_* value, and the grace timer of WATCH_GRACE. Until _start,
        # as if a reader thread ran: nothing watches the handshake's socket.
        self._watch = WATCH_THREAD
        self._grace: Timer | None = None
        # The pings waiting for their pong, by payload, in sending order
        # (see answer_pings): None while there is none, most of the time.
        self._pings: dict[bytes, tuple[_Waiter, float]] | None = None
        self._closed = Flag()
        # The next keepalive step on the shared scheduler: a ping, or the
        # end of the wait for its pong.
        self._keepalive: Timer | None = None

    def _start(self) -> None:
        """Handle frames that came with the handshake, then start the background reader."""
        with self._mutex:
            self._process()
            if self.ping_interval is not None and not self._closed.is_set():
                self._keepalive = scheduler.call_later(
                    self.ping_interval, type(self)._keepalive_ping, self
                )
            if isinstance(self.socket, ssl.SSLSocket):
                self._start_reader()
            else:
                self._watch = WATCH_NONE
                self._rearm()
        self._flush(block=False)

    # Attributes

    @property
    def id(self) -> uuid.UUID:
        """A unique identifier of the connection, for logs."""
        # Made when first asked for: by a log record or by the application.
        id_ = self._id
        if id_ is None:
            # Not the connection's mutex: its holders ask for the id too.
            with _id_lock:
                id_ = self._id
                if id_ is None:
                    id_ = self._id = uuid.uuid4()
        return id_

    @property
    def logger(self) -> ConnectionLogger:
        """The logger of this connection: records name it."""
        logger = self._logger
        if logger is None:
            # Two threads may make one each: either will do.
            logger = self._logger = connection_logger(
                self._logger_option, self.default_logger, None, self
            )
        return logger

    @logger.setter
    def logger(self, logger: ConnectionLogger) -> None:
        # As when it was a plain attribute: a subclass may set its own.
        self._logger = logger

    def _base_logger(self) -> LoggerLike:
        """The logger that :attr:`logger` wraps, to ask what it logs without making that."""
        logger = self._logger
        if logger is not None:
            return logger
        return base_logger(self._logger_option, self.default_logger)

    @property
    def local_address(self) -> Any:
        """The local address of the socket."""
        return self.socket.getsockname()

    @property
    def remote_address(self) -> Any:
        """The remote address of the socket."""
        return self.socket.getpeername()

    # Receiving

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> str | bytes:
        """Return the next message: ``str`` for text and ``bytes`` for binary.

        ``decode`` works as in the asyncio API. With a ``timeout``,
        :class:`TimeoutError` is raised when no message arrived in time; no
        message is lost then. Raise
        :class:`~tether.exceptions.ConnectionClosed` once the connection is
        closed and every message received before was read.
        """
        # Not a with block: it would keep its exit method, an object, for as
        # long as the thread waits here, which an idle handler does for good.
        mutex = self._mutex
        mutex.acquire()
        try:
            if self._receiving:
                raise ConcurrencyError("another thread is already receiving from this connection")
            messages = self._messages
            if not messages.ready:
                self._receiving = True
                try:
                    self._wait_for_data(timeout, whole=True)
                finally:
                    self._receiving = False
            was_full = messages.ready >= messages.full_at
            message = messages.get(decode)
            if was_full or (
                messages.ready <= messages.low_at
                and self.protocol.message_budget == 0
                and self.protocol.held_back
            ):
                # The background reader waits for room, or for the queue to
                # be half empty to parse what the engine held back.
                self._wake()
            return message
        finally:
            mutex.release()

    def recv_streaming(self, decode: bool | None = None) -> Iterator[str | bytes]:
        """Yield the next message piece by piece, as its frames arrive."""
        with self._mutex:
            if self._receiving:
                raise ConcurrencyError("another thread is already receiving from this connection")
            self._receiving = True
        # A binary fragment may end inside a UTF-8 sequence: decode across pieces.
        convert_piece = piece_converter(decode)
        try:
            while True:
                with self._mutex:
                    messages = self._messages
                    if not messages.pending:
                        self._wait_for_data(None, whole=False)
                    was_full = messages.full
                    piece = messages.get_fragment()
                    assert piece is not None
                    if was_full or (self.protocol.held_back and messages.low):
                        self._wake()
                data, last = piece
                yield convert_piece(data, last)
                if last:
                    return
        finally:
            with self._mutex:
                self._receiving = False

    def __iter__(self) -> Self:
        """Iterate over messages; end quietly on 1000 or 1001, raise on other closures.

        The connection is its own iterator: a handler idle in ``for message in
        ws`` holds no generator.
        """
        return self

    def __next__(self) -> str | bytes:
        """Return the next message as :meth:`recv` does; stop once closed with 1000 or 1001."""
        try:
            return self.recv()
        except ConnectionClosedOK:
            raise StopIteration from None

    def _wait_for_data(self, timeout: float | None, *, whole: bool) -> None:
        """Return once a whole message (or, unless ``whole``, a piece) waits; hold the mutex.

        Read the socket on this thread when no other thread reads it. Raise
        :class:`TimeoutError` after ``timeout`` seconds, and the
        :class:`~tether.exceptions.ConnectionClosed` that says how once the
        connection is closed.
        """
        messages = self._messages
        deadline = None
        tls = False
        if timeout is not None:
            deadline = time.monotonic() + timeout
            tls = isinstance(self.socket, ssl.SSLSocket)
        self._recv_state = RECV_READY
        if timeout is None and self._watch == WATCH_SOCKET:
            # This thread reads the socket until data comes, however long
            # that takes (an idle handler): the watcher need not wait for it
            # too, and would wake a second thread for the data. Leaving
            # re-arms it (see _after_recv).
            self._leave_watch(WATCH_SOCKET)
            self._watch = WATCH_NONE
            self._reader_parked = True
        tried = False
        try:
            while not (messages.ready if whole else messages.pending):
                if self._closed.is_set():
                    raise self.protocol.close_exc()
                remaining = None
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    # Data may wait unread in the socket: look once, even
                    # with no time left, before giving up.
                    if remaining <= 0 and (tried or tls):
                        raise TimeoutError("no message received in time")
                    remaining = max(0.0, remaining)
                if not self._reading and not tls:
                    tried = True
                    self._app_reads += 1
                    self._read_once(remaining, caller=True)
                    continue
                if tls:
                    # A TLS read may block on a partial record whatever poll
                    # said: the background thread takes that risk.
                    self._recv_state = RECV_DELEGATED
                    self._notify_reader()
                else:
                    self._recv_state = RECV_WAITING
                try:
                    # With no time left on a plain socket, the background
                    # thread is reading data that is there: wait for it.
                    self._wait_changed(remaining or None)
                finally:
                    self._recv_state = RECV_READY
        finally:
            self._recv_state = RECV_NONE
            if self._reader_parked:
                # The background reader waits until this thread leaves.
                self._reader_parked = False
                self._after_recv()

    def _read_once(self, timeout: float | None, *, caller: bool = False) -> None:
        """Read from the socket once and handle what came; hold the mutex, and the token is free.

        The mutex is let go while reading and while writing answers. With a
        ``timeout`` (plain sockets only), wait that long at most for data.
        ``caller``: the thread is the application's, in ``recv``. The thread
        that finds the connection closed keeps the token and wraps up.
        """
        protocol = self.protocol
        mutex = self._mutex
        self._reading = True
        closed = False
        try:
            # A message budget of 0 is the only way the engine holds bytes
            # back: testing it first spares the property's call on each read.
            if protocol.message_budget == 0 and protocol.held_back:
                # Messages were read: parse what the engine held back.
                protocol.message_budget = self._budget()
                protocol.resume_parsing()
            else:
                data: bytes | None
                mutex.release()
                try:
                    # Wait before recv: a recv that blocks holds a buffer of
                    # READ_SIZE bytes all along, for every idle connection.
                    # Unless the application's thread waits with no timeout
                    # on a client's blocking socket: clients are few, and the
                    # poll is a system call per message on their echo path.
                    sock = self.socket
                    if (
                        caller
                        and timeout is None
                        and self._recv_blocks
                        and sock.gettimeout() is None
                    ) or self._readable(timeout, peek=caller):
                        data = sock.recv(READ_SIZE)
                    else:
                        data = None
                except OSError:
                    data = b""
                finally:
                    mutex.acquire()
                if data is None:
                    return
                # One read of compressed data must not inflate into more
                # messages than the queue holds: the engine keeps the rest.
                if protocol.extensions:
                    protocol.message_budget = self._budget()
                if data:
                    protocol.receive_data(data)
                else:
                    protocol.receive_eof()
            self._process()
            closed = protocol.state is _CLOSED
            flush = closed or protocol.close_transport or protocol.pending_output
            if self._recv_state >= RECV_WAITING and self._changed is not None:
                self._changed.notify()
        finally:
            if not closed:
                self._reading = False
        if flush or closed:
            mutex.release()
            try:
                # Don't wait for the write lock here: its holder may be stuck
                # until the peer reads, and the peer may be waiting for us to.
                # Unless the engine's own answers (pongs) pile up: a peer that
                # floods pings and never reads must not grow memory without
                # bound, so reading waits for the write then.
                if not self._flush(block=False) and protocol.pending_output > REPLY_LIMIT:
                    self._flush(quiet=True)
                if closed:
                    self._wrap_up()
            finally:
                mutex.acquire()

    def _readable(self, timeout: float | None, *, peek: bool = False) -> bool:
        """Wait at most ``timeout`` seconds (``None``: as long as it takes) for data or EOF.

        ``peek``: the thread is the application's, in ``recv``, and may wait
        in a peek at the socket rather than in a poll (see below).
        """
        sock = self.socket
        if isinstance(sock, ssl.SSLSocket):
            if sock.pending():
                # Decrypted bytes wait in the SSL object, where poll does not look.
                return True
        elif peek and timeout is None and sock.gettimeout() is None:
            # An idle handler waits here for good. It blocks in a one-byte
            # peek: while it waits, the thread holds a byte of buffer rather
            # than a poll object and its dictionary (nor contextlib.suppress's
            # objects). The reader thread, which polled already, polls.
            try:
                sock.recv(1, socket.MSG_PEEK)
            except OSError:
                # The socket is closed or broken: reading it says how.
                return True
            return True
        poller = select.poll()
        try:
            poller.register(sock, select.POLLIN)
        except (OSError, ValueError):
            # The socket is closed: reading it fails at once.
            return True
        return bool(poller.poll(None if timeout is None else timeout * 1000))

    # Sending

    def send(self, message: Data | Iterable[Data], text: bool | None = None) -> None:
        """Send a message: ``str`` as text, bytes-like as binary, an iterable as fragments.

        ``text`` forces the opcode as in the asyncio API. Safe to call from
        several threads: the messages do not interleave.
        """
        if is_single(message):
            # The mutex alone keeps a whole message's frame together. The send
            # mutex is held only while another thread's fragments go out:
            # then this message waits for their end.
            mutex = self._mutex
            mutex.acquire()
            send_mutex = self._send_mutex
            if send_mutex is not None and send_mutex.locked():
                mutex.release()
                with send_mutex:
                    mutex.acquire()
            try:
                send_data(self.protocol, message, text)  # type: ignore[arg-type]
                # Most of the time nobody else writes: take the bytes now
                # rather than in a second turn of the mutex. (Positional
                # arguments: a keyword costs Python 3.11 a slow parse.)
                data = self.protocol.data_to_send() if self._write_lock.acquire(False) else None
            finally:
                mutex.release()
            self._flush(data=data)
            return
        if not isinstance(message, Iterable):
            raise TypeError("cannot send an async iterable with the threading API")
        pieces = cast(Iterable[Data], message)
        with self._mutex:
            send_mutex = self._send_mutex
            if send_mutex is None:
                send_mutex = self._send_mutex = threading.Lock()
        with send_mutex:
            fragments = Fragments(self.protocol, text)
            try:
                for piece in pieces:
                    with self._mutex:
                        fragments.send(piece)
                    self._flush()
            except ConnectionClosed:
                raise
            except Exception:
                if fragments.started:
                    self._fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
                raise
            with self._mutex:
                fragments.end()
            self._flush()

    def ping(self, data: Data | None = None, *, ack_on_close: bool = False) -> threading.Event:
        """Send a ping; return an event that is set when the pong arrives.

        ``latency`` then holds the round-trip time. With ``ack_on_close=True``
        the event is also set when the connection closes, so that nobody
        waits for a pong forever (check ``state`` to tell which happened);
        by default, as in websockets, it is not.
        """
        return self._ping(data, block=True, ack_on_close=ack_on_close)

    def _ping(self, data: Data | None, block: bool, ack_on_close: bool = True) -> threading.Event:
        payload = ping_payload(data)
        event = threading.Event()
        waiter: _Waiter = event if ack_on_close else _PongOnly(event)
        with self._mutex:
            self._add_ping(payload, waiter)
            try:
                self.protocol.send_ping(payload)
            except InvalidState:
                # Withdraw this ping alone: a pong would answer the earlier
                # ones too, and the closure must still reach them.
                self._withdraw_ping(payload)
                raise self.protocol.close_exc() from None
            # The pong is read at once, not after the grace period, so that
            # latency measures the network, not the application.
            self._wake()
        self._flush(block)
        return event

    def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong, as a one-way heartbeat."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        with self._mutex:
            try:
                self.protocol.send_pong(payload)
            except InvalidState:
                raise self.protocol.close_exc() from None
        self._flush()

    # Closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake and wait until the connection is closed.

        The wait lasts at most ``close_timeout``, even when the peer reads
        nothing any more; then the socket is shut down.
        """
        with self._mutex:
            if self.protocol.state is _OPEN:
                self.protocol.send_close(code, reason)
                # The background thread must read the peer's answer, even if
                # the queue is full or the application read a moment ago.
                self._wake()
            if self.protocol.state is not _CLOSED:
                # Also bounds a write stuck because the peer stopped reading.
                self._arm_close_timer()
        self._flush(quiet=True)
        self._closed.wait()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until the connection is closed; return whether it is."""
        return self._closed.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection: with 1000, or with 1011 when the block raised."""
        self.close(CloseCode.NORMAL_CLOSURE if exc_type is None else CloseCode.INTERNAL_ERROR)

    def _fail(self, code: int, reason: str, block: bool = True) -> None:
        """Fail the connection: send a close frame if possible, then shut the socket down.

        With ``block`` false, this never blocks, as the shared scheduler
        thread needs: a write stuck because the peer stopped reading does not
        hold this up (the socket is shut down at once), and a close frame the
        socket has no room for is written by a thread of its own.
        """
        self.logger.info("failing connection with code %d: %s", code, reason)
        with self._mutex:
            self.protocol.fail(code, reason)
            self._wake()
            # Bounds writing the close frame to a peer that reads no more.
            self._arm_close_timer()
        if not self._flush(block, quiet=True, nowait=not block):
            self._shutdown()

    def _shutdown(self) -> None:
        """Shut the socket down: a blocked read ends with EOF and a stuck write fails."""
        with self._mutex:
            self._shut_down = True
            self._wake()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def _half_close(self) -> None:
        """Send EOF after the close frame, and keep reading until the peer closes.

        After failing on the peer's data, the rest of what it sent may still be
        coming; after the closing handshake, a server may still get a pong
        answering a ping that crossed the client's close frame. Input that
        reaches a socket shut down for reading, or waits unread as it closes,
        makes the kernel reset the connection, and the peer may lose the
        close frame just sent. Reading goes on, dropping the rest, for
        ``close_timeout`` at most. TLS cannot half-close, so a TLS socket is
        shut down whole.
        """
        if isinstance(self.socket, ssl.SSLSocket):
            self._shutdown()
            return
        with self._mutex:
            self._arm_close_timer()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)

    # Background threads

    def _budget(self) -> int | None:
        """How many more messages the engine may parse: the queue's free room while open.

        Once closing or shutting down, everything is parsed, so that the
        peer's close frame is not stuck behind messages nobody reads.
        """
        max_queue = self._messages.max_queue
        # Without an extension, a read holds no more payload than its own
        # size: only inflating extensions need the budget, and it has a cost.
        if (
            max_queue is None
            or not self.protocol.extensions
            or self.protocol.state is not _OPEN
            or self._shut_down
        ):
            return None
        return max(0, max_queue - len(self._messages))

    def _background_read(self) -> None:
        """Read when no application thread does; close the socket at the end.

        On a plain socket, after ``READER_LINGER`` seconds with nothing
        to do, hand the socket to the watcher or to the thread in ``recv``
        and end, leaving the socket open.
        """
        sock = self.socket
        tls = isinstance(sock, ssl.SSLSocket)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        mutex = self._mutex
        # The application's reads seen when this thread last looked, and when
        # its last poll found data: a read since makes that result stale.
        seen = self._app_reads
        readable_at = -1
        linger = None if tls else READER_LINGER
        handed_over = False
        try:
            while True:
                with mutex:
                    if self._closed.is_set():
                        return
                    protocol = self.protocol
                    messages = self._messages
                    open_ = protocol.state is _OPEN and not self._shut_down
                    recv_state = self._recv_state
                    if self._reading or RECV_READY <= recv_state <= RECV_WAITING:
                        # An application thread reads, or may at any time:
                        # polling too would wake two threads per message.
                        self._reader_parked = True
                        woken = self._reader_wait(linger)
                        if not woken and self._reader_parked and not self._closed.is_set():
                            # Still in recv: when it leaves, it re-arms the
                            # watcher (WATCH_NONE with _reader_parked).
                            self._watch = WATCH_NONE
                            handed_over = True
                            return
                        self._reader_parked = False
                        continue
                    if open_ and (messages.full or protocol.held_back) and not messages.low:
                        # Stop reading: TCP flow control then slows the peer down.
                        self._reader_wait()
                        continue
                    if protocol.held_back and (messages.low or self._budget() is None):
                        # Parse what the engine held back once the queue is
                        # half empty: in batches, not one message per recv.
                        self._read_once(None)
                        continue
                    urgent = not open_ or self._pings or recv_state == RECV_DELEGATED
                    if not urgent and self._app_reads != seen:
                        # The application read a moment ago and likely reads
                        # again soon: let it, and look again later.
                        seen = self._app_reads
                        self._reader_wait(READER_GRACE)
                        continue
                    if readable_at == self._app_reads:
                        readable_at = -1
                        self._read_once(None)
                        continue
                    mark = self._app_reads
                # Wait for data without the token, so that a recv can take
                # over; a shutdown of the socket ends the wait too.
                if tls:
                    if cast(ssl.SSLSocket, sock).pending() or poller.poll():
                        readable_at = mark
                    continue
                if poller.poll(READER_LINGER * 1000):
                    readable_at = mark
                    continue
                with mutex:
                    if (
                        not self._closed.is_set()
                        and not self._reading
                        and self._recv_state == RECV_NONE
                        and not self.protocol.held_back
                        and self._app_reads == mark
                    ):
                        # Nothing came for a while: the watcher waits for
                        # the next data instead of this thread.
                        self._watch = WATCH_NONE
                        self._rearm()
                        handed_over = True
                        return
        finally:
            if not handed_over:
                self._wrap_up()
                # A thread may still be writing: let it finish before the file
                # descriptor goes away and its number can be reused. This thread
                # closes the socket because it may be polling it.
                with self._write_lock, contextlib.suppress(OSError):
                    sock.close()

    def _start_reader(self) -> None:
        """Start a reader thread for this connection; hold the mutex."""
        self._watch = WATCH_THREAD
        # A lean thread: a TLS connection keeps its reader for good.
        _Reader(self, f"tether-reader-{str(self.id)[:8]}").start()

    def _rearm(self, readable: bool = False) -> None:
        """Choose who reads while no reader thread does; hold the mutex.

        A thread in ``recv`` re-arms when it leaves; with a full queue,
        ``recv`` does when it makes room; otherwise the watcher waits for the
        socket, or, when there is work already (``readable``, or what the
        engine held back to parse), a reader thread starts.
        """
        if self._closed.is_set() or self._watch == WATCH_THREAD:
            return
        recv_state = self._recv_state
        protocol = self.protocol
        messages = self._messages
        if self._reading or RECV_READY <= recv_state <= RECV_WAITING:
            self._reader_parked = True
            want = WATCH_NONE
        elif (
            protocol.state is _OPEN
            and not self._shut_down
            and messages.ready > messages.low_at
            and (messages.ready >= messages.full_at or protocol.held_back)
        ):
            want = WATCH_NONE
        elif readable or protocol.held_back or recv_state == RECV_DELEGATED:
            want = WATCH_THREAD
        else:
            want = WATCH_SOCKET
        mode = self._watch
        if mode == want:
            return
        self._leave_watch(mode)
        self._watch = want
        if want == WATCH_SOCKET:
            watcher.watch(self.socket.fileno(), self._on_readable)
        elif want == WATCH_THREAD:
            self._start_reader()

    def _leave_watch(self, mode: int) -> None:
        """Stop what watching in ``mode`` had going: the watcher's interest or the grace timer."""
        if mode == WATCH_SOCKET:
            watcher.forget(self.socket.fileno())
        elif mode == WATCH_GRACE:
            assert self._grace is not None
            scheduler.cancel(self._grace)
            self._grace = None

    def _wait_changed(self, timeout: float | None) -> bool:
        """Wait for the background thread to read; hold the mutex."""
        changed = self._changed
        if changed is None:
            changed = self._changed = Condition(self._mutex)
        return changed.wait(timeout)

    def _reader_wait(self, timeout: float | None = None) -> bool:
        """Put the background reader to sleep until woken, or for ``timeout``; hold the mutex."""
        wake = self._wake_reader
        if wake is None:
            wake = self._wake_reader = Condition(self._mutex)
        return wake.wait(timeout)

    def _notify_reader(self) -> None:
        """Wake the background reader if it sleeps; hold the mutex."""
        if self._wake_reader is not None:
            self._wake_reader.notify()

    def _add_ping(self, payload: bytes, waiter: _Waiter) -> None:
        """Record a ping sent now; hold the mutex."""
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        elif payload in pings:
            raise ConcurrencyError("a ping with the same data is waiting for its pong")
        pings[payload] = (waiter, time.monotonic())

    def _withdraw_ping(self, payload: bytes) -> None:
        """Forget the ping of ``payload``, which never left; hold the mutex."""
        pings = self._pings
        if pings is not None:
            pings.pop(payload, None)
            if not pings:
                self._pings = None

    def _answer_pings(self, payload: bytes) -> list[tuple[_Waiter, float]]:
        """Take a pong; return the waiters it answers and their round-trip times; hold the mutex."""
        pings = self._pings
        if pings is None:
            return []
        answered = answer_pings(pings, payload, time.monotonic())
        if not pings:
            self._pings = None
        return answered

    def _wake(self) -> None:
        """Make the background reader look again; hold the mutex."""
        if self._watch == WATCH_THREAD:
            self._notify_reader()
        else:
            self._rearm()

    def _on_readable(self) -> None:
        """The socket is readable: read on a thread of this connection (on the watcher thread)."""
        with self._mutex:
            if self._watch != WATCH_SOCKET or self.socket.fileno() in watcher:
                # Stale: recv took the socket from the watcher after it had
                # picked this call, and the socket was watched again since
                # (the watcher forgets a socket before calling): that newer
                # watch calls in turn.
                return
            # The watcher forgot the socket already.
            self._watch = WATCH_NONE
            if (
                not self._reading
                and self._recv_state == RECV_NONE
                and not self._closed.is_set()
                and not self._readable(0)
            ):
                # A thread in recv took the data and left meanwhile: rather
                # than start a thread for nothing, watch again after a grace.
                self._after_recv()
                return
            self._rearm(readable=True)

    def _after_recv(self) -> None:
        """The thread in ``recv`` leaves and the reader waits for that; hold the mutex."""
        if self._watch == WATCH_THREAD:
            self._notify_reader()
        elif self._watch == WATCH_NONE:
            if self.protocol.state is not _OPEN or self._shut_down or self._pings:
                self._rearm()
            else:
                # The application likely calls recv again soon: watching the
                # socket now would wake two threads for the next message.
                self._watch = WATCH_GRACE
                reads = self._app_reads
                self._grace = scheduler.call_later(READER_GRACE, lambda: self._grace_over(reads))

    def _grace_over(self, reads: int) -> None:
        """Look at the socket again, unless the application read meanwhile (on the scheduler)."""
        with self._mutex:
            if self._watch != WATCH_GRACE:
                return
            self._watch = WATCH_NONE
            self._grace = None
            if (
                self._app_reads != reads
                and not self._reading
                and self._recv_state == RECV_NONE
                and self.protocol.state is _OPEN
                and not self._pings
            ):
                # It read and left: likely to read again, look later.
                self._after_recv()
                return
            self._rearm()

    def _process(self) -> None:
        """Handle the engine's events; hold the mutex, and call :meth:`_flush` after."""
        put = self._messages.put
        for event in self.protocol.events():
            if type(event) is Message:
                put(event)
            else:
                self._handle_event(event)
        if self.protocol.state is _CLOSING and not self.protocol.close_transport:
            # A client waits for the server to close TCP, a server for the
            # client's close frame: not forever.
            self._arm_close_timer()

    def _handle_event(self, event: Event) -> None:
        if isinstance(event, (Message, Fragment)):
            self._messages.put(event)
        elif isinstance(event, Pong):
            for waiter, latency in self._answer_pings(event.data):
                self.latency = latency
                waiter.set()

    def _arm_close_timer(self) -> None:
        """Shut the socket down ``close_timeout`` from now unless closed by then; hold the mutex."""
        if (
            self._close_timer is None
            and self.close_timeout is not None
            and not self._closed.is_set()
        ):
            self._close_timer = scheduler.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if not self._closed.is_set():
            self.logger.debug("closing timed out after %s seconds", self.close_timeout)
            self._shutdown()

    def _flush(
        self,
        block: bool = True,
        *,
        quiet: bool = False,
        data: list[bytes] | None = None,
        nowait: bool = False,
    ) -> bool:
        """Write what the engine has to send, in order; don't hold the mutex.

        Return ``False`` if ``block`` is false and another thread holds the
        write lock: that thread writes these bytes too before letting it go.
        ``data`` given means the caller took the write lock and these bytes
        from the engine already. Once the engine asks to close TCP and
        everything is written, shut the socket down. When writing fails, wait
        until the connection is closed and raise the
        :class:`~tether.exceptions.ConnectionClosed` that says how, unless
        ``quiet`` or not ``block``.

        With ``nowait``, as for a shared thread, never block: don't wait for
        the write lock, and leave what the socket does not take at once to a
        new thread, which holds the write lock until it is written.
        """
        if data is None and not self._write_lock.acquire(block and not nowait):
            return False
        shutdown = False
        error: OSError | None = None
        while True:
            if not data:
                with self._mutex:
                    data = self.protocol.data_to_send()
                    if not data:
                        shutdown = self.protocol.close_transport
                        # Our bytes may have gone out with another thread's
                        # write that failed: report it as if it were ours.
                        error = self._write_error
                        # Let go under the mutex: bytes the engine makes from
                        # now on are written by whoever takes the write lock next.
                        self._write_lock.release()
                        break
            try:
                if nowait:
                    data = self._write_nowait(data)
                    if data:
                        self._finish_writing(data)
                        return True
                elif len(data) == 1:
                    self.socket.sendall(data[0])
                else:
                    self._write(data)
            except OSError as exc:
                # The connection is broken: drop the rest; the reading thread
                # sees the shut-down socket and wraps up.
                with self._mutex:
                    self.protocol.data_to_send()
                    self._write_error = exc
                    self._write_lock.release()
                shutdown = True
                error = exc
                break
            data = None
        if shutdown:
            if error is None and self.protocol.half_close:
                self._half_close()
            else:
                self._shutdown()
        if error is not None and block and not quiet:
            self._closed.wait()
            raise self.protocol.close_exc() from error
        return True

    def _write_nowait(self, data: list[bytes]) -> list[bytes]:
        """Write what the socket takes without blocking; return the rest."""
        sock = self.socket
        if isinstance(sock, ssl.SSLSocket):
            # An SSL socket that other threads use blocking cannot be made
            # non-blocking for one write: write a few bytes, and only when
            # the kernel has room for them.
            if sum(map(len, data)) > TLS_NOWAIT_LIMIT or not self._writable():
                return data
            for chunk in data:
                sock.sendall(chunk)
            return []
        index = offset = 0
        while index < len(data):
            buffers: list[bytes | memoryview] = [memoryview(data[index])[offset:]]
            buffers += data[index + 1 : index + IOV_MAX]
            try:
                sent = sock.sendmsg(buffers, (), socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            while index < len(data) and sent >= len(data[index]) - offset:
                sent -= len(data[index]) - offset
                index += 1
                offset = 0
            offset += sent
        rest = data[index:]
        if rest and offset:
            rest[0] = rest[0][offset:]
        return rest

    def _writable(self) -> bool:
        """Whether the socket has room for more bytes now."""
        poller = select.poll()
        try:
            poller.register(self.socket, select.POLLOUT)
        except (OSError, ValueError):
            # The socket is closed: writing fails at once.
            return True
        return bool(poller.poll(0))

    def _finish_writing(self, data: list[bytes]) -> None:
        """Write ``data`` on a new thread, which holds the write lock until done and lets it go."""
        threading.Thread(
            target=self._flush,
            kwargs={"data": data, "quiet": True},
            name=f"tether-writer-{str(self.id)[:8]}",
            daemon=True,
        ).start()

    def _write(self, data: list[bytes]) -> None:
        """Write frames with one system call when possible, without copying large payloads."""
        sock = self.socket
        if len(data) == 1:
            sock.sendall(data[0])
            return
        tls = isinstance(sock, ssl.SSLSocket)
        if tls or sum(map(len, data)) <= JOIN_LIMIT:
            if tls:
                # No vectored write over TLS: one record per frame.
                for chunk in data:
                    sock.sendall(chunk)
            else:
                sock.sendall(b"".join(data))
            return
        views = [memoryview(chunk) for chunk in data if chunk]
        while views:
            sent = sock.sendmsg(views[:IOV_MAX])
            # A blocking socket sends everything unless a signal interrupts.
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if sent:
                views[0] = views[0][sent:]

    def _wrap_up(self) -> None:
        """Mark the connection closed and wake everyone; once, by whoever saw it end."""
        with self._mutex:
            if self._closed.is_set():
                return
            if self.protocol.state is not _CLOSED:
                self.protocol.receive_eof()
            self._closed.set()
            pings, self._pings = self._pings, None
            for waiter, _ in (pings or {}).values():
                if not isinstance(waiter, _PongOnly):
                    waiter.set()
            if self._changed is not None:
                self._changed.notify_all()
            if self._wake_reader is not None:
                self._wake_reader.notify_all()
            # Leave the schedule at once: a timer would keep this connection.
            if self._keepalive is not None:
                scheduler.cancel(self._keepalive)
                self._keepalive = None
            close_timer = self._close_timer
            mode = self._watch
            self._leave_watch(mode)
            # A reader thread closes the socket when it ends; else this one.
            close_socket = mode != WATCH_THREAD
            if close_socket:
                self._watch = WATCH_NONE
        if close_timer is not None:
            scheduler.cancel(close_timer)
        # Wake a thread that writes, or that polls the socket.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.logger.debug("connection closed: %s", self.protocol.close_exc())
        if self._on_closed is not None:
            run_closed_hooks(self)
        if close_socket:
            # Only this thread reads (it holds the read token): a writer may
            # still be at work, though.
            if self._write_lock.acquire(False):
                try:
                    self._close_socket()
                finally:
                    self._write_lock.release()
            else:
                threading.Thread(
                    target=self._close_after_writing,
                    name=f"tether-closer-{str(self.id)[:8]}",
                    daemon=True,
                ).start()

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.close()

    def _close_after_writing(self) -> None:
        # The writer's stuck write fails: the socket is shut down.
        with self._write_lock:
            self._close_socket()

    # Keepalive, on the shared scheduler thread: nothing here may block.

    def _keepalive_ping(self) -> None:
        """Send a keepalive ping; then wait ``ping_timeout`` for its pong, or ``ping_interval``."""
        assert self.ping_interval is not None
        pong = _KeepalivePong(self)
        payload = ping_payload(None)
        with self._mutex:
            if self._closed.is_set():
                return
            if self._pings is not None and payload in self._pings:
                # The application pinged with these four random bytes: try again.
                self._keepalive = scheduler.call_later(0, type(self)._keepalive_ping, self)
                return
            try:
                self.protocol.send_ping(payload)
            except InvalidState:
                # Closing: a pong may never come, and close_timeout bounds that.
                self._keepalive = None
                return
            self._add_ping(payload, pong)
            if self.ping_timeout is not None:
                self._keepalive = scheduler.call_later(
                    self.ping_timeout, lambda: self._keepalive_timed_out(pong)
                )
            else:
                self._keepalive = scheduler.call_later(
                    self.ping_interval, type(self)._keepalive_ping, self
                )
            # The pong is read at once, not after the grace period.
            self._wake()
        # A write stuck behind a peer that stopped reading must not hold up
        # the shared thread: it would miss the other connections' deadlines.
        self._flush(quiet=True, nowait=True)

    def _keepalive_answered(self) -> None:
        """The keepalive ping has its pong: the next one goes ``ping_interval`` from now.

        Hold the mutex.
        """
        if self._closed.is_set() or self.ping_timeout is None:
            # Without ping_timeout the next ping is scheduled already.
            return
        assert self.ping_interval is not None
        if self._keepalive is not None:
            scheduler.cancel(self._keepalive)
        self._keepalive = scheduler.call_later(self.ping_interval, type(self)._keepalive_ping, self)

    def _keepalive_timed_out(self, pong: _KeepalivePong) -> None:
        with self._mutex:
            if pong.answered or self._closed.is_set():
                return
            self._keepalive = None
        self.logger.warning("no pong within %s seconds", self.ping_timeout)
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout", block=False)
