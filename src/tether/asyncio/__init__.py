"""The asyncio API: :func:`connect`, :func:`serve` and their connections."""

from tether.asyncio.auth import basic_auth
from tether.asyncio.broadcast import broadcast
from tether.asyncio.client import ClientConnection, connect
from tether.asyncio.connection import Connection
from tether.asyncio.router import Router, route
from tether.asyncio.server import Server, ServerConnection, serve, unix_serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Router",
    "Server",
    "ServerConnection",
    "basic_auth",
    "broadcast",
    "connect",
    "route",
    "serve",
    "unix_serve",
]
