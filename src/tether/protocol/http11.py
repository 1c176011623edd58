"""The HTTP/1.1 messages of the opening handshake and their incremental parsers.

:class:`Request` and :class:`Response` build the handshake's bytes.
:class:`RequestParser` (at a server) and :class:`ResponseParser` (at a
client) read them: feed each received chunk to ``receive_data`` and the end
of the stream to ``receive_eof``; once ``result`` is set, ``leftover`` holds
the bytes that came after the message, which belong to the WebSocket stream.

The parsers are strict, bounded and linear. Every line must end with CRLF;
header names must be tokens and values visible ASCII, space, tab or
obs-text (bytes 0x80 to 0xFF, decoded as latin-1 so that they survive a
round trip); obsolete line folding, whitespace before a colon and request
bodies are refused because each is a known request smuggling vector. Each
:class:`Limits` bound is enforced as soon as it is passed, not when a line
ends. Malformed input raises :class:`~tether.exceptions.InvalidMessage`, a
passed limit :class:`~tether.exceptions.SecurityError` or the subclass that
names it (:class:`~tether.exceptions.RequestLineTooLong`,
:class:`~tether.exceptions.StatusLineTooLong`,
:class:`~tether.exceptions.HeaderLineTooLong`,
:class:`~tether.exceptions.TooManyHeaders`). After either, the parser is
broken and must be dropped.

The default limits honour websockets' environment variables, read once at
import: ``WEBSOCKETS_MAX_LINE_LENGTH`` (``max_line``),
``WEBSOCKETS_MAX_NUM_HEADERS`` (``max_headers``) and
``WEBSOCKETS_MAX_BODY_SIZE`` (``max_body``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

from tether.exceptions import (
    HeaderLineTooLong,
    InvalidMessage,
    InvalidMethod,
    InvalidProtocol,
    InvalidState,
    RequestLineTooLong,
    SecurityError,
    StatusLineTooLong,
    TooManyHeaders,
)
from tether.protocol.headers import Headers
from tether.protocol.speedups import speedups

__all__ = [
    "InvalidMethod",
    "Limits",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "limit_from_environment",
]

_TCHAR_BYTES = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE_BYTES = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
_VALUE_CHARS = frozenset(_VALUE_BYTES.decode("latin-1"))
_TARGET_BYTES = bytes(range(0x21, 0x7F))
_HEX_BYTES = b"0123456789abcdefABCDEF"

# Host = uri-host [ ":" port ] (RFC 9112 section 3.2, RFC 3986 section 3.2.2):
# an IP literal in brackets, or a reg-name (an IPv4 address is one too).
_HOST = re.compile(
    r"(?:\[[0-9A-Za-z._~!$&'()*+,;=:%-]+\]|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    r"(?::[0-9]*)?"
)

# The header lines of a head, each with its CRLF, when every one is valid:
# a token, a colon, then field bytes. No two parts can match the same byte,
# so the match never backtracks.
_FIELD_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*")
# Names and values most handshakes carry: connections share these strings
# rather than keeping a copy each. The lower-case names are how uvicorn
# hands a request over.
_SHARED = (
    "Host",
    "Upgrade",
    "Connection",
    "Origin",
    "User-Agent",
    "Server",
    "Date",
    "Content-Length",
    "Content-Type",
    "Cache-Control",
    "Pragma",
    "Accept-Encoding",
    "Accept-Language",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Extensions",
    "Sec-WebSocket-Protocol",
    "host",
    "upgrade",
    "connection",
    "origin",
    "user-agent",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "websocket",
    "13",
    "keep-alive, Upgrade",
    "no-cache",
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12",
)
_COMMON = {text: text for text in _SHARED}
# Status codes whose responses never have a body (RFC 9112 section 6.3).
_NO_BODY_STATUSES = frozenset({204, 304})

# The C readers of a whole head: they accept what the parsers below accept
# and give what they give, or return None for the parsers to read the head.
_read_request_head = None if speedups is None else speedups.read_request_head
_read_response_head = None if speedups is None else speedups.read_response_head


def limit_from_environment(name: str, default: int) -> int:
    """Read a limit from the environment variable ``name``, or return ``default``.

    The value is a decimal integer (underscores allowed, as in ``1_048_576``);
    anything else raises :class:`ValueError` naming the variable.
    """
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None
    if limit < 0:
        raise ValueError(f"{name} must be positive or zero, not {value!r}")
    return limit


_MAX_LINE = limit_from_environment("WEBSOCKETS_MAX_LINE_LENGTH", 8192)
_MAX_HEADERS = limit_from_environment("WEBSOCKETS_MAX_NUM_HEADERS", 128)
_MAX_BODY = limit_from_environment("WEBSOCKETS_MAX_BODY_SIZE", 1 << 20)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on an incoming handshake message, in bytes unless said otherwise.

    ``max_line`` bounds each line without its CRLF; ``max_headers`` the
    number of header fields (trailer fields of a chunked body included);
    ``max_size`` the whole head, from the first byte of the start line to the
    CRLF of the blank line; ``max_body`` the decoded body of a response.
    The defaults of ``max_line``, ``max_headers`` and ``max_body`` are 8192,
    128 and 1 MiB, or websockets' environment variables
    ``WEBSOCKETS_MAX_LINE_LENGTH``, ``WEBSOCKETS_MAX_NUM_HEADERS`` and
    ``WEBSOCKETS_MAX_BODY_SIZE`` when set. Servers and clients take one as
    their ``limits`` option.
    """

    max_line: int = _MAX_LINE
    max_headers: int = _MAX_HEADERS
    max_size: int = 65536
    max_body: int = _MAX_BODY

    def __post_init__(self) -> None:
        for field in fields(self):
            if getattr(self, field.name) < 0:
                raise ValueError(f"{field.name} must be positive or zero")


