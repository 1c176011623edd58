"""The threading API: blocking :func:`connect` and :func:`serve` on the same engine."""

from tether.sync.client import ClientConnection, connect, reconnect
from tether.sync.connection import Connection
from tether.sync.server import Server, ServerConnection, serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Server",
    "ServerConnection",
    "connect",
    "reconnect",
    "serve",
]
