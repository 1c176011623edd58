"""Frame-level DEBUG logs, like websockets': ``> TEXT 'hello' [5 bytes]``.

Each frame received is logged as ``< ...`` and each frame sent as ``> ...``,
as it is on the wire (a compressed frame shows its compressed payload),
with long payloads cut to their beginning and end.

It costs nothing while DEBUG is off: a connection asks its logger once,
when it is made, and only then turns its engine into a logging one (same
engine, a subclass that reads a copy of the bytes in and out). Both APIs
share this.
"""

from __future__ import annotations

import codecs
import logging
from typing import Any

from tether.exceptions import PayloadTooBig, ProtocolError, TooManyFragments
from tether.log import LoggerLike
from tether.protocol.close import Close
from tether.protocol.connection import _CONNECTING, Connection
from tether.protocol.frames import Frame, Opcode, parse_frame

__all__ = ["MAX_LOG_SIZE", "FrameLog", "describe_frame", "enable_frame_log"]

MAX_LOG_SIZE = 75
"""The longest a payload's rendering gets in a log line, in characters."""

_ALL_RSV = 0x70
_ASCII_PRINTABLE = frozenset(range(0x20, 0x7F))
_CONTROL = (Opcode.PING, Opcode.PONG)
_TEXT_BY_DEFAULT = {Opcode.TEXT: True, Opcode.BINARY: False, Opcode.CLOSE: True}


def describe_frame(frame: Frame) -> str:
    """Render a frame for a log line: its opcode, its payload, its size.

    Text shows as a quoted string, binary as hexadecimal bytes, a close
    frame as its code and reason; a data frame's payload that is valid UTF-8
    shows as text even in a binary frame, marked ``text``. A payload longer
    than :data:`MAX_LOG_SIZE` characters keeps its beginning and its end.
    """
    data = bytes(frame.data)
    shown, is_text = _render(frame.opcode, data, frame.fin)
    if len(shown) > MAX_LOG_SIZE:
        keep = MAX_LOG_SIZE // 3 - 1
        shown = f"{shown[: 2 * keep]}...{shown[-keep:]}"
    notes = []
    if is_text != _TEXT_BY_DEFAULT.get(frame.opcode):
        notes.append("text" if is_text else "binary")
    notes.append(f"{len(data)} byte{'' if len(data) == 1 else 's'}")
    if not frame.fin:
        notes.append("continued")
    return f"{frame.opcode.name} {shown} [{', '.join(notes)}]"


def _render(opcode: Opcode, data: bytes, fin: bool) -> tuple[str, bool | None]:
    if not data:
        return "''", _TEXT_BY_DEFAULT.get(opcode)
    if opcode is Opcode.CLOSE:
        try:
            return str(Close.parse(data)), True
        except ProtocolError:
            return _hex(data), False
    if opcode in _CONTROL:
        # Random ping payloads are often valid UTF-8 by chance: only ASCII shows as text.
        if _ASCII_PRINTABLE.issuperset(data):
            return repr(data.decode("ascii")), True
        return _hex(data), False
    # Only the ends of a long payload are rendered.
    if len(data) > 4 * MAX_LOG_SIZE:
        head, tail = data[: 8 * MAX_LOG_SIZE // 3], data[-4 * MAX_LOG_SIZE // 3 :]
        text = _utf8(head, clean_start=opcode is not Opcode.CONT, clean_end=False)
        if text is not None and _utf8(tail, clean_start=False, clean_end=fin) is not None:
            return repr(text + tail.decode(errors="replace")), True
        return _hex(head) + " " + _hex(tail), False
    text = _utf8(data, clean_start=opcode is not Opcode.CONT, clean_end=fin)
    if text is not None:
        return repr(text), True
    return _hex(data), False


def _utf8(data: bytes, *, clean_start: bool, clean_end: bool) -> str | None:
    """Decode a piece of a UTF-8 message; ``None`` if it is not one.

    A piece may start inside a character unless ``clean_start`` (up to
    three continuation bytes are skipped) and end inside one unless
    ``clean_end``.
    """
    if not clean_start:
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
            skip += 1
        data = data[skip:]
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=clean_end)
    except UnicodeDecodeError:
        return None


def _hex(data: bytes) -> str:
    return data.hex(" ")


class _Reader:
    """Cut one direction's byte stream into frames, to log them."""

    __slots__ = ("buffer", "expect_mask", "logger", "prefix")

    def __init__(self, logger: LoggerLike, prefix: str, expect_mask: bool) -> None:
        self.logger = logger
        self.prefix = prefix
        self.expect_mask = expect_mask
        self.buffer: bytearray | None = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        buffer = self.buffer
        if buffer is None:
            return
        buffer += data
        pos = 0
        try:
            while True:
                parsed = parse_frame(
                    buffer, pos, expect_mask=self.expect_mask, allowed_rsv=_ALL_RSV
                )
                if parsed is None:
                    break
                frame, size = parsed
                pos += size
                self.logger.debug("%s %s", self.prefix, describe_frame(frame))
        except (ProtocolError, PayloadTooBig, TooManyFragments) as exc:
            # The engine reports what is wrong with the stream: stop logging it.
            self.logger.debug("%s unreadable frame: %s", self.prefix, exc)
            self.buffer = None
            return
        del buffer[:pos]


class FrameLog:
    """The frame readers of one connection, one per direction."""

    __slots__ = ("handshake_sent", "received", "sent")

    def __init__(self, protocol: Connection, logger: LoggerLike) -> None:
        mask = protocol._mask
        self.received = _Reader(logger, "<", expect_mask=not mask)
        self.sent = _Reader(logger, ">", expect_mask=mask)
        # The first bytes a handshaking engine sends are its HTTP request or response.
        self.handshake_sent = protocol.state is not _CONNECTING


class _Logged(Connection):
    """What a logging engine does besides its own work: read a copy of its bytes."""

    __slots__ = ()

    def receive_data(self, data: bytes | bytearray | memoryview) -> bool:
        """Log the frames of ``data``, then feed it to the engine."""
        if self.state is not _CONNECTING and not self._input_done:
            self.frame_log.received.feed(data)
        return super().receive_data(data)

    def data_to_send(self) -> list[bytes]:
        """Take the bytes to write, and log their frames."""
        output = super().data_to_send()
        log = self.frame_log
        for chunk in output:
            if not log.handshake_sent:
                log.handshake_sent = True
                continue
            log.sent.feed(chunk)
        return output


_logged_classes: dict[type[Connection], type[Connection]] = {}


def _logged_class(cls: type[Connection]) -> type[Connection]:
    logged = _logged_classes.get(cls)
    if logged is None:
        # Same layout as cls (no new slots), so that an engine can change class.
        logged = _logged_classes[cls] = type(
            f"Logged{cls.__name__}", (_Logged, cls), {"__slots__": ()}
        )
    return logged


def enable_frame_log(protocol: Connection, logger: Any) -> None:
    """Log ``protocol``'s frames at DEBUG on ``logger`` if it logs DEBUG; else do nothing.

    Called once per connection, when it is made: with DEBUG off, the engine
    stays as it is and logging costs nothing per message.
    """
    if not logger.isEnabledFor(logging.DEBUG) or isinstance(protocol, _Logged):
        return
    protocol.frame_log = FrameLog(protocol, logger)
    protocol.__class__ = _logged_class(type(protocol))