@dataclass(slots=True)
class Request:
    """The client's opening handshake: ``GET path HTTP/1.1`` and its headers."""

    path: str
    """The request target: the path and query of the URI, like ``/chat?room=1``."""
    headers: Headers

    def serialize(self) -> bytes:
        """Build the request's bytes; raise :class:`ValueError` for an unusable ``path``."""
        if not _is_target(self.path):
            raise ValueError(f"invalid request target: {self.path!r}")
        return f"GET {self.path} HTTP/1.1\r\n".encode("ascii") + self.headers.serialize()


@dataclass(slots=True)
class Response:
    """The server's answer to the opening handshake.

    ``body`` is sent as is: whoever sets it also sets ``Content-Length``.
    """

    status_code: int
    reason_phrase: str
    headers: Headers
    body: bytes = b""

    def serialize(self) -> bytes:
        """Build the response's bytes.

        Raise :class:`ValueError` for a status code outside 100 to 999 or a
        reason phrase with characters HTTP does not allow, such as CR or LF.
        """
        return self._status_line() + self.headers.serialize() + self.body

    def _status_line(self) -> bytes:
        """The checked status line, with its CRLF: what :meth:`serialize` starts with."""
        status_line = _STATUS_LINES.get((self.status_code, self.reason_phrase))
        if status_line is None:
            code = int(self.status_code)
            if not 100 <= code <= 999:
                raise ValueError(f"invalid status code: {code}")
            reason = self.reason_phrase
            if not _VALUE_CHARS.issuperset(reason):
                raise ValueError(f"invalid reason phrase: {reason!r}")
            status_line = f"HTTP/1.1 {code} {reason}\r\n".encode("latin-1")
        return status_line


# The status line every opening handshake sends, checked and built once.
_STATUS_LINES = {(101, "Switching Protocols"): b"HTTP/1.1 101 Switching Protocols\r\n"}


_DEFAULT_LIMITS = Limits()


