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


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each asyncio test once per event loop implementation."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


async def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    async for message in ws:
        await ws.send(message)


def uri_of(server: Server, path: str = "/") -> str:
    """The ws:// URI of a server listening on loopback."""
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"ws://{host}:{port}{path}"


@pytest.fixture
async def echo_server() -> AsyncIterator[Server]:
    """An echo server on 127.0.0.1 and a free port."""
    async with tether.serve(echo, "127.0.0.1", 0) as server:
        yield server


ServerFactory = Callable[..., Awaitable[Server]]
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
