"""The threading API: blocking :func:`connect` and :func:`serve` on the same engine."""

from tether.sync.auth import basic_auth, digest_auth
from tether.sync.broadcast import broadcast
from tether.sync.client import ClientConnection, connect, reconnect, unix_connect, unix_reconnect
from tether.sync.connection import Connection
from tether.sync.router import Router, route, unix_route
from tether.sync.server import Server, ServerConnection, serve, unix_serve
from tether.sync.topics import Topics

__all__ = [
    "ClientConnection",
    "Connection",
    "Router",
    "Server",
    "ServerConnection",
    "Topics",
    "basic_auth",
    "broadcast",
    "connect",
    "digest_auth",
    "reconnect",
    "route",
    "serve",
    "unix_connect",
    "unix_reconnect",
    "unix_route",
    "unix_serve",
]