def _read_request(
    data: bytes | bytearray | memoryview, limits: Limits | None = None
) -> tuple[Request, int] | None:
    """Read a request that ``data`` holds whole, valid and usual, in one call.

    Return the request and the offset of the bytes after it. Return ``None``
    when :class:`RequestParser` must read ``data`` instead: always without
    the C accelerator, and otherwise when the head is incomplete, invalid,
    past a limit, has a target in absolute form or a method other than
    ``GET``. A request returned is the one the parser would give.
    """
    if _read_request_head is None:
        return None
    limits = _DEFAULT_LIMITS if limits is None else limits
    head = _read_request_head(data, limits.max_line, limits.max_headers, limits.max_size, _SHARED)
    if head is None:
        return None
    path, fields, end = head
    return Request(path, Headers._adopt(fields)), end


_T = TypeVar("_T")


class _Parser(Generic[_T]):
    """What both parsers share: buffering, lines, the head and the limits.

    The parser is a state machine: ``_state`` consumes what it can from
    ``_buf`` at ``_pos`` and returns whether the next state should run now,
    or ``False`` to wait for more data.
    """

    _kind: str
    # What a too long start line raises.
    _start_line_too_long: type[SecurityError]

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = _DEFAULT_LIMITS if limits is None else limits
        self.result: _T | None = None
        """The parsed message, once complete; ``None`` until then."""
        self.leftover = b""
        """The bytes received after the message, once complete."""
        self._buf = bytearray()
        self._pos = 0
        # The search for the next LF resumes here, so that data arriving a
        # byte at a time is scanned once rather than once per byte.
        self._scan = 0
        self._in_body = False
        self._eof = False
        self._fields: list[tuple[str, str]] = []
        # Plain functions, called with the parser: a bound method stored on
        # its own instance is a reference cycle, which would leave every
        # parser to the garbage collector rather than freeing it at once.
        self._state: Callable[[Any], bool] = _Parser._read_start_line

    def receive_data(self, data: bytes | bytearray | memoryview) -> _T | None:
        """Parse the next bytes received and return the message once it is complete.

        Raise :class:`~tether.exceptions.InvalidState` when the message is
        already complete or the stream has ended.
        """
        if self.result is not None:
            raise InvalidState(f"the {self._kind} is complete; later bytes are in leftover")
        if self._eof:
            raise InvalidState("data received after the end of the stream")
        if self._in_body and self._pos > len(self._buf) >> 1:
            # Dropping consumed bytes only once they are half the buffer
            # keeps the cost of compaction linear in the bytes received.
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0
        self._buf += data
        while self._state(self):
            pass
        return self.result

    def receive_eof(self) -> None:
        """Note the end of the stream, which may complete the message.

        Raise :class:`~tether.exceptions.InvalidMessage`, with an
        :class:`EOFError` as its cause, when the message is incomplete.
        Do nothing when it is already complete.
        """
        if self.result is not None or self._eof:
            return
        self._eof = True
        self._end_of_stream()

    def _end_of_stream(self) -> None:
        if self._in_body:
            where = f"in the middle of the {self._kind} body"
        elif self._buf:
            where = f"in the middle of the {self._kind} head"
        else:
            where = f"before any {self._kind}"
        raise InvalidMessage(f"connection closed {where}") from EOFError(where)

    def _finish(self, message: _T, end: int) -> bool:
        self.result = message
        self.leftover = bytes(self._buf[end:])
        self._buf = bytearray()
        return False

    def _read_line(
        self, too_long: type[SecurityError] = SecurityError, head: bool = False
    ) -> bytes | None:
        """Consume and return the next line without its CRLF, or ``None`` if incomplete.

        ``too_long`` is what a line over ``max_line`` raises; ``head`` says
        the line belongs to the head, bound by ``max_size``.
        """
        buf = self._buf
        max_line = self.limits.max_line
        lf = buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(buf)
            size = len(buf) - self._pos
            if size and buf[-1] == 0x0D:
                size -= 1  # The CR may start the CRLF that ends the line.
            if size > max_line:
                raise too_long(f"line longer than max_line = {max_line} bytes")
            return None
        end = lf - 1
        if end < self._pos or buf[end] != 0x0D:
            # Bytes that came one at a time met the limits before the LF:
            # check those first, so that how the bytes came can't change the error.
            if lf - self._pos > max_line:
                raise too_long(f"line longer than max_line = {max_line} bytes")
            if head:
                self._check_head_size(lf)
            raise InvalidMessage("line ends with a bare LF instead of CRLF")
        if end - self._pos > max_line:
            raise too_long(f"line longer than max_line = {max_line} bytes")
        line = bytes(buf[self._pos : end])
        self._pos = self._scan = lf + 1
        return line

    def _read_head_line(self, too_long: type[SecurityError]) -> bytes | None:
        line = self._read_line(too_long, head=True)
        # Until the head ends, every byte buffered belongs to it; after a
        # line, only those up to the line's end are known to.
        self._check_head_size(len(self._buf) if line is None else self._pos)
        return line

    def _check_head_size(self, size: int) -> None:
        max_size = self.limits.max_size
        if size > max_size:
            raise SecurityError(f"{self._kind} head larger than max_size = {max_size} bytes")

    def _read_start_line(self) -> bool:
        if self._scan == 0:
            done = self._read_head_in_c()
            if done is not None:
                return done
            fields = self._read_whole_head()
            if fields is not None:
                return self._end_of_head(Headers._adopt(fields))
        line = self._read_head_line(self._start_line_too_long)
        if line is None:
            return False
        self._parse_start_line(line)
        self._state = _Parser._read_header_line
        return True

    def _read_whole_head(self) -> list[tuple[str, str]] | None:
        """Read the head at once when the first bytes received hold all of it.

        That is the usual case, and reading it line by line costs several
        times more. Return the header fields, or ``None``, having consumed
        nothing, when the head is incomplete, breaks a limit or has an invalid
        header line: the line-by-line path then reads it and raises the same
        errors it always would.
        """
        buf = self._buf
        limits = self.limits
        end = buf.find(b"\r\n\r\n", 0, limits.max_size)
        if end < 0 or end + 4 > limits.max_size:
            return None
        first = buf.find(b"\r\n", 0, end + 2)
        if first > limits.max_line or buf.find(b"\n", 0, first) >= 0:
            return None
        block = buf[first + 2 : end + 2]
        if not _FIELD_LINES.fullmatch(block):
            return None
        lines = block.decode("latin-1").split("\r\n")
        lines.pop()  # What follows the last CRLF: nothing.
        if len(lines) > limits.max_headers or max(map(len, lines), default=0) > limits.max_line:
            return None
        self._parse_start_line(bytes(buf[:first]))
        self._pos = self._scan = end + 4
        fields = self._fields
        for line in lines:
            name, _, value = line.partition(":")
            value = value.strip(" \t")
            fields.append((_COMMON.get(name, name), _COMMON.get(value, value)))
        return fields.copy()

    def _read_head_in_c(self) -> bool | None:
        """Read the head with the C accelerator, as ``_end_of_head`` ends it.

        Return ``None``, having consumed nothing, when there is no C
        accelerator or it leaves the head to the Python code.
        """
        raise NotImplementedError

    def _parse_start_line(self, line: bytes) -> None:
        raise NotImplementedError

    def _read_header_line(self) -> bool:
        line = self._read_head_line(HeaderLineTooLong)
        if line is None:
            return False
        if line:
            self._add_field(line)
            return True
        # The fields were checked as they were read; trailer fields of a
        # response go on counting in _fields, but not into its headers.
        return self._end_of_head(Headers._adopt(self._fields.copy()))

    def _end_of_head(self, headers: Headers) -> bool:
        raise NotImplementedError

    def _add_field(self, line: bytes) -> None:
        if line[0] in b" \t":
            raise InvalidMessage("obsolete line folding in a header")
        max_headers = self.limits.max_headers
        if len(self._fields) >= max_headers:
            raise TooManyHeaders(f"more than max_headers = {max_headers} headers")
        name, colon, value = line.partition(b":")
        if not colon:
            raise InvalidMessage(f"header line without a colon: {_show(line)}")
        if not _is_token(name):
            if name and name[-1] in b" \t":
                raise InvalidMessage(f"whitespace between header name and colon: {_show(name)}")
            raise InvalidMessage(f"invalid header name: {_show(name)}")
        value = value.strip(b" \t")
        if value.translate(None, _VALUE_BYTES):
            raise InvalidMessage(f"invalid value for header {name.decode()}: {_show(value)}")
        text = value.decode("latin-1")
        self._fields.append((name.decode("ascii"), _COMMON.get(text, text)))


