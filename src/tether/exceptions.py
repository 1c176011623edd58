"""Every exception tether raises, rooted at :class:`WebSocketException`.

The tree::

    WebSocketException
    ├── ConnectionClosed
    │   ├── ConnectionClosedOK
    │   └── ConnectionClosedError
    ├── InvalidURI
    ├── InvalidHandshake
    │   ├── SecurityError
    │   ├── InvalidMessage
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
    │   └── PayloadTooBig
    ├── InvalidState
    └── ConcurrencyError

This module does no I/O: the Sans-I/O core raises these too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tether.protocol.close import Close
    from tether.protocol.http11 import Response

__all__ = [
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "DuplicateParameter",
    "InvalidHandshake",
    "InvalidHeader",
    "InvalidHeaderFormat",
    "InvalidHeaderValue",
    "InvalidMessage",
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
    "InvalidState",
    "InvalidStatus",
    "InvalidURI",
    "InvalidUpgrade",
    "NegotiationError",
    "PayloadTooBig",
    "ProtocolError",
    "SecurityError",
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


class InvalidHandshake(WebSocketException):
    """The opening handshake failed."""


class SecurityError(InvalidHandshake):
    """The handshake went past a limit: line length, header count or size."""


class InvalidMessage(InvalidHandshake):
    """The handshake's HTTP message is malformed or incomplete."""


class InvalidStatus(InvalidHandshake):
    """The server answered the handshake with a status other than 101.

    ``response`` holds the whole response, body included.
    """

    def __init__(self, response: Response) -> None:
        self.response = response
        super().__init__(f"server rejected WebSocket connection: HTTP {response.status_code}")


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


class PayloadTooBig(ProtocolError):
    """A message or frame is larger than the configured limit (close code 1009)."""

    code = 1009


class InvalidState(WebSocketException):
    """An operation is not allowed in the connection's current state."""


class ConcurrencyError(WebSocketException, RuntimeError):
    """Two coroutines or threads read or write at once where only one may."""
