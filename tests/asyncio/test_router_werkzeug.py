"""route() with a werkzeug Map, as websockets' route() takes it; unix_route."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug.routing import Map, Rule

import tether
from tether.asyncio.router import Router, route, unix_route
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response

from .conftest import uri_of


async def channel(ws: ServerConnection, channel_id: uuid.UUID) -> None:
    await ws.send(f"channel {channel_id.hex} {type(channel_id).__name__}")


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


async def redirect_of(uri: str) -> Response:
    """The redirect a server answers ``uri`` with.

    The client follows redirects; given a socket of its own, it follows none
    and says why, with the server's answer as the cause.
    """
    host, _, port = uri.split("/")[2].partition(":")
    sock = socket.create_connection((host, int(port)))
    with pytest.raises(ValueError, match="preexisting socket") as info:
        await tether.connect(uri, sock=sock)
    cause = info.value.__cause__
    assert isinstance(cause, InvalidStatus)
    return cause.response


def url_map() -> Map:
    return Map(
        [
            Rule("/", endpoint=index),
            Rule("/channel/<uuid:channel_id>", endpoint=channel),
            Rule("/old", redirect_to="/"),
            Rule("/dir/", endpoint=index),
        ]
    )


async def test_map_dispatches_with_converted_values() -> None:
    channel_id = uuid.uuid4()
    async with route(url_map(), "127.0.0.1", 0) as server:
        async with tether.connect(uri_of(server, f"/channel/{channel_id}")) as ws:
            assert await ws.recv() == f"channel {channel_id.hex} UUID"
        async with tether.connect(uri_of(server, "/?query=ignored")) as ws:
            assert await ws.recv() == "index"
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(uri_of(server, "/channel/not-a-uuid"))
        assert info.value.response.status_code == 404


@pytest.mark.parametrize(
    ("options", "location"),
    [
        ({}, "ws://{host}/"),
        ({"server_name": "chat.example"}, "ws://chat.example/"),
        ({"server_name": "chat.example", "ssl": True}, "wss://chat.example/"),
    ],
)
async def test_map_redirects(options: dict[str, Any], location: str) -> None:
    async with route(url_map(), "127.0.0.1", 0, **options) as server:
        host = uri_of(server).split("/")[2]
        response = await redirect_of(uri_of(server, "/old"))
        assert response.status_code == 302
        assert response.headers["Location"] == location.format(host=host)


async def test_map_strict_slashes_redirect() -> None:
    async with route(url_map(), "127.0.0.1", 0, server_name="h") as server:
        response = await redirect_of(uri_of(server, "/dir"))
        assert response.headers["Location"] == "ws://h/dir/"


async def test_create_router_and_process_request() -> None:
    made: list[tuple[str | None, str]] = []

    class Custom(Router):
        def __init__(self, routes: Any, server_name: str | None, url_scheme: str) -> None:
            made.append((server_name, url_scheme))
            super().__init__(routes, server_name, url_scheme)

        def not_found(self, connection: ServerConnection, request: Request) -> Response:
            return connection.respond(410, "Gone")

    def first(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(403, "No") if request.path == "/" else None

    async with route(
        url_map(), "127.0.0.1", 0, create_router=Custom, process_request=first, server_name="s"
    ) as server:
        for path, status in [("/", 403), ("/nowhere", 410)]:
            with pytest.raises(InvalidStatus) as info:
                await tether.connect(uri_of(server, path))
            assert info.value.response.status_code == status
    assert made == [("s", "ws")]


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