class RequestParser(_Parser[Request]):
    """Reads a client's opening handshake request.

    The request line must be ``GET request-target HTTP/1.1`` with a target in
    origin form (starting with ``/``, visible ASCII only), or an absolute
    ``http`` or ``https`` URI, which RFC 6455 section 4.2.1 allows and RFC
    9112 section 3.2.2 requires servers to accept: its path and query become
    the request's ``path``, and its authority is dropped. A ``Host`` value must
    be a host and an optional port (RFC 9112 section 3.2). A request with
    ``Transfer-Encoding``, or with ``Content-Length`` other than ``0`` or
    more than once, is refused: a handshake has no body, and a server that
    skipped one would read the body as WebSocket frames. A well-formed
    request with a method other than ``GET`` raises :class:`InvalidMethod`.
    """

    _kind = "request"
    _start_line_too_long = RequestLineTooLong

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._path = ""

    def _read_head_in_c(self) -> bool | None:
        head = _read_request(self._buf, self.limits)
        if head is None:
            return None
        request, end = head
        self._pos = self._scan = end
        return self._finish(request, end)

    def _parse_start_line(self, line: bytes) -> None:
        parts = line.split(b" ")
        if len(parts) != 3:
            raise InvalidMessage(f"invalid request line: {_show(line)}")
        method, target, version = parts
        if not _is_token(method):
            raise InvalidMessage(f"invalid method in request line: {_show(line)}")
        if version != b"HTTP/1.1":
            raise InvalidProtocol(_show(version))
        if target.translate(None, _TARGET_BYTES):
            raise InvalidMessage(f"invalid request target: {_show(target)}")
        if not target.startswith(b"/"):
            target = _origin_form(target)
        if method != b"GET":
            raise InvalidMethod(method.decode("ascii"))
        self._path = target.decode("ascii")

    def _end_of_head(self, headers: Headers) -> bool:
        hosts = []
        lengths = []
        for name, value in headers.raw_items():
            key = name.lower()
            if key == "host":
                hosts.append(value)
            elif key == "content-length":
                lengths.append(value)
            elif key == "transfer-encoding":
                raise InvalidMessage("Transfer-Encoding in a handshake request")
        if len(lengths) > 1:
            raise InvalidMessage("duplicate Content-Length header")
        if lengths and lengths[0] != "0":
            raise InvalidMessage(f"handshake request with a body: Content-Length {lengths[0]}")
        # A missing or repeated Host is the handshake's to refuse; its syntax
        # is HTTP's (RFC 9112 section 3.2).
        for host in hosts:
            if not _HOST.fullmatch(host):
                raise InvalidMessage(f"invalid Host header: {_show(host.encode('latin-1'))}")
        return self._finish(Request(self._path, headers), self._pos)


