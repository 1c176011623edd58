"""What the handshake and the closing handshake tell, read the same way in both APIs."""

from __future__ import annotations

import warnings

from tether.protocol.client import ClientProtocol
from tether.protocol.connection import State
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response
from tether.protocol.server import ServerProtocol

__all__ = ["ConnectionAttributes"]


class ConnectionAttributes:
    """The read-only attributes of a connection, taken from its protocol engine.

    The asyncio and threading connections both inherit them.
    """

    protocol: ClientProtocol | ServerProtocol

    @property
    def state(self) -> State:
        """The connection's state: CONNECTING, OPEN, CLOSING or CLOSED."""
        return self.protocol.state

    @property
    def request(self) -> Request | None:
        """The opening handshake request."""
        return self.protocol.request

    @property
    def response(self) -> Response | None:
        """The opening handshake response."""
        return self.protocol.response

    @property
    def request_headers(self) -> Headers:
        """The headers of the opening handshake request."""
        assert self.protocol.request is not None, "no request yet"
        return self.protocol.request.headers

    @property
    def response_headers(self) -> Headers:
        """The headers of the opening handshake response."""
        assert self.protocol.response is not None, "no response yet"
        return self.protocol.response.headers

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the handshake agreed on, if any."""
        return self.protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code received; 1006 when the connection closed without one; else ``None``."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason received, once the connection is closed."""
        return self.protocol.close_reason

    # websockets' legacy spellings.

    @property
    def open(self) -> bool:
        """Deprecated: whether the connection is open; use ``state is State.OPEN``."""
        _deprecated("connection.open", "connection.state is State.OPEN")
        return self.protocol.state is State.OPEN

    @property
    def closed(self) -> bool:
        """Deprecated: whether the connection is closed; use ``state is State.CLOSED``."""
        _deprecated("connection.closed", "connection.state is State.CLOSED")
        return self.protocol.state is State.CLOSED

    @property
    def path(self) -> str:
        """Deprecated: the request's path, query included; use ``request.path``."""
        _deprecated("connection.path", "connection.request.path")
        assert self.protocol.request is not None, "no request yet"
        return self.protocol.request.path


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)
