"""The Sans-I/O protocol core of tether: bytes in, events and bytes out.

Nothing here does I/O: no sockets, threads or event loops. The asyncio and
threading APIs drive these engines.
"""

from tether.protocol.client import ClientProtocol
from tether.protocol.close import Close, CloseCode
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import (
    CloseReceived,
    Event,
    Fragment,
    Message,
    Ping,
    Pong,
    RequestReceived,
    ResponseReceived,
)
from tether.protocol.frames import Frame, Opcode
from tether.protocol.headers import Headers, HeadersLike, MultipleValuesError
from tether.protocol.http11 import Limits, Request, Response
from tether.protocol.server import ServerProtocol
from tether.protocol.uri import WebSocketURI, parse_uri

__all__ = [
    "ClientProtocol",
    "Close",
    "CloseCode",
    "CloseReceived",
    "Connection",
    "Event",
    "Fragment",
    "Frame",
    "Headers",
    "HeadersLike",
    "Limits",
    "Message",
    "MultipleValuesError",
    "Opcode",
    "Ping",
    "Pong",
    "Request",
    "RequestReceived",
    "Response",
    "ResponseReceived",
    "Role",
    "ServerProtocol",
    "State",
    "WebSocketURI",
    "parse_uri",
]
