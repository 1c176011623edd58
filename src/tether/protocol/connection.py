"""The protocol engine shared by clients and servers, once the handshake is done.

Bytes go in with :meth:`Connection.receive_data` and
:meth:`Connection.receive_eof`; events come out of :meth:`Connection.events`;
bytes to write come out of :meth:`Connection.data_to_send`. When
:attr:`Connection.close_transport` turns true, the layer above closes TCP.
The engine does no I/O and keeps no clock: timeouts belong to the layer above.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any

from tether.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidState,
    PayloadTooBig,
    ProtocolError,
    TooManyFragments,
)
from tether.extensions.base import Extension
from tether.protocol.close import MAX_REASON_BYTES, Close, CloseCode
from tether.protocol.events import (
    CloseReceived,
    Event,
    Fragment,
    Ping,
    Pong,
)
from tether.protocol.frames import (
    FIN,
    OPCODES,
    RSV1,
    RSV2,
    RSV3,
    RSV_BITS,
    Frame,
    Opcode,
    build_frame,
    compressed_frame_limit,
    encode_whole,
    frame_header,
    masking_key,
    new_frame,
    new_message,
    read_header,
    read_messages,
    serialize_frame,
)
from tether.protocol.masking import apply_mask, fill_payload, new_payload
from tether.protocol.speedups import speedups
from tether.protocol.utf8 import TextDecoder

__all__ = ["DEFAULT_MAX_SIZE", "Connection", "Role", "State", "message_frame"]

DEFAULT_MAX_SIZE = 1 << 20

_OP_CONT = Opcode.CONT.value
_OP_TEXT = Opcode.TEXT.value
_OP_BINARY = Opcode.BINARY.value
_OP_CLOSE = Opcode.CLOSE.value
_OP_PING = Opcode.PING.value
_OP_PONG = Opcode.PONG.value
_FIN_TEXT = FIN | _OP_TEXT
_FIN_BINARY = FIN | _OP_BINARY

_OK_CLOSE_CODES = frozenset({1000, 1001, 1005})

# Collapse decoded text pieces into one string past this many, so that a
# message trickling in one byte at a time cannot cost one object per byte.
_MAX_TEXT_PARTS = 256

# Pieces of a binary message from this size on are joined at the end rather
# than appended to a growing buffer.
_LARGE_PIECE = 4096

# Unmasked payloads from this size on are sent after their header instead of
# being copied into one frame.
_LARGE_SEND = 65536

# A binary message in one frame of at least this size is written into one
# payload as it arrives, rather than kept in pieces joined at the end: that
# saves a copy and an allocation of the whole message. The payload is made
# only once a quarter of the frame has arrived, so a peer cannot make the
# engine hold more than four times what it sent.
_LARGE_TARGET = 65536
_TARGET_SHARE = 4


class Role(enum.Enum):
    """Which end of the connection an engine plays."""

    CLIENT = "client"
    SERVER = "server"


class State(enum.IntEnum):
    """The connection's state (RFC 6455 sections 4 to 7)."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


# The members as module names, for the package's own use. On Python 3.11 each
# attribute read on an Enum class goes through EnumType.__getattr__'s slow
# hook, about 850 instructions, and these are read on every connection.
_CONNECTING, _OPEN, _CLOSING, _CLOSED = State.CONNECTING, State.OPEN, State.CLOSING, State.CLOSED
_CLIENT, _SERVER = Role.CLIENT, Role.SERVER


