"""Every exception tether raises, rooted at :class:`WebSocketException`.

The tree::

    WebSocketException
    ├── ConnectionClosed
    │   ├── ConnectionClosedOK
    │   └── ConnectionClosedError
    ├── InvalidURI
    ├── InvalidProxy
    ├── InvalidHandshake
    │   ├── SecurityError
    │   │   ├── RequestLineTooLong
    │   │   ├── StatusLineTooLong
    │   │   ├── HeaderLineTooLong
    │   │   └── TooManyHeaders
    │   ├── ProxyError
    │   │   ├── InvalidProxyMessage
    │   │   └── InvalidProxyStatus
    │   ├── InvalidMessage
    │   ├── InvalidMethod
    │   ├── InvalidProtocol
    │   ├── InvalidStatus
    │   ├── InvalidHeader
    │   │   ├── InvalidHeaderFormat
    │   │   ├── InvalidHeaderValue
    │   │   ├── InvalidOrigin
    │   │   └── InvalidUpgrade
    │   └── NegotiationError
    │       ├── DuplicateParameter
    │       ├── InvalidParameterName
    │       └── InvalidParameterValue
    ├── ProtocolError
    ├── PayloadTooBig
    ├── TooManyFragments
    ├── InvalidState (also an AssertionError)
    └── ConcurrencyError (also a RuntimeError)

The names, bases and constructor arguments are websockets'. Its deprecated
names ``InvalidStatusCode`` (the same class as :class:`InvalidStatus`),
``WebSocketProtocolError`` (:class:`ProtocolError`), ``AbortHandshake`` and
``RedirectHandshake`` are importable too, with a :exc:`DeprecationWarning`.

This module does no I/O: the Sans-I/O core raises these too.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.protocol.close import Close
    from tether.protocol.headers import Headers
    from tether.protocol.http11 import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "HeaderLineTooLong",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidMethod",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidProtocol",
    "InvalidProxy",
    "InvalidProxyMessage",
    "InvalidProxyStatus",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "ProxyError",
    "RequestLineTooLong",
    "SecurityError",
    "StatusLineTooLong",
    "TooManyFragments",
    "TooManyHeaders",
    "WebSocketException",
]


class WebSocketException(Exception):
    """Base class of every exception tether raises.

    Every one survives :mod:`pickle`, so it can cross to another process, as
    from a :mod:`multiprocessing` worker, with its message and attributes.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds an exception by calling its class with
        # ``args``, which rarely match the arguments of a subclass's
        # __init__: restore the attributes instead.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(
    cls: type[WebSocketException], args: tuple[Any, ...], state: dict[str, Any]
) -> WebSocketException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class ConnectionClosed(WebSocketException):
    """The connection is closed; the operation cannot go on.

    ``rcvd`` is the close frame received, ``sent`` the close frame sent, each
    ``None`` when there was none. ``rcvd_then_sent`` says which came first
    when both exist.
    """

    def __init__(
        self,
        rcvd: Close | None,
        sent: Close | None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        # The message is written when asked for: every closed connection
        # makes one of these, and most are never printed.
        super().__init__(rcvd, sent, rcvd_then_sent)
        self.rcvd = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent

    def __str__(self) -> str:
        """Say which close frames were received and sent, in which order."""
        if self.rcvd is None and self.sent is None:
            return "no close frame received or sent"
        if self.rcvd is None:
            return f"sent {self.sent}; no close frame received"
        if self.sent is None:
            return f"received {self.rcvd}; no close frame sent"
        if self.rcvd_then_sent:
            return f"received {self.rcvd}; then sent {self.sent}"
        return f"sent {self.sent}; then received {self.rcvd}"

    @property
    def code(self) -> int:
        """The close code received, or 1006 when no close frame arrived."""
        return 1006 if self.rcvd is None else self.rcvd.code

    @property
    def reason(self) -> str:
        """The close reason received, or an empty string."""
        return "" if self.rcvd is None else self.rcvd.reason


class ConnectionClosedOK(ConnectionClosed):
    """The connection ended normally: close codes 1000 or 1001 on both sides."""


class ConnectionClosedError(ConnectionClosed):
    """The connection ended with an error, or without a closing handshake."""


class InvalidURI(WebSocketException):
    """A URI is not a valid ``ws://`` or ``wss://`` URI."""

    def __init__(self, uri: str, msg: str) -> None:
        self.uri = uri
        self.msg = msg
        super().__init__(f"{uri} isn't a valid URI: {msg}")


class InvalidProxy(WebSocketException):
    """A proxy URI is not one a client can use (scheme, host, path or credentials)."""

    def __init__(self, proxy: str, msg: str) -> None:
        self.proxy = proxy
        self.msg = msg
        super().__init__(f"{proxy} isn't a valid proxy: {msg}")


class InvalidHandshake(WebSocketException):
    """The opening handshake failed."""


class SecurityError(InvalidHandshake):
    """The handshake went past a limit: line length, header count or size.

    The limits are :class:`tether.protocol.http11.Limits`; the subclasses
    below say which line or count was too much.
    """


class RequestLineTooLong(SecurityError):
    """The request line of a handshake request is longer than ``max_line``."""


class StatusLineTooLong(SecurityError):
    """The status line of a handshake (or proxy) response is longer than ``max_line``."""


class HeaderLineTooLong(SecurityError):
    """A header line of a handshake request or response is longer than ``max_line``."""


class TooManyHeaders(SecurityError):
    """A handshake request or response has more than ``max_headers`` header fields."""


class ProxyError(InvalidHandshake):
    """Connecting through a proxy failed: a SOCKS error, or an HTTP proxy's bad answer."""


class InvalidProxyMessage(ProxyError):
    """An HTTP proxy's answer to ``CONNECT`` is malformed, incomplete or too large."""


class InvalidProxyStatus(ProxyError):
    """An HTTP proxy refused ``CONNECT`` with a status other than 2xx.

    ``response`` holds the proxy's answer, without a body.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"proxy rejected connection: HTTP {response.status_code}")


class InvalidMessage(InvalidHandshake):
    """The handshake's HTTP message is malformed or incomplete."""


class InvalidMethod(InvalidHandshake):
    """The request line is well formed but its method is not ``GET``.

    A server answers this with 405 Method Not Allowed and ``Allow: GET``.
    """

    def __init__(self, method: str) -> None:
        self.method = method
        super().__init__(f"unsupported HTTP method {method}; a WebSocket handshake uses GET")


class InvalidProtocol(InvalidHandshake):
    """The request line's HTTP version is not ``HTTP/1.1``.

    A server answers this with 505 HTTP Version Not Supported.
    """

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        super().__init__(f"unsupported HTTP version {protocol}; expected HTTP/1.1")


class InvalidStatus(InvalidHandshake):
    """The server answered the handshake with a status other than 101.

    ``response`` holds the whole response, body included.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"server rejected WebSocket connection: HTTP {response.status_code}")

    @property
    def status_code(self) -> int:
        """Deprecated (websockets' ``InvalidStatusCode``): use ``response.status_code``."""
        _deprecated("InvalidStatus.status_code", "InvalidStatus.response.status_code")
        return self.response.status_code

    @property
    def headers(self) -> Headers:
        """Deprecated (websockets' ``InvalidStatusCode``): use ``response.headers``."""
        _deprecated("InvalidStatus.headers", "InvalidStatus.response.headers")
        return self.response.headers


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, repeated or wrong."""

    def __init__(self, name: str, value: str | None = None) -> None:
        self.name = name
        self.value = value
        if value is None:
            msg = f"missing {name} header"
        elif value == "":
            msg = f"empty {name} header"
        else:
            msg = f"invalid {name} header: {value}"
        super().__init__(msg)


class InvalidHeaderFormat(InvalidHeader):
    """A header value cannot be parsed."""

    def __init__(self, name: str, error: str, header: str, pos: int) -> None:
        self.error = error
        self.pos = pos
        super().__init__(name, f"{error} at {pos} in {header}")


class InvalidHeaderValue(InvalidHeader):
    """A header value parses but is not acceptable."""


class InvalidOrigin(InvalidHeader):
    """The ``Origin`` header is missing or not allowed."""

    def __init__(self, origin: str | None) -> None:
        super().__init__("Origin", origin)


class InvalidUpgrade(InvalidHeader):
    """The ``Upgrade`` or ``Connection`` header does not ask for a WebSocket."""


class NegotiationError(InvalidHandshake):
    """Subprotocol or extension negotiation failed."""


class DuplicateParameter(NegotiationError):
    """An extension parameter appears twice."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"duplicate parameter: {name}")


class InvalidParameterName(NegotiationError):
    """An extension parameter name is unknown."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"invalid parameter name: {name}")


class InvalidParameterValue(NegotiationError):
    """An extension parameter value is not acceptable."""

    def __init__(self, name: str, value: str | None) -> None:
        self.name = name
        self.value = value
        shown = "(no value)" if value is None else repr(value)
        super().__init__(f"invalid value for parameter {name}: {shown}")


class ProtocolError(WebSocketException):
    """The peer broke RFC 6455 or RFC 7692 after the handshake.

    ``code`` is the close code the connection fails with: 1002 for a framing
    error, 1007 for invalid data, 1009 for a message too big, and so on.
    """

    code: int = 1002

    def __init__(self, msg: str, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(msg)


class PayloadTooBig(WebSocketException):
    """A message or frame is larger than the configured limit (close code 1009).

    ``size`` is the size of the frame that went over, when known;
    ``max_size`` the limit; ``current_size`` what the message held before
    that frame, when it was not the first (then ``max_size`` counts it too,
    as :meth:`set_current_size` does). An extension's ``decode`` raises it,
    without ``current_size``, when decoding would go past its limit.
    ``PayloadTooBig(message)``, with a string, is the deprecated spelling.
    """

    code: int = 1009
    """The close code of a connection that fails with this error."""

    def __init__(
        self,
        size_or_message: int | str | None,
        max_size: int | None = None,
        current_size: int | None = None,
    ) -> None:
        self.message: str | None = None
        self.size: int | None = None
        self.max_size: int = 0
        self.current_size: int | None = None
        if isinstance(size_or_message, str):
            _deprecated("PayloadTooBig(message)", "PayloadTooBig(size, max_size)")
            self.message = size_or_message
        else:
            if max_size is None:
                raise TypeError("PayloadTooBig needs max_size")
            self.size = size_or_message
            self.max_size = max_size
            self.set_current_size(current_size)
        super().__init__(size_or_message, max_size, current_size)

    def __str__(self) -> str:
        """Say how big the frame was, after how much, and the limit."""
        if self.message is not None:
            return self.message
        text = "frame "
        if self.size is not None:
            text += f"with {self.size} bytes "
        if self.current_size is not None:
            text += f"after reading {self.current_size} bytes "
        return text + f"exceeds limit of {self.max_size} bytes"

    def set_current_size(self, current_size: int | None) -> None:
        """Record what the message held before the frame; the limit counts it too."""
        if self.current_size is not None:
            raise ValueError("current_size is already set")
        if current_size is not None:
            self.max_size += current_size
            self.current_size = current_size


class TooManyFragments(WebSocketException):
    """A fragmented message arrived in more frames than allowed (close code 1009)."""

    code: int = 1009
    """The close code of a connection that fails with this error."""

    def __init__(self, max_fragments: int) -> None:
        self.max_fragments = max_fragments
        super().__init__(f"fragmented message exceeds limit of {max_fragments} frames")


class InvalidState(WebSocketException, AssertionError):
    """An operation is not allowed in the connection's current state.

    It is an :exc:`AssertionError` too, as in websockets: it signals a bug
    in the code that called the operation.
    """


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two coroutines or threads read or write at once where only one may."""


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


# websockets' deprecated names: loaded on first use, with a warning.
_DEPRECATED = {
    "InvalidStatusCode": "InvalidStatus",
    "WebSocketProtocolError": "ProtocolError",
    "AbortHandshake": "a Response returned by process_request",
    "RedirectHandshake": "InvalidStatus",
}


def __getattr__(name: str) -> Any:
    """Give websockets' deprecated exception names, with a :exc:`DeprecationWarning`."""
    if name not in _DEPRECATED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _deprecated(name, _DEPRECATED[name])
    from tether import legacy  # noqa: PLC0415

    return getattr(legacy, name)
