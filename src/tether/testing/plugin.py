"""The pytest fixtures of :mod:`tether.testing`.

They are active in a test suite that asks for them: ``-p tether.testing`` on
the command line, ``pytest_plugins = ["tether.testing"]`` in the top-level
``conftest.py``, or ``tether_fixtures = true`` in pytest's configuration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tether.testing.engines import EnginePair
from tether.testing.servers import LocalServer, start_server, start_sync_server

__all__ = ["tether_client", "tether_engine_pair", "tether_server", "tether_sync_server"]

ServerFactory = Callable[..., LocalServer]
"""What :func:`tether_server` and :func:`tether_sync_server` give: ``start(handler, **options)``."""


def _stop_all(servers: list[LocalServer]) -> None:
    """Stop every server, then fail if a handler raised."""
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        raise AssertionError(
            f"a connection handler raised {len(errors)} exception(s); the first: {errors[0]!r}"
        ) from errors[0]


@pytest.fixture
def tether_server() -> Iterator[ServerFactory]:
    """Start asyncio servers: ``server = tether_server(handler, **options)``.

    Each runs ``handler`` (a coroutine function) on ``127.0.0.1`` and a free
    port, in a thread with its own event loop, and gives a
    :class:`~tether.testing.servers.LocalServer`. They stop after the test,
    and the test fails if a handler raised.
    """
    servers: list[LocalServer] = []

    def start(handler: Callable[..., Awaitable[None]], **options: Any) -> LocalServer:
        server = start_server(handler, **options)
        servers.append(server)
        return server

    yield start
    _stop_all(servers)


@pytest.fixture
def tether_sync_server() -> Iterator[ServerFactory]:
    """Start threading servers: ``server = tether_sync_server(handler, **options)``.

    Like :func:`tether_server`, with a plain function as the handler.
    """
    servers: list[LocalServer] = []

    def start(handler: Callable[..., None], **options: Any) -> LocalServer:
        server = start_sync_server(handler, **options)
        servers.append(server)
        return server

    yield start
    _stop_all(servers)


@pytest.fixture
def tether_client() -> Iterator[Callable[..., Any]]:
    """Connect with the threading client: ``websocket = tether_client(server_or_uri, path)``.

    Takes a :class:`~tether.testing.servers.LocalServer` (and a path) or a
    URI, and the options of :func:`tether.sync.client.connect`. Every
    connection still open after the test is closed.
    """
    from tether.sync.client import connect  # noqa: PLC0415

    connections: list[Any] = []

    def open_connection(target: LocalServer | str, path: str = "/", **options: Any) -> Any:
        uri = target.uri(path) if isinstance(target, LocalServer) else target
        connection = connect(uri, **options)
        connections.append(connection)
        return connection

    yield open_connection
    for connection in connections:
        connection.close()


@pytest.fixture
def tether_engine_pair() -> EnginePair:
    """A client and a server engine after the opening handshake, in memory.

    Build an :class:`~tether.testing.engines.EnginePair` yourself for other
    options.
    """
    return EnginePair()
