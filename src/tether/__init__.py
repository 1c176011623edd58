"""tether: a fast, correct WebSocket library with a Sans-I/O core.

The asyncio API (:func:`connect`, :func:`serve`) and the exceptions are
importable from here; the protocol engine lives in :mod:`tether.protocol`.
The asyncio names load on first use, so that importing the engine alone
loads no event loop.
"""

from typing import TYPE_CHECKING, Any

from tether.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    RequestLineTooLong,
    SecurityError,
    StatusLineTooLong,
    TooManyHeaders,
    WebSocketException,
)
from tether.version import __version__

if TYPE_CHECKING:
    from tether.asyncio.auth import basic_auth, digest_auth
    from tether.asyncio.broadcast import broadcast
    from tether.asyncio.client import ClientConnection, connect, unix_connect
    from tether.asyncio.router import Router, route
    from tether.asyncio.server import Server, ServerConnection, serve, unix_serve
    from tether.asyncio.topics import Topics

_LAZY = {
    "ClientConnection": "tether.asyncio.client",
    "connect": "tether.asyncio.client",
    "unix_connect": "tether.asyncio.client",
    "Server": "tether.asyncio.server",
    "ServerConnection": "tether.asyncio.server",
    "serve": "tether.asyncio.server",
    "unix_serve": "tether.asyncio.server",
    "basic_auth": "tether.asyncio.auth",
    "digest_auth": "tether.asyncio.auth",
    "broadcast": "tether.asyncio.broadcast",
    "Router": "tether.asyncio.router",
    "route": "tether.asyncio.router",
    "Topics": "tether.asyncio.topics",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ClientConnection",
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
    "InvalidOrigin",
    "InvalidParameterName",
    "InvalidParameterValue",
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
    "Router",
    "SecurityError",
    "Server",
    "ServerConnection",
    "StatusLineTooLong",
    "TooManyHeaders",
    "Topics",
    "WebSocketException",
    "__version__",
    "basic_auth",
    "broadcast",
    "connect",
    "digest_auth",
    "route",
    "serve",
    "unix_connect",
    "unix_serve",
]
