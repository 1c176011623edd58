"""Helpers of the trio tests: each test is an async body run by :func:`trio.run`.

pytest-asyncio (auto mode) runs coroutine test functions on asyncio; the
trio tests are plain functions made by :func:`trio_test`, so that it leaves
them alone.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, ParamSpec

import trio

import tether.trio
from tether.trio import Server, ServerConnection

__all__ = ["TIMEOUT", "echo", "hold", "serving", "trio_test", "uri_of"]

P = ParamSpec("P")

TIMEOUT = 10.0
"""How long a test may take before it fails."""


def trio_test(function: Callable[P, Awaitable[None]]) -> Callable[P, None]:
    """Make an async test function a plain one that runs it with :func:`trio.run`."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        async def main() -> None:
            with trio.fail_after(TIMEOUT):
                await function(*args, **kwargs)

        trio.run(main)

    return run


async def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    async for message in ws:
        await ws.send(message)


async def hold(ws: ServerConnection) -> None:
    """Keep the connection until it closes."""
    await ws.wait_closed()


def uri_of(server: Server, path: str = "/", scheme: str = "ws") -> str:
    """The URI of a server listening on loopback."""
    host, port = server.sockets[0].getsockname()[:2]
    return f"{scheme}://{host}:{port}{path}"


@asynccontextmanager
async def serving(
    handler: Callable[[ServerConnection], Awaitable[None]] = echo, **options: Any
) -> AsyncIterator[Server]:
    """A server on 127.0.0.1 and a free port, in a nursery of its own; closed on exit."""
    options.setdefault("host", "127.0.0.1")
    async with trio.open_nursery() as nursery:
        server: Server = await nursery.start(
            functools.partial(tether.trio.serve, handler, 0, **options)
        )
        async with server:
            yield server
