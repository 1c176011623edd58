"""The trio API: :func:`connect`, :func:`serve` and their connections.

Importing it imports trio (the ``tether[trio]`` extra); ``import tether``
never does.
"""

from tether.trio.auth import basic_auth, digest_auth
from tether.trio.broadcast import broadcast
from tether.trio.client import ClientConnection, connect, process_exception, unix_connect
from tether.trio.connection import Connection, PongWaiter
from tether.trio.router import Router, route
from tether.trio.server import Server, ServerConnection, serve, unix_serve
from tether.trio.topics import Topics

__all__ = [
    "ClientConnection",
    "Connection",
    "PongWaiter",
    "Router",
    "Server",
    "ServerConnection",
    "Topics",
    "basic_auth",
    "broadcast",
    "connect",
    "digest_auth",
    "process_exception",
    "route",
    "serve",
    "unix_connect",
    "unix_serve",
]
