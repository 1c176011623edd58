"""A closed connection is freed by reference counting, with no help from the garbage collector.

A reference cycle through a connection would leave every closed connection,
with its buffers, headers and parser, to the cyclic garbage collector: more
memory held between collections, and collections that take longer as a
server accepts more connections.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal

import pytest

import tether
from tether.asyncio.server import ServerConnection

from .conftest import ServerFactory, uri_of


async def freed(*refs: weakref.ref[Any]) -> bool:
    """Whether every referent goes away, waiting a bounded time for callbacks to run."""
    for _ in range(200):
        if all(ref() is None for ref in refs):
            return True
        await asyncio.sleep(0.005)
    return False


@pytest.mark.parametrize("compression", ["deflate", None])
async def test_closed_connections_are_freed(
    no_gc: None, start_server: ServerFactory, compression: Literal["deflate"] | None
) -> None:
    server_sides: list[weakref.ref[Any]] = []

    async def handler(ws: ServerConnection) -> None:
        server_sides.append(weakref.ref(ws))
        async for message in ws:
            await ws.send(message)

    server = await start_server(handler, compression=compression)
    client = await tether.connect(uri_of(server), compression=compression)
    await client.send("hello")
    assert await client.recv() == "hello"
    await (await client.ping())
    # A handler ended by recv() raising ConnectionClosed frees as well.
    await client.close()
    client_ref = weakref.ref(client)
    del client
    assert await freed(client_ref, *server_sides)
    assert len(server_sides) == 1


async def test_connection_closed_by_the_server_is_freed(
    no_gc: None, start_server: ServerFactory
) -> None:
    server_sides: list[weakref.ref[Any]] = []

    async def handler(ws: ServerConnection) -> None:
        server_sides.append(weakref.ref(ws))
        await ws.close(1001, "bye")

    server = await start_server(handler)
    client = await tether.connect(uri_of(server))
    with pytest.raises(tether.ConnectionClosedOK):
        await client.recv()
    client_ref = weakref.ref(client)
    del client
    assert await freed(client_ref, *server_sides)
