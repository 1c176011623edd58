"""Fixtures of the asyncio tests: every test runs on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

import tether
from tether.asyncio.server import Server, ServerConnection

from .pairs import SIDES, Pair, ServerFactory, Side, open_pair, uri_of

__all__ = ["ServerFactory", "echo", "raw_tcp_server", "uri_of"]


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each asyncio test once per event loop implementation."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


async def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    async for message in ws:
        await ws.send(message)


@pytest.fixture
async def echo_server() -> AsyncIterator[Server]:
    """An echo server on 127.0.0.1 and a free port."""
    async with tether.serve(echo, "127.0.0.1", 0) as server:
        yield server


Handler = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def start_server() -> AsyncIterator[ServerFactory]:
    """Start servers with any handler and options; all are closed after the test."""
    servers: list[Server] = []

    async def start(
        handler: Callable[[ServerConnection], Awaitable[None]] = echo, **kwargs: Any
    ) -> Server:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 0)
        server = await tether.serve(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def raw_tcp_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server on loopback; yield its port.

    On exit, wait for the handlers to finish: one still running when the loop
    closes would leave its stream behind.
    """
    handlers: list[asyncio.Task[None]] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.append(task)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        async with asyncio.timeout(10):
            await asyncio.gather(*handlers, return_exceptions=True)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> Side:
    """Which end of the connection is under test: each test using it runs for both."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def implementation() -> str:
    """Which implementation of a connection method the pairs use: here the class's own.

    A module that runs its tests with the accelerator's method and with the
    Python one overrides this fixture with :func:`.pairs.method_fixture`;
    ``pair`` and ``stalled`` then open their connections once with each.
    """
    return "default"


@pytest.fixture
async def pair(implementation: str, start_server: ServerFactory, side: Side) -> AsyncIterator[Pair]:
    """A connected pair with default options."""
    async with open_pair(start_server, side) as connected:
        yield connected


@pytest.fixture
async def stalled(
    implementation: str, start_server: ServerFactory, side: Side
) -> AsyncIterator[Pair]:
    """A pair whose ``theirs`` reads nothing beyond one waiting message.

    ``ours`` has a ``write_limit`` of 16 KiB and no compression, so a few
    :data:`.flow.CHUNK` messages fill its write buffer.
    """
    async with open_pair(
        start_server,
        side,
        both={"compression": None},
        ours={"write_limit": 16 * 1024},
        theirs={"max_queue": 1},
    ) as connected:
        yield connected
