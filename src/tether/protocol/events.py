"""Events the protocol engine emits, as small immutable dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tether.protocol.close import Close

if TYPE_CHECKING:
    from tether.protocol.http11 import Request, Response

__all__ = [
    "CloseReceived",
    "Event",
    "Fragment",
    "Message",
    "Ping",
    "Pong",
    "RequestReceived",
    "ResponseReceived",
]


def _shorten(data: str | bytes) -> str:
    """Show a payload in a repr without printing megabytes into a log."""
    if len(data) <= 64:
        return repr(data)
    unit = "characters" if isinstance(data, str) else "bytes"
    return f"{data[:48]!r}... ({len(data)} {unit})"


@dataclass(frozen=True, slots=True, repr=False)
class Message:
    """A whole message: ``str`` for text, ``bytes`` for binary."""

    data: str | bytes

    def __repr__(self) -> str:
        return f"Message(data={_shorten(self.data)})"


@dataclass(frozen=True, slots=True, repr=False)
class Fragment:
    """A piece of a fragmented message, given when the engine streams messages.

    ``data`` is ``str`` for a text message and ``bytes`` for a binary one;
    text pieces always end on a character boundary. ``first`` marks the first
    piece of a message and ``last`` the final one.
    """

    data: str | bytes
    first: bool
    last: bool

    def __repr__(self) -> str:
        return f"Fragment(data={_shorten(self.data)}, first={self.first}, last={self.last})"


@dataclass(frozen=True, slots=True)
class Ping:
    """A ping arrived; the engine has already queued the pong."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    """A pong arrived."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer sent a close frame; the engine has answered it if it had to."""

    close: Close


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A server engine read the client's opening handshake request."""

    request: Request


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A client engine read the server's opening handshake response."""

    response: Response


Event = Message | Fragment | Ping | Pong | CloseReceived | RequestReceived | ResponseReceived
"""Any event that :meth:`~tether.protocol.connection.Connection.events` returns."""
