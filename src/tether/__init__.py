"""tether: a fast, correct WebSocket library with a Sans-I/O core.

Importable from here, as from websockets: the asyncio API (:func:`connect`,
:func:`serve`, ...), the exceptions, the protocol engine's main names
(:class:`Headers`, :class:`Request`, :class:`CloseCode`, :class:`State`,
:class:`ClientProtocol`, ...) and the types of :mod:`tether.typing`. All but
the exceptions load on first use, so that importing tether loads no event
loop; :func:`dir` lists them all.
"""

import importlib as _importlib
import typing as _typing

from tether import exceptions
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
    InvalidMethod,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProtocol,
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
    TooManyFragments,
    TooManyHeaders,
    WebSocketException,
)
from tether.version import __version__

if _typing.TYPE_CHECKING:
    from tether.asyncio.auth import basic_auth, digest_auth
    from tether.asyncio.broadcast import broadcast
    from tether.asyncio.client import ClientConnection, connect, unix_connect
    from tether.asyncio.listener import Listener, listen
    from tether.asyncio.router import Router, route, unix_route
    from tether.asyncio.server import Server, ServerConnection, serve, unix_serve
    from tether.asyncio.topics import Topics
    from tether.protocol import (
        ClientProtocol,
        Close,
        CloseCode,
        Frame,
        Headers,
        HeadersLike,
        MultipleValuesError,
        Opcode,
        Request,
        Response,
        ServerProtocol,
        State,
    )
    from tether.protocol import Connection as Protocol
    from tether.protocol import Role as Side
    from tether.typing import (
        Data,
        ExtensionName,
        ExtensionParameter,
        LoggerLike,
        Origin,
        StatusLike,
        Subprotocol,
    )

_LAZY = {
    "ClientConnection": "tether.asyncio.client",
    "connect": "tether.asyncio.client",
    "unix_connect": "tether.asyncio.client",
    "Listener": "tether.asyncio.listener",
    "listen": "tether.asyncio.listener",
    "Server": "tether.asyncio.server",
    "ServerConnection": "tether.asyncio.server",
    "serve": "tether.asyncio.server",
    "unix_serve": "tether.asyncio.server",
    "basic_auth": "tether.asyncio.auth",
    "digest_auth": "tether.asyncio.auth",
    "broadcast": "tether.asyncio.broadcast",
    "Router": "tether.asyncio.router",
    "route": "tether.asyncio.router",
    "unix_route": "tether.asyncio.router",
    "Topics": "tether.asyncio.topics",
    # The protocol engine's names, under websockets' names where they differ.
    **dict.fromkeys(
        [
            "ClientProtocol",
            "Close",
            "CloseCode",
            "Frame",
            "Headers",
            "HeadersLike",
            "MultipleValuesError",
            "Opcode",
            "Request",
            "Response",
            "ServerProtocol",
            "State",
        ],
        "tether.protocol",
    ),
    "Protocol": "tether.protocol:Connection",
    "Side": "tether.protocol:Role",
    **dict.fromkeys(
        [
            "Data",
            "ExtensionName",
            "ExtensionParameter",
            "LoggerLike",
            "Origin",
            "StatusLike",
            "Subprotocol",
        ],
        "tether.typing",
    ),
}


def __getattr__(name: str) -> _typing.Any:
    """Load the names of the asyncio API, the engine and the types on first use."""
    target = _LAZY.get(name)
    if target is None:
        if name in exceptions._DEPRECATED:
            # websockets' deprecated exception names, with their warning.
            return getattr(exceptions, name)
        raise AttributeError(f"module 'tether' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(_importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, those loaded on first use included."""
    return sorted({*__all__, *(name for name in globals() if not name.startswith("_"))})


__all__ = [
    "ClientConnection",
    "ClientProtocol",
    "Close",
    "CloseCode",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Data",
    "DuplicateParameter",
    "ExtensionName",
    "ExtensionParameter",
    "Frame",
    "HeaderLineTooLong",
    "Headers",
    "HeadersLike",
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
    "Listener",
    "LoggerLike",
    "MultipleValuesError",
    "NegotiationError",
    "Opcode",
    "Origin",
    "PayloadTooBig",
    "Protocol",
    "ProtocolError",
    "ProxyError",
    "Request",
    "RequestLineTooLong",
    "Response",
    "Router",
    "SecurityError",
    "Server",
    "ServerConnection",
    "ServerProtocol",
    "Side",
    "State",
    "StatusLike",
    "StatusLineTooLong",
    "Subprotocol",
    "TooManyFragments",
    "TooManyHeaders",
    "Topics",
    "WebSocketException",
    "__version__",
    "basic_auth",
    "broadcast",
    "connect",
    "digest_auth",
    "listen",
    "route",
    "serve",
    "unix_connect",
    "unix_route",
    "unix_serve",
]
