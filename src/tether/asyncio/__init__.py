"""The asyncio API: :func:`connect`, :func:`serve` and their connections."""

from tether.asyncio.client import ClientConnection, connect
from tether.asyncio.connection import Connection
from tether.asyncio.server import Server, ServerConnection, serve

__all__ = ["ClientConnection", "Connection", "Server", "ServerConnection", "connect", "serve"]