def default_max_fragments(max_size: int | None) -> int | None:
    """Derive the fragment cap from ``max_size``: 16-byte fragments of a full-size message pass."""
    if max_size is None:
        return None
    return max(1024, max_size // 16)


def truncate_reason(reason: str) -> str:
    """Cut ``reason`` to fit a close frame, on a character boundary."""
    encoded = reason.encode()
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode(errors="ignore")


class Connection:
    """A WebSocket connection's protocol engine, for either role.

    ``max_size`` bounds each incoming message, after decompression (``None``
    for no bound); a ``(max_message_size, max_fragment_size)`` pair also
    bounds each frame of a message, as websockets allows, for long messages
    sent in short fragments. ``max_fragments`` bounds the frames of one
    message and is derived from the message bound unless given. With ``streaming`` true, a
    fragmented message comes out as :class:`Fragment` events as its bytes
    arrive instead of one :class:`Message` at the end; an unfragmented
    message is always one :class:`Message`.
    """

    frame_log: Any
    """What logs this engine's frames, on an engine that does (see :mod:`tether.framelog`)."""

    __slots__ = (
        "_allowed_rsv",
        "_buffer",
        "_close_transport",
        "_events",
        "_expect_mask",
        "_fast_max_size",
        "_frame_extensions",
        "_input_done",
        "_mask",
        "_message_rsv",
        "_msg_binary",
        "_msg_decoder",
        "_msg_frames",
        "_msg_parts",
        "_msg_size",
        "_msg_started",
        "_msg_stream",
        "_msg_target",
        "_msg_text",
        "_msg_transformed",
        "_output",
        "_partial",
        "_send_transformed",
        "_start",
        "_whole",
        "close_rcvd",
        "close_rcvd_then_sent",
        "close_sent",
        "eof_received",
        "error",
        "extensions",
        # Set only on an engine that logs its frames (tether.framelog).
        "frame_log",
        "max_fragments",
        "max_frame_size",
        "max_size",
        "message_budget",
        "role",
        "state",
        "streaming",
    )

    def __init__(
        self,
        role: Role,
        *,
        state: State = State.OPEN,
        max_size: int | tuple[int | None, int | None] | None = DEFAULT_MAX_SIZE,
        max_fragments: int | None = None,
        streaming: bool = False,
        extensions: Sequence[Extension] = (),
    ) -> None:
        max_frame_size = None
        if isinstance(max_size, tuple):
            max_size, max_frame_size = max_size
        if max_size is not None and max_size < 0:
            raise ValueError("max_size must be None or at least 0")
        if max_frame_size is not None and max_frame_size < 0:
            raise ValueError("the fragment size in max_size must be None or at least 0")
        # A message has at least one frame: a smaller cap would refuse them
        # all, and the fast path, which reads single frames, relies on this.
        if max_fragments is not None and max_fragments < 1:
            raise ValueError("max_fragments must be None or at least 1")
        self.role = role
        self.state = state
        self.max_size = max_size
        self.max_frame_size = max_frame_size
        """The bound on each frame of a message, or ``None``: the second item of ``max_size``."""
        # A message in one frame meets both bounds: what the fast path checks.
        self._fast_max_size = (
            max_size
            if max_frame_size is None
            else max_frame_size
            if max_size is None
            else min(max_size, max_frame_size)
        )
        self.max_fragments = (
            default_max_fragments(max_size) if max_fragments is None else max_fragments
        )
        self.streaming = streaming
        self.close_rcvd: Close | None = None
        self.close_sent: Close | None = None
        self.close_rcvd_then_sent: bool | None = None
        self.error: ProtocolError | PayloadTooBig | TooManyFragments | None = None
        self.eof_received = False
        self.message_budget: int | None = None
        """How many more whole messages the engine may parse before it holds input back.

        ``None`` means no bound. A layer above that queues messages sets it
        to its free room before feeding bytes, and calls
        :meth:`resume_parsing` when it has room again: then one read of
        compressed data cannot inflate into more messages than it can hold.
        """
        self._close_transport = False
        # The events received and the bytes to send, until taken: None while
        # there are none, so that an idle connection holds no empty lists.
        self._events: list[Event] | None = None
        self._output: list[bytes] | None = None
        # The bytes read and not parsed yet: a bytearray, or the empty bytes
        # while there are none (no object of the connection's own).
        self._buffer: bytes | bytearray = b""
        # Where the unparsed bytes start in _buffer.
        self._start = 0
        self._mask = role is _CLIENT
        self._expect_mask = role is _SERVER
        self._input_done = False
        # The frame whose payload is arriving in pieces: its opcode, fin flag,
        # bytes still to come, masking key and the key's offset.
        self._partial: tuple[int, bool, int, bytes | None, int] | None = None
        # The incoming message being assembled: None when there is none.
        self._msg_text: bool | None = None
        self._msg_transformed = False
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_decoder: TextDecoder | None = None
        # The pieces of a text message, or of a binary message: small binary
        # pieces gather in _msg_binary, large ones wait in _msg_parts as they
        # are, to be joined once at the end. Each is made by the message
        # that needs it and dropped at its end: an idle connection holds
        # neither.
        self._msg_parts: list[Any] | None = None
        self._msg_binary: bytearray | None = None
        # A large binary message in one frame: the payload its bytes are
        # written into as they arrive (see _LARGE_TARGET), or None.
        self._msg_target: bytes | bytearray | None = None
        self._msg_started = False
        self._msg_stream = False
        # The outgoing fragmented message: None, or whether it is compressed.
        self._send_transformed: bool | None = None
        self.extensions: list[Extension]
        self._set_extensions(extensions)

    # Extensions

    def _set_extensions(self, extensions: Sequence[Extension]) -> None:
        self.extensions = list(extensions)
        # The one extension whose whole messages go through encode_message
        # and decode_message, if any.
        self._whole: Extension | None = None
        if not extensions:
            # Every engine starts here, and most connections stay here.
            self._frame_extensions = False
            self._message_rsv = self._allowed_rsv = 0
            return
        if len(extensions) == 1 and extensions[0].whole_messages and extensions[0].rsv_mask:
            self._whole = extensions[0]
        masks = [ext.rsv_mask for ext in self.extensions]
        # An extension that declares no RSV bits may touch any frame: every
        # frame then goes through the chain and every RSV bit is its business.
        self._frame_extensions = any(mask is None for mask in masks)
        self._message_rsv = 0
        for mask in masks:
            self._message_rsv |= mask or 0
        self._allowed_rsv = RSV_BITS if self._frame_extensions else self._message_rsv

    # Output

    def data_to_send(self) -> list[bytes]:
        """Return and forget the bytes to write, in order."""
        output = self._output
        if output is None:
            return []
        self._output = None
        return output

    def _queue_output(self, data: bytes) -> None:
        """Add ``data`` to the bytes to write."""
        output = self._output
        if output is None:
            self._output = [data]
        else:
            output.append(data)

    @property
    def pending_output(self) -> int:
        """How many bytes wait in :meth:`data_to_send`.

        The engine answers pings on its own: a layer above that cannot write
        for now reads this to stop reading before the answers pile up.
        """
        output = self._output
        return 0 if output is None else sum(map(len, output))

    def events(self) -> list[Event]:
        """Return and forget the events received so far, in order."""
        events = self._events
        if events is None:
            return []
        self._events = None
        return events

    def _queue_event(self, event: Event) -> None:
        """Add ``event`` to the events received."""
        events = self._events
        if events is None:
            self._events = [event]
        else:
            events.append(event)

    def _event_list(self) -> list[Event]:
        """The list of events received, made if there is none: for read_messages to add to."""
        events = self._events
        if events is None:
            events = self._events = []
        return events

    @property
    def close_transport(self) -> bool:
        """Whether this side should now close the TCP connection.

        True once a server has completed the closing handshake, once the
        connection has failed, or once the peer closed TCP. A client that
        completed the closing handshake waits for the server to close TCP,
        and the layer above closes it after a timeout.
        """
        return self._close_transport

    @property
    def half_close(self) -> bool:
        """Whether the layer above, once :attr:`close_transport` is true, half-closes TCP instead.

        True while the connection is closing after failing on the peer's data,
        and after the closing handshake, until the peer closes TCP. The peer
        may still be sending: the rest of a message after an error, or a pong
        answering a ping that crossed its close frame (RFC 6455 section
        5.5.2). Bytes that reach a closed socket, or wait unread in it as it
        closes, make the kernel reset TCP, which drops what was not delivered
        yet, the close frame included: the peer would see an abnormal closure
        (1006). So the layer above sends EOF, reads and drops what comes
        until the peer's EOF or its close timeout, then closes. (After the
        handshake, only a server's engine asks to close TCP: the server closes
        it first, RFC 6455 section 7.1.1.)
        """
        return (
            self.state is _CLOSING
            and not self.eof_received
            and (self.error is not None or self.close_rcvd is not None)
        )

    @property
    def close_code(self) -> int | None:
        """The close code received; 1006 when the connection ended without one."""
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        if self.state is _CLOSED:
            return CloseCode.ABNORMAL_CLOSURE
        return None

    @property
    def close_reason(self) -> str | None:
        """The close reason received; empty when the connection ended without one."""
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        if self.state is _CLOSED:
            return ""
        return None

    def close_exc(self) -> ConnectionClosed:
        """Build the exception that reports how the connection closed."""
        rcvd, sent = self.close_rcvd, self.close_sent
        ok = (
            rcvd is not None
            and sent is not None
            and rcvd.code in _OK_CLOSE_CODES
            and sent.code in _OK_CLOSE_CODES
        )
        exc_type = ConnectionClosedOK if ok else ConnectionClosedError
        exc = exc_type(rcvd, sent, self.close_rcvd_then_sent)
        exc.__cause__ = self.error
        return exc

    # Sending

    def send_message(
        self, data: str | bytes | bytearray | memoryview, text: bool | None = None
    ) -> None:
        """Send one whole message in one frame: ``str`` as text, bytes-like as binary.

        ``text`` forces the opcode: ``True`` sends bytes (UTF-8 already) as
        text, ``False`` sends ``str`` as binary, encoded as UTF-8. This is
        what the APIs' ``send`` calls for a single message; it makes the
        checks of :meth:`send_text` and :meth:`send_binary` and raises what
        they raise.
        """
        kind = type(data)
        # The common case in one call: an open connection with no extension
        # at work and no fragmented message on its way out. Anything else
        # goes through send_text or send_binary.
        if self.state is _OPEN and self._send_transformed is None:
            if not self.extensions:
                if kind is bytes:
                    first = _FIN_TEXT if text else _FIN_BINARY
                elif kind is str:
                    first = _FIN_BINARY if text is False else _FIN_TEXT
                    data = data.encode()  # type: ignore[union-attr]
                else:
                    first = 0
            elif self._whole is not None and (kind is bytes or kind is str):
                # The same through the one extension that takes whole messages.
                if kind is str:
                    first = _FIN_BINARY if text is False else _FIN_TEXT
                    data = data.encode()  # type: ignore[union-attr]
                else:
                    first = _FIN_TEXT if text else _FIN_BINARY
                key = masking_key() if self._mask else None
                self._queue_output(encode_whole(self._whole, first, data, key))  # type: ignore[arg-type]
                return
            else:
                first = 0
            if first:
                # data is bytes here; type tests would cost calls on this path.
                if self._mask:
                    self._queue_output(build_frame(first, data, masking_key()))  # type: ignore[arg-type]
                    return
                if len(data) < _LARGE_SEND:
                    self._queue_output(build_frame(first, data, None))  # type: ignore[arg-type]
                    return
                # Large payloads go out after their header, as _send_data does.
                text = first == _FIN_TEXT
        if text is None:
            text = isinstance(data, str)
        if text:
            self.send_text(data if isinstance(data, str) else bytes(data))
        else:
            self.send_binary(data.encode() if isinstance(data, str) else data)

    def message_frame(self, data: object, text: bool | None = None) -> bytes | None:
        """Send one whole message and return its frame, for the caller to write now.

        :meth:`send_message` then :meth:`data_to_send` in one call, in the
        common case: the engine open with no extension (or only one that
        takes whole messages, such as permessage-deflate, which then
        compresses the message), no fragmented message on its way out and
        nothing waiting in :meth:`data_to_send`; ``data`` ``bytes`` or
        ``str`` (``text`` as :meth:`send_message` takes it); a plain frame
        under 64 KiB unless masked (a large unmasked payload goes out after
        its header, uncopied); and a class that sends the usual way (frame
        logging does not). Otherwise return ``None`` with nothing done: the
        caller uses :meth:`send_message`. The C accelerator's
        ``message_frame(engine, data, text)`` does the same.
        """
        kind = type(data)
        whole = self._whole
        if (
            self.state is not _OPEN
            or self._send_transformed is not None
            or (self.extensions and whole is None)
            or self._output
            or (kind is not bytes and kind is not str)
            or type(self).send_message is not Connection.send_message
            or type(self).data_to_send is not Connection.data_to_send
        ):
            return None
        if kind is str:
            first = _FIN_BINARY if text is False else _FIN_TEXT
            payload: bytes = data.encode()  # type: ignore[attr-defined]
        else:
            first = _FIN_TEXT if text else _FIN_BINARY
            payload = data  # type: ignore[assignment]
        if whole is not None:
            return encode_whole(whole, first, payload, masking_key() if self._mask else None)
        if self._mask:
            return build_frame(first, payload, masking_key())
        if len(payload) >= _LARGE_SEND:
            return None
        return build_frame(first, payload, None)

    def send_text(
        self, data: str | bytes, *, fin: bool = True, compress: bool | None = None
    ) -> None:
        """Send a text message, or the first frame of one when ``fin`` is false.

        ``bytes`` must already be UTF-8. ``compress=False`` sends the message
        uncompressed on a connection that negotiated compression.
        """
        payload = data.encode() if isinstance(data, str) else data
        self._send_data(_OP_TEXT, payload, fin, compress)

    def send_binary(
        self,
        data: bytes | bytearray | memoryview,
        *,
        fin: bool = True,
        compress: bool | None = None,
    ) -> None:
        """Send a binary message, or the first frame of one when ``fin`` is false."""
        self._send_data(_OP_BINARY, data, fin, compress)

    def send_continuation(self, data: str | bytes | bytearray | memoryview, *, fin: bool) -> None:
        """Send the next frame of the message started with ``fin=False``."""
        if self._send_transformed is None:
            raise InvalidState("no fragmented message is being sent")
        payload = data.encode() if isinstance(data, str) else data
        self._send_data(_OP_CONT, payload, fin, self._send_transformed)

    def _send_data(
        self,
        opcode: int,
        data: bytes | bytearray | memoryview,
        fin: bool,
        compress: bool | None,
    ) -> None:
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a data frame while {self.state.name}")
        if self._send_transformed is not None and opcode != _OP_CONT:
            raise InvalidState("a fragmented message is still being sent")
        if self.extensions and (compress is not False or self._frame_extensions):
            self._send_transformed_frame(opcode, data, fin, compress is not False)
            return
        first = FIN | opcode if fin else opcode
        if self._mask:
            self._queue_output(build_frame(first, data, masking_key()))
        elif type(data) is not bytes or len(data) < _LARGE_SEND:
            self._queue_output(build_frame(first, data, None))
        else:
            # The payload goes out as it is, after its header: no copy.
            # Only bytes, which no one can change before it is written.
            self._queue_output(frame_header(first, len(data)))
            self._queue_output(data)
        if not fin:
            self._send_transformed = False
        elif opcode == _OP_CONT:
            self._send_transformed = None

    def _send_transformed_frame(
        self, opcode: int, data: bytes | bytearray | memoryview, fin: bool, transform: bool
    ) -> None:
        """Send a data frame through all extensions, or through those that claim every frame."""
        frame = new_frame(OPCODES[opcode], bytes(data), fin, False, False, False)
        for extension in self.extensions:
            if transform or extension.rsv_mask is None:
                frame = extension.encode(frame)
        self._queue_output(frame.serialize(mask=self._mask))
        self._send_transformed = None if fin else transform

    @property
    def shares_frames(self) -> bool:
        """Whether :meth:`send_prepared` may take a frame built once for many connections.

        True for a server, whose frames are not masked, unless an extension
        claims every frame (declares no RSV bits). permessage-deflate does
        not stand in the way: a message may go uncompressed (RFC 7692
        section 6), so one plain frame suits every connection.
        """
        return not self._mask and not self._frame_extensions

    def send_prepared(self, frame: bytes) -> None:
        """Send a whole, unfragmented data frame built by the caller, such as a broadcast.

        ``frame`` must be one complete text or binary frame with FIN set and
        no mask, as :func:`~tether.protocol.frames.serialize_frame` builds it
        with ``mask=False``; RSV1 only if compressed as this connection's
        permessage-deflate would without context takeover (see
        :mod:`tether.topics.fanout`). Raise :class:`InvalidState` unless the
        connection is open, no fragmented message is being sent and
        :attr:`shares_frames` is true.
        """
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a data frame while {self.state.name}")
        if self._send_transformed is not None:
            raise InvalidState("a fragmented message is still being sent")
        if not self.shares_frames:
            raise InvalidState("this connection cannot send a frame built for another")
        self._queue_output(frame)

    def send_ping(self, data: bytes = b"") -> None:
        """Send a ping; the peer answers with a pong carrying the same data."""
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a ping while {self.state.name}")
        self._send_control(_OP_PING, data)

    def send_pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, as a one-way heartbeat."""
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a pong while {self.state.name}")
        self._send_control(_OP_PONG, data)

    def _send_control(self, opcode: int, data: bytes) -> None:
        if len(data) > 125:
            raise ValueError("control frame payload is over 125 bytes")
        if self._frame_extensions:
            frame = new_frame(OPCODES[opcode], bytes(data), True, False, False, False)
            for extension in self.extensions:
                frame = extension.encode(frame)
            self._queue_output(frame.serialize(mask=self._mask))
        else:
            self._queue_output(serialize_frame(opcode, data, mask=self._mask))

    def send_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason``.

        Code 1005 sends a close frame with no payload.
        """
        if self.state is not _OPEN:
            raise InvalidState(f"cannot send a close frame while {self.state.name}")
        close = Close(code, reason)
        payload = close.serialize()
        self._send_control(_OP_CLOSE, payload)
        self.close_sent = close
        # OPEN means no close frame arrived yet: the peer's answer completes
        # the closing handshake in _receive_control.
        self.state = _CLOSING

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: send a close frame if none went out, and ask to close TCP.

        Incoming bytes are ignored from now on. The layer above uses this for
        its own reasons, such as a keepalive timeout (1011).
        """
        if self.state is _OPEN:
            close = Close(code, truncate_reason(reason))
            self._send_control(_OP_CLOSE, close.serialize())
            self.close_sent = close
            self.state = _CLOSING
        elif self.state is _CONNECTING:
            # No WebSocket yet, so no close frame: the connection just ends.
            self.state = _CLOSED
        self._input_done = True
        self._close_transport = True

    def _fail_with(self, exc: ProtocolError | PayloadTooBig | TooManyFragments) -> None:
        self.error = exc
        self.fail(exc.code, str(exc))

    def _closing_handshake_done(self) -> None:
        # The server closes TCP first (RFC 6455 section 7.1.1).
        self._input_done = True
        if self.role is _SERVER:
            self._close_transport = True

    # Receiving

    def receive_eof(self) -> None:
        """Tell the engine the peer closed TCP; the connection is now closed.

        Bytes held back by :attr:`message_budget` are still parsed first: the
        connection closes once :meth:`resume_parsing` has read them.
        """
        self.eof_received = True
        if not self.held_back:
            self._end_of_input()

    def _end_of_input(self) -> None:
        self._input_done = True
        self._close_transport = True
        self.state = _CLOSED

    @property
    def held_back(self) -> bool:
        """Whether received bytes wait, unparsed, for :meth:`resume_parsing`."""
        return self.message_budget == 0 and bool(self._buffer) and not self._input_done

    def resume_parsing(self) -> None:
        """Parse the bytes held back once :attr:`message_budget` allows more messages."""
        self.receive_data(b"")
        if self.eof_received and self.state is not _CLOSED and not self.held_back:
            self._end_of_input()

    def take_messages(
        self,
        data: bytes | bytearray | memoryview,
        into: list[Event],
        budget: int | None = None,
    ) -> int:
        """Read the messages at the start of ``data`` that each came whole in one frame.

        What :meth:`receive_data` does first with a read when nothing else is
        under way: the engine open, no bytes buffered, no frame or message
        half received, no :attr:`message_budget`, no extension but one that
        takes whole messages (permessage-deflate), no events waiting, and a
        class that receives the usual way (frame logging does not). At most
        ``budget`` messages (``None``: no bound) are read, each in one plain
        frame or, with the extension, compressed in one frame: ``budget`` is
        what :attr:`message_budget` would be for this read. The
        :class:`Message` events go to ``into`` instead of :meth:`events`, and
        the number of bytes they took is returned. The caller then feeds the
        rest, ``data[taken:]``, to :meth:`receive_data`, which gives what it
        would have given for the whole read, and sends what
        :meth:`data_to_send` holds. Return -1, with nothing done, when the
        engine is not in that state.

        A compressed frame is consumed whatever comes of it: invalid data or
        a message over ``max_size`` fails the engine here, as
        :meth:`receive_data` would fail it, and the bytes taken end before
        that frame (``receive_data`` then ignores the rest).
        """
        whole = self._whole
        if (
            self.state is not _OPEN
            or self._input_done
            or self._buffer
            or self._partial is not None
            or self._msg_text is not None
            or self.message_budget is not None
            or (self.extensions and whole is None)
            or self._events
            or type(self).receive_data is not Connection.receive_data
        ):
            return -1
        if whole is None:
            return read_messages(
                data, 0, self._expect_mask, self._fast_max_size, budget, into, None
            )
        # One message at a time: where a failing frame starts is where taking ends.
        pos = taken = 0
        try:
            while budget is None or taken < budget:
                end = read_messages(
                    data, pos, self._expect_mask, self._fast_max_size, 1, into, whole
                )
                if end == pos:
                    break
                pos = end
                taken += 1
        except (ProtocolError, PayloadTooBig) as exc:
            self._fail_with(exc)
        return pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> bool:
        """Feed bytes read from the network.

        Return ``True`` when the bytes were nothing but whole messages, each
        in one frame, with nothing buffered before them: then the new
        events are all :class:`Message` events and the engine has nothing new
        to send, so a layer above may skip looking for anything else. The
        usual answer is ``False``, which promises nothing.
        """
        if self._input_done:
            return False
        if self.state is _CONNECTING:
            self._receive_handshake(data)
            return False
        buffer = self._buffer
        try:
            if buffer:
                assert type(buffer) is bytearray
                buffer += data
                source: bytes | bytearray | memoryview = buffer
                start = self._start
            elif data:
                source = data
                start = 0
                if self._partial is None and self._msg_text is None and not self._frame_extensions:
                    # The common case, before any other work: the read holds
                    # messages that each came whole in one frame.
                    budget = self.message_budget
                    if budget is None:
                        start = read_messages(
                            data,
                            0,
                            self._expect_mask,
                            self._fast_max_size,
                            None,
                            self._event_list(),
                            self._whole,
                        )
                        if start == len(data):
                            return True
                    elif budget:
                        # Compressed connections have a budget: so many more
                        # messages at most, each counted off it.
                        events = self._event_list()
                        count = len(events)
                        start = read_messages(
                            data,
                            0,
                            self._expect_mask,
                            self._fast_max_size,
                            budget,
                            events,
                            self._whole,
                        )
                        self.message_budget = budget - (len(events) - count)
                        if start == len(data):
                            return True
            else:
                return False
            used = self._parse(source, start)
        except (ProtocolError, PayloadTooBig, TooManyFragments) as exc:
            self._fail_with(exc)
            self._buffer = b""
            self._start = 0
            return False
        if source is buffer:
            if used == len(buffer):
                self._buffer = b""
                used = 0
            elif used > len(buffer) >> 1:
                # Drop what was parsed only once it is half the buffer: parsing
                # held-back messages a few at a time stays linear.
                assert type(buffer) is bytearray
                del buffer[:used]
                used = 0
            self._start = used
        elif used < len(source):
            self._buffer = bytearray(source[used:])
            self._start = 0
        return False

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes of the opening handshake: the client and server engines read it."""
        raise InvalidState("this engine has no opening handshake to read")

    def _parse(self, buf: bytes | bytearray | memoryview, pos: int) -> int:
        """Consume as many frames of ``buf[pos:]`` as are there; return where parsing stopped."""
        end = len(buf)
        while pos < end and not self._input_done:
            partial = self._partial
            if partial is None and self._msg_text is None and not self._frame_extensions:
                # The common case first: messages that each came whole in one
                # plain frame. The general path below reads whatever this stops
                # at, and raises the errors.
                budget = self.message_budget
                if budget != 0:
                    events = self._event_list()
                    count = len(events)
                    pos = read_messages(
                        buf,
                        pos,
                        self._expect_mask,
                        self._fast_max_size,
                        budget,
                        events,
                        self._whole,
                    )
                    if budget is not None:
                        self.message_budget = budget - (len(events) - count)
                    if pos == end:
                        break
            if partial is not None:
                opcode, fin, remaining, key, offset = partial
                take = min(remaining, end - pos)
                target = self._msg_target
                if target is None and fin and opcode == _OP_BINARY and not self._msg_stream:
                    target = self._start_target(remaining, take)
                if target is not None:
                    rotated = None if key is None else key[offset:] + key[:offset]
                    fill_payload(target, self._msg_size, memoryview(buf)[pos : pos + take], rotated)
                    pos += take
                    self._msg_size += take
                    remaining -= take
                    if remaining:
                        self._partial = (opcode, fin, remaining, key, (offset + take) & 3)
                    else:
                        self._partial = None
                        self._end_target(target)
                    continue
                chunk: bytes | memoryview
                if take == end and key is None and type(buf) is bytes:
                    # The whole read is payload as it is: kept, not copied.
                    chunk = buf
                else:
                    # A view, not a slice: a large frame's pieces are copied once.
                    chunk = memoryview(buf)[pos : pos + take]
                pos += take
                if key is not None:
                    chunk = apply_mask(chunk, key[offset:] + key[:offset])
                remaining -= take
                if remaining:
                    self._partial = (opcode, fin, remaining, key, (offset + take) & 3)
                    self._receive_piece(chunk, last=False)
                else:
                    self._partial = None
                    self._receive_piece(chunk, last=fin)
                continue
            header = read_header(buf, pos, self._expect_mask, self._allowed_rsv)
            if header is None:
                break
            fin, rsv, opcode, length, key, size = header
            if opcode < _OP_CLOSE and self.message_budget == 0:
                # Data waits for room; control frames, small by rule, go on.
                break
            start = pos + size
            stop = start + length
            if opcode < _OP_CLOSE:
                transformed = self._check_data_frame(opcode, rsv, length)
                if stop > end and transformed:
                    break
                self._begin_data_frame(opcode, fin, transformed)
                if stop > end:
                    # A plain data frame is consumed as it arrives, so that
                    # invalid UTF-8 fails at once and no payload waits here.
                    self._partial = (opcode, fin, length, key, 0)
                    pos = start
                    continue
            else:
                transformed = self._frame_extensions
                if rsv & self._message_rsv and not transformed:
                    raise ProtocolError("extension bit set on a control frame")
                if stop > end:
                    break
            pos = stop
            raw = buf[start:stop]
            payload = bytes(raw) if key is None else apply_mask(raw, key)
            if transformed:
                self._receive_transformed(
                    new_frame(
                        OPCODES[opcode],
                        payload,
                        fin,
                        bool(rsv & RSV1),
                        bool(rsv & RSV2),
                        bool(rsv & RSV3),
                    )
                )
            elif opcode >= _OP_CLOSE:
                self._receive_control(opcode, payload)
            else:
                self._receive_piece(payload, last=fin)
        return pos

    def _check_data_frame(self, opcode: int, rsv: int, length: int) -> bool:
        """Check a data frame's header against the message in progress.

        Return whether the frame goes through the extensions. Nothing changes
        here, so a header read again once more bytes arrive is checked the same.
        """
        if opcode == _OP_CONT:
            if self._msg_text is None:
                raise ProtocolError("continuation frame with no message to continue")
            if rsv & self._message_rsv and not self._frame_extensions:
                raise ProtocolError("extension bit set on a continuation frame")
            transformed = self._msg_transformed
            size = self._msg_size
            frames = self._msg_frames + 1
        else:
            if self._msg_text is not None:
                raise ProtocolError("new data frame in the middle of a fragmented message")
            transformed = self._frame_extensions or bool(rsv & self._message_rsv)
            size = 0
            frames = 1
        max_fragments = self.max_fragments
        if max_fragments is not None and frames > max_fragments:
            raise TooManyFragments(max_fragments)
        max_size = self.max_size
        max_frame_size = self.max_frame_size
        if max_size is not None:
            if transformed:
                limit = compressed_frame_limit(max_size)
                if length > limit:
                    raise PayloadTooBig(length, limit)
            elif size + length > max_size:
                raise PayloadTooBig(length, max_size - size, size or None)
        if max_frame_size is not None:
            if transformed:
                limit = compressed_frame_limit(max_frame_size)
                if length > limit:
                    raise PayloadTooBig(length, limit)
            elif length > max_frame_size:
                raise PayloadTooBig(length, max_frame_size)
        return transformed

    def _begin_data_frame(self, opcode: int, fin: bool, transformed: bool) -> None:
        if opcode != _OP_CONT:
            self._msg_text = opcode == _OP_TEXT
            self._msg_transformed = transformed
            self._msg_size = 0
            self._msg_frames = 0
            self._msg_started = False
            # Only a fragmented message is streamed: one sent whole stays whole.
            self._msg_stream = self.streaming and not fin
        self._msg_frames += 1

    def _receive_transformed(self, frame: Frame) -> None:
        """Run a frame through the extensions, then handle what comes out."""
        opcode = frame.opcode
        if opcode >= _OP_CLOSE:
            for extension in reversed(self.extensions):
                frame = extension.decode(frame)
            self._receive_control(opcode, frame.data)
            return
        max_size = self.max_size
        room = None if max_size is None else max_size - self._msg_size
        max_frame_size = self.max_frame_size
        limit = room
        if max_frame_size is not None and (limit is None or max_frame_size < limit):
            limit = max_frame_size
        try:
            for extension in reversed(self.extensions):
                frame = extension.decode(frame, max_size=limit)
        except PayloadTooBig as exc:
            # An extension reports the frame; the limit counts the message before it too.
            exc.set_current_size(self._msg_size or None)
            raise
        data = frame.data
        if room is not None and len(data) > room:
            raise PayloadTooBig(len(data), room, self._msg_size or None)
        if max_frame_size is not None and len(data) > max_frame_size:
            raise PayloadTooBig(len(data), max_frame_size)
        if frame.fin and opcode != _OP_CONT:
            self._receive_whole(opcode == _OP_TEXT, data)
        else:
            self._receive_piece(data, last=frame.fin)

    def _receive_whole(self, text: bool, payload: bytes) -> None:
        """Deliver a message that came in a single frame: the fast path."""
        self._msg_text = None
        if self.message_budget is not None:
            self.message_budget -= 1
        if text:
            try:
                self._queue_event(new_message(payload.decode()))
            except UnicodeDecodeError as exc:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
        else:
            self._queue_event(new_message(payload))

    def _receive_piece(self, data: bytes | memoryview, *, last: bool) -> None:
        """Add a piece of the message in progress; ``last`` ends the message."""
        self._msg_size += len(data)
        first = not self._msg_started
        self._msg_started = True
        if self._msg_text:
            decoder = self._msg_decoder
            if decoder is None:
                decoder = self._msg_decoder = TextDecoder()
            text = decoder.decode(data, final=last)
            if self._msg_stream:
                if text or first or last:
                    self._queue_event(Fragment(text, first, last))
            else:
                parts = self._msg_parts
                if text:
                    if parts is None:
                        parts = self._msg_parts = []
                    parts.append(text)
                    if len(parts) > _MAX_TEXT_PARTS:
                        parts[:] = ["".join(parts)]
                if last:
                    self._queue_event(new_message("" if parts is None else "".join(parts)))
                    self._msg_parts = None
            if last:
                self._msg_decoder = None
        elif self._msg_stream:
            if data or first or last:
                self._queue_event(Fragment(bytes(data), first, last))
        else:
            self._gather_binary(data, last)
        if last:
            self._msg_text = None
            if self.message_budget is not None:
                self.message_budget -= 1

    def _gather_binary(self, data: bytes | memoryview, last: bool) -> None:
        """Add a piece of a binary message, copying each byte once before the final join.

        Growing one bytearray would copy a large message again each time the
        array grows, and once more to make it bytes; large pieces are kept as
        they are and joined at the end instead.
        """
        binary = self._msg_binary
        parts = self._msg_parts
        if len(data) >= _LARGE_PIECE:
            if parts is None:
                parts = self._msg_parts = []
            if binary:
                parts.append(bytes(binary))
                binary.clear()
            # A view of the read buffer is copied: keeping it would keep the
            # whole read alive, with whatever else came in it.
            parts.append(data if type(data) is bytes else bytes(data))
        else:
            if binary is None:
                binary = self._msg_binary = bytearray()
            binary += data
        if last:
            if parts:
                if binary:
                    parts.append(bytes(binary))
                # One part is returned as is by join: no copy at all.
                message = b"".join(parts)
            else:
                message = b"" if binary is None else bytes(binary)
            self._msg_parts = None
            self._msg_binary = None
            self._queue_event(new_message(message))

    def _start_target(self, remaining: int, take: int) -> bytes | bytearray | None:
        """Make the payload a large one-frame binary message is written into, once it is due.

        ``remaining`` bytes of the frame are still to come, ``take`` of them in
        this read. Return None while the frame is small, while less than a
        quarter of it has arrived, or when this read holds all of it: its
        pieces are then gathered as usual. What was gathered so far moves into
        the payload.
        """
        received = self._msg_size
        total = received + remaining
        if total < _LARGE_TARGET or (received + take) * _TARGET_SHARE < total:
            return None
        if take == total:
            # The whole payload in this read: one piece, which needs no join.
            return None
        target = self._msg_target = new_payload(total)
        at = 0
        for part in self._msg_parts or ():
            fill_payload(target, at, part, None)
            at += len(part)
        if self._msg_binary:
            fill_payload(target, at, self._msg_binary, None)
        self._msg_parts = None
        self._msg_binary = None
        return target

    def _end_target(self, target: bytes | bytearray) -> None:
        """Deliver the message written into ``target``: in C it is already the bytes."""
        self._msg_target = None
        self._msg_text = None
        if self.message_budget is not None:
            self.message_budget -= 1
        self._queue_event(new_message(target if type(target) is bytes else bytes(target)))

    def _receive_control(self, opcode: int, payload: bytes) -> None:
        if opcode == _OP_PING:
            self._queue_event(Ping(payload))
            # No pong once a close frame arrived (RFC 6455 section 5.5.2);
            # _input_done already stops input then.
            self._send_control(_OP_PONG, payload)
        elif opcode == _OP_PONG:
            self._queue_event(Pong(payload))
        else:
            close = Close.parse(payload)
            self.close_rcvd = close
            self._queue_event(CloseReceived(close))
            if self.state is _OPEN:
                # Echo the close frame, code and reason, as RFC 6455 section
                # 5.5.1 suggests and as peers such as websockets do.
                self._send_control(_OP_CLOSE, payload)
                self.close_sent = close
                self.close_rcvd_then_sent = True
                self.state = _CLOSING
            else:
                self.close_rcvd_then_sent = False
            self._closing_handshake_done()


message_frame: Callable[[Connection, object, bool | None], bytes | None] = (
    Connection.message_frame if speedups is None else speedups.message_frame
)
""":meth:`Connection.message_frame` as a function of the engine, in C when built."""
