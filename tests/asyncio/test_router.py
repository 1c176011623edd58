"""The asyncio router: awaiting ``route``; how paths match is tests/test_routing.py's."""

from __future__ import annotations

import tether
from tether.asyncio.router import Router, route
from tether.asyncio.server import ServerConnection

from .conftest import echo, uri_of


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


def test_asyncio_router_matches_as_the_shared_one() -> None:
    # The matching itself is tested once, in tests/test_routing.py.
    router = Router({"/": index, "/chat/{room}": echo})
    assert router.match("/chat/kitchen") == (echo, {"room": "kitchen"})
    assert router.match("/nope") is None


# Through a server


async def test_await_route() -> None:
    server = await route({"/": index}, "127.0.0.1", 0)
    try:
        async with tether.connect(uri_of(server)) as ws:
            assert await ws.recv() == "index"
    finally:
        server.close()
        await server.wait_closed()
