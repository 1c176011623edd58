"""tether.trio.route with a werkzeug Map."""

from __future__ import annotations

import functools
import uuid

import pytest
import trio
from werkzeug.routing import Map, Rule

import tether.trio
from tether.exceptions import InvalidStatus
from tether.trio import ServerConnection
from tether.trio.router import route

from .conftest import trio_test, uri_of


async def tell_address(ws: ServerConnection) -> None:
    host, port = ws.remote_address[:2]
    await ws.send(f"{host} {port}")


async def ask(uri: str, **options: object) -> str:
    async with tether.trio.connect(uri, proxy=None, **options) as ws:  # type: ignore[arg-type]
        answer = await ws.recv()
        assert isinstance(answer, str)
        return answer


async def channel(ws: ServerConnection, channel_id: uuid.UUID) -> None:
    await ws.send(f"channel {channel_id.hex} {type(channel_id).__name__}")


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


@trio_test
async def test_route_with_a_werkzeug_map() -> None:
    url_map = Map(
        [
            Rule("/", endpoint=index),
            Rule("/channel/<uuid:channel_id>", endpoint=channel),
            Rule("/old", redirect_to="/"),
        ]
    )
    channel_id = uuid.uuid4()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(route, url_map, 0, host="127.0.0.1"))
        async with server:
            assert await ask(uri_of(server, f"/channel/{channel_id}")) == (
                f"channel {channel_id.hex} UUID"
            )
            # The rule's redirect, followed by the client.
            assert await ask(uri_of(server, "/old")) == "index"
            with pytest.raises(InvalidStatus, match="404"):
                await ask(uri_of(server, "/nowhere"))
