"""The asyncio API: :func:`connect`, :func:`serve` and their connections.

``broadcast``, ``route`` and ``basic_auth`` live in the modules of those
names and are importable from :mod:`tether`.
"""

from tether.asyncio.client import ClientConnection, connect, unix_connect
from tether.asyncio.connection import Connection
from tether.asyncio.listener import Listener, listen
from tether.asyncio.server import Server, ServerConnection, serve, unix_serve

__all__ = [
    "ClientConnection",
    "Connection",
    "Listener",
    "Server",
    "ServerConnection",
    "connect",
    "listen",
    "serve",
    "unix_connect",
    "unix_serve",
]