class ResponseParser(_Parser[Response]):
    """Reads a server's answer to the opening handshake, body included.

    The status line must be ``HTTP/1.1 3DIGIT reason``; the space before an
    empty reason may be left out. Interim responses (1xx but 101) are read
    and dropped, their heads counted in ``max_size``. A 101, 204 or 304 has
    no body: whatever follows its head is left over. Other
    responses have a body read per ``Content-Length``, per chunked
    ``Transfer-Encoding`` (trailer fields are checked, then dropped) or else
    until the end of the stream, which only ``receive_eof()`` can tell.
    Both headers at once, duplicate ``Content-Length`` and any transfer
    coding but ``chunked`` are refused.
    """

    _kind = "response"
    _start_line_too_long = StatusLineTooLong

    def __init__(self, limits: Limits | None = None, *, proxy: bool = False) -> None:
        super().__init__(limits)
        self.proxy = proxy
        """Whether this reads an HTTP proxy's answer to ``CONNECT``.

        Such an answer may be ``HTTP/1.0`` too, and has no body whatever its
        status: the head ends it, and the tunnel's bytes follow (RFC 9110
        section 9.3.6).
        """
        self._status_code = 0
        self._reason = ""
        self._headers = Headers()
        self._body = bytearray()
        self._remaining = 0

    def _read_head_in_c(self) -> bool | None:
        if _read_response_head is None:
            return None
        limits = self.limits
        head = _read_response_head(
            self._buf, limits.max_line, limits.max_headers, limits.max_size, _SHARED, self.proxy
        )
        if head is None:
            return None
        self._status_code, self._reason, fields, end = head
        self._pos = self._scan = end
        # As when read line by line: trailer fields go on counting in _fields.
        self._fields = fields
        return self._end_of_head(Headers._adopt(fields.copy()))

    def _parse_start_line(self, line: bytes) -> None:
        version, _, rest = line.partition(b" ")
        if version != b"HTTP/1.1" and not (self.proxy and version == b"HTTP/1.0"):
            raise InvalidMessage(f"unsupported HTTP version {_show(version)}; expected HTTP/1.1")
        code, reason = rest[:3], rest[3:]
        if len(code) != 3 or not code.isdigit() or code[0] == 0x30:
            raise InvalidMessage(f"invalid status code in status line: {_show(line)}")
        if reason:
            if reason[0] != 0x20:
                raise InvalidMessage(f"invalid status code in status line: {_show(line)}")
            reason = reason[1:]
        if reason.translate(None, _VALUE_BYTES):
            raise InvalidMessage(f"invalid reason phrase: {_show(reason)}")
        self._status_code = int(code)
        self._reason = reason.decode("latin-1")

    def _end_of_head(self, headers: Headers) -> bool:
        code = self._status_code
        if code < 200 and code != 101:
            # An interim response, such as 100 Continue or 103 Early Hints:
            # RFC 9110 section 15.2 has clients read past it to the final
            # one. Its bytes count towards max_size, which bounds how many.
            self._fields = []
            self._state = _Parser._read_start_line
            return True
        self._headers = headers
        if code < 200 or code in _NO_BODY_STATUSES or self.proxy:
            return self._finish_response(b"", self._pos)
        self._in_body = True
        codings = headers.get_all("Transfer-Encoding")
        lengths = headers.get_all("Content-Length")
        if codings:
            if lengths:
                raise InvalidMessage("both Transfer-Encoding and Content-Length in a response")
            names = [name.strip(" \t").lower() for name in ",".join(codings).split(",")]
            if [name for name in names if name] != ["chunked"]:
                raise InvalidMessage(f"unsupported Transfer-Encoding: {', '.join(codings)}")
            self._state = ResponseParser._read_chunk_size
        elif lengths:
            if len(lengths) > 1:
                raise InvalidMessage("duplicate Content-Length header")
            self._remaining = self._parse_content_length(lengths[0])
            self._state = ResponseParser._read_fixed_body
        else:
            self._state = ResponseParser._read_body_until_eof
        return True

    def _finish_response(self, body: bytes, end: int) -> bool:
        response = Response(self._status_code, self._reason, self._headers, body)
        return self._finish(response, end)

    def _check_body_size(self, size: int) -> None:
        max_body = self.limits.max_body
        if size > max_body:
            raise SecurityError(f"response body larger than max_body = {max_body} bytes")

    def _parse_content_length(self, value: str) -> int:
        if not value.isascii() or not value.isdigit():
            raise InvalidMessage(f"invalid Content-Length: {value}")
        digits = value.lstrip("0")
        # Longer numbers are past any sane max_body; checking the length
        # first keeps int() from parsing thousands of digits.
        if len(digits) > 18:
            self._check_body_size(self.limits.max_body + 1)
        length = int(digits or "0")
        self._check_body_size(length)
        return length

    def _read_fixed_body(self) -> bool:
        end = self._pos + self._remaining
        if len(self._buf) < end:
            return False
        return self._finish_response(bytes(self._buf[self._pos : end]), end)

    def _read_body_until_eof(self) -> bool:
        self._check_body_size(len(self._buf) - self._pos)
        return False

    def _read_chunk_size(self) -> bool:
        line = self._read_line()
        if line is None:
            return False
        size, semicolon, extension = line.partition(b";")
        if semicolon:
            size = size.rstrip(b" \t")
        if not size or size.translate(None, _HEX_BYTES):
            raise InvalidMessage(f"invalid chunk size: {_show(line)}")
        if extension.translate(None, _VALUE_BYTES):
            raise InvalidMessage(f"invalid chunk extension: {_show(line)}")
        digits = size.lstrip(b"0")
        if len(digits) > 15:
            self._check_body_size(self.limits.max_body + 1)
        self._remaining = int(digits or b"0", 16)
        self._check_body_size(len(self._body) + self._remaining)
        self._state = (
            ResponseParser._read_chunk_data if self._remaining else ResponseParser._read_trailer
        )
        return True

    def _read_chunk_data(self) -> bool:
        end = self._pos + self._remaining
        if len(self._buf) < end + 2:
            return False
        if self._buf[end : end + 2] != b"\r\n":
            raise InvalidMessage("chunk data not followed by CRLF")
        self._body += self._buf[self._pos : end]
        self._pos = self._scan = end + 2
        self._state = ResponseParser._read_chunk_size
        return True

    def _read_trailer(self) -> bool:
        line = self._read_line(HeaderLineTooLong)
        if line is None:
            return False
        if line:
            self._add_field(line)
            return True
        return self._finish_response(bytes(self._body), self._pos)

    def _end_of_stream(self) -> None:
        if self._state is ResponseParser._read_body_until_eof:
            self._finish_response(bytes(self._buf[self._pos :]), len(self._buf))
            return
        super()._end_of_stream()


def _is_token(data: bytes) -> bool:
    return bool(data) and not data.translate(None, _TCHAR_BYTES)


def _origin_form(target: bytes) -> bytes:
    """The path and query of an absolute ``http`` or ``https`` target, ``/`` for none.

    Raise :class:`~tether.exceptions.InvalidMessage` for any other target,
    an empty host or user info (RFC 9110 sections 4.2.1 and 4.2.4).
    """
    scheme, separator, rest = target.partition(b"://")
    end = len(rest)
    for stop in b"/?":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    authority, path = rest[:end], rest[end:]
    if (
        not separator
        or scheme.lower() not in (b"http", b"https")
        or not authority
        or b"@" in authority
        or b"#" in authority
    ):
        raise InvalidMessage(f"invalid request target: {_show(target)}")
    return path if path.startswith(b"/") else b"/" + path


def _is_target(path: str) -> bool:
    return path.startswith("/") and path.isascii() and path.isprintable() and " " not in path


def _show(data: bytes) -> str:
    """Render untrusted bytes for an error message, cut short if long."""
    text = repr(data[:80])
    return text + "..." if len(data) > 80 else text
