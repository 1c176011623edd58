"""The asyncio unix_route, and Router.match with a werkzeug Map (a Map through a server, on every
API: tests/behaviour/test_routing.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

from werkzeug.routing import Map, Rule

import tether
from tether.asyncio.router import Router, unix_route
from tether.asyncio.server import ServerConnection


async def channel(ws: ServerConnection, channel_id: uuid.UUID) -> None:
    await ws.send(f"channel {channel_id.hex} {type(channel_id).__name__}")


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


def url_map() -> Map:
    return Map(
        [
            Rule("/", endpoint=index),
            Rule("/channel/<uuid:channel_id>", endpoint=channel),
            Rule("/old", redirect_to="/"),
            Rule("/dir/", endpoint=index),
        ]
    )


async def test_unix_route(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")
    routes = {"/room/{name}": lambda ws, name: ws.send(name)}
    async with unix_route(routes, path), tether.unix_connect(path, "ws://localhost/room/b") as ws:
        assert await ws.recv() == "b"
    async with unix_route(url_map(), path), tether.unix_connect(path) as ws:
        assert await ws.recv() == "index"


def test_router_match_with_a_map() -> None:
    router = Router(url_map())
    found = router.match("/")
    assert found is not None
    assert found[0] is index
    # A redirect is no match for match(): route_request answers it.
    assert router.match("/old") is None
    assert router.match("/missing") is None
    assert all(rule.websocket for rule in router.url_map.iter_rules())  # type: ignore[union-attr]
