"""The threading API: blocking :func:`connect` and :func:`serve` on the same engine."""

from tether.sync.auth import basic_auth
from tether.sync.client import ClientConnection, connect, reconnect
from tether.sync.connection import Connection
from tether.sync.router import Router, route
from tether.sync.server import Server, ServerConnection, serve
from tether.sync.topics import Topics

__all__ = [
    "ClientConnection",
    "Connection",
    "Router",
    "Server",
    "ServerConnection",
    "Topics",
    "basic_auth",
    "connect",
    "reconnect",
    "route",
    "serve",
]
