"""Routing connections by path: Router and route."""

from __future__ import annotations

import asyncio

import pytest

import tether
from tether.asyncio.auth import basic_auth
from tether.asyncio.router import RouteHandler, Router, route
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, echo, uri_of

TIMEOUT = 5


async def chat(ws: ServerConnection, room: str) -> None:
    await ws.send(f"room {room}")


async def files(ws: ServerConnection, user: str, rest: str) -> None:
    await ws.send(f"{user}: {rest}")


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


ROUTES: dict[str, RouteHandler] = {
    "/": index,
    "/echo": echo,
    "/chat/lobby": index,
    "/chat/{room}": chat,
    "/users/{user}/files/{rest:path}": files,
}


# Matching, without a server


def matched(path: str) -> tuple[str, dict[str, str]] | None:
    found = Router(ROUTES).match(path)
    if found is None:
        return None
    handler, params = found
    return handler.__name__, params


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("index", {})),
        ("/echo", ("echo", {})),
        ("/echo?x=1&y=/chat/z", ("echo", {})),
        ("/chat/lobby", ("index", {})),  # First match wins.
        ("/chat/kitchen", ("chat", {"room": "kitchen"})),
        ("/chat/caf%C3%A9%20au%2Flait", ("chat", {"room": "café au/lait"})),
        ("/users/ann/files/a", ("files", {"user": "ann", "rest": "a"})),
        ("/users/ann/files/a/b/c.txt", ("files", {"user": "ann", "rest": "a/b/c.txt"})),
        ("/users/ann/files/a%2Fb", ("files", {"user": "ann", "rest": "a/b"})),
    ],
)
def test_matches(path: str, expected: tuple[str, dict[str, str]]) -> None:
    assert matched(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/echo/",  # A trailing slash counts.
        "/echo/more",
        "//echo",
        "/chat",
        "/chat/",  # {room} needs a non-empty segment.
        "/chat/a/b",
        "/users/ann/files",
        "/users/ann/files/",  # {rest:path} needs something.
        "/users//files/a",
        "",
        "echo",
        "*",
    ],
)
def test_no_match(path: str) -> None:
    assert matched(path) is None


def test_trailing_slash_pattern() -> None:
    router = Router({"/dir/": index})
    assert router.match("/dir/") is not None
    assert router.match("/dir") is None


def test_literal_is_compared_decoded() -> None:
    assert Router({"/a b": index}).match("/a%20b") is not None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("echo", "start with '/'"),
        ("/chat/room{id}", "fill its segment"),
        ("/chat/{id", "fill its segment"),
        ("/chat/{1st}", "invalid parameter name"),
        ("/chat/{}", "invalid parameter name"),
        ("/a/{x}/b/{x}", "twice"),
        ("/a/{rest:path}/b", "must come last"),
        ("/a/{x:int}", "unknown parameter kind"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router({pattern: index})


def test_routes_are_kept() -> None:
    assert Router(ROUTES).routes == ROUTES


def test_long_hostile_path_is_cheap() -> None:
    # Segment matching cannot backtrack: a long path is one split and a compare.
    router = Router(ROUTES)
    assert router.match("/" + "a/" * 10_000) is None
    found = router.match("/users/u/files/" + "a/" * 10_000 + "z")
    assert found is not None
    assert found[1]["rest"].endswith("a/z")


# Through a server


async def test_route_dispatches() -> None:
    async with route(ROUTES, "127.0.0.1", 0) as server:
        async with tether.connect(uri_of(server, "/chat/kitchen?since=3")) as ws:
            assert await ws.recv() == "room kitchen"
        async with tether.connect(uri_of(server, "/users/ann/files/x/y")) as ws:
            assert await ws.recv() == "ann: x/y"
        async with tether.connect(uri_of(server, "/echo")) as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
        async with tether.connect(uri_of(server, "/")) as ws:
            assert await ws.recv() == "index"


async def test_unknown_path_gets_404_in_the_handshake() -> None:
    async with route(ROUTES, "127.0.0.1", 0) as server:
        for path in ["/missing", "/echo/"]:
            with pytest.raises(InvalidStatus) as caught:
                await tether.connect(uri_of(server, path))
            assert caught.value.response.status_code == 404
        assert server.connections == set()


async def test_await_route() -> None:
    server = await route({"/": index}, "127.0.0.1", 0)
    try:
        async with tether.connect(uri_of(server)) as ws:
            assert await ws.recv() == "index"
    finally:
        server.close()
        await server.wait_closed()


async def test_route_with_basic_auth() -> None:
    auth = basic_auth("r", credentials=("ann", "pw"))
    async with route(ROUTES, "127.0.0.1", 0, process_request=auth) as server:
        with pytest.raises(InvalidStatus) as caught:
            await tether.connect(uri_of(server, "/chat/x"))
        assert caught.value.response.status_code == 401
        # Authentication comes first: a stranger cannot probe for paths.
        with pytest.raises(InvalidStatus) as caught:
            await tether.connect(uri_of(server, "/missing"))
        assert caught.value.response.status_code == 401
        uri = uri_of(server, "/chat/x").replace("ws://", "ws://ann:pw@")
        async with tether.connect(uri) as ws:
            assert await ws.recv() == "room x"
            with pytest.raises(InvalidStatus) as caught:
                await tether.connect(uri.replace("/chat/x", "/missing"))
            assert caught.value.response.status_code == 404


async def test_route_with_sync_process_request() -> None:
    def healthz(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(200, "OK") if request.path == "/healthz" else None

    async with route(ROUTES, "127.0.0.1", 0, process_request=healthz) as server:
        with pytest.raises(InvalidStatus) as caught:
            await tether.connect(uri_of(server, "/healthz"))
        assert caught.value.response.status_code == 200
        async with tether.connect(uri_of(server, "/chat/y")) as ws:
            assert await ws.recv() == "room y"


async def test_router_by_hand(start_server: ServerFactory) -> None:
    class Custom(Router):
        def not_found(self, connection: ServerConnection, request: Request) -> Response:
            return connection.respond(410, "Gone")

    router = Custom(ROUTES)
    server = await start_server(router.handler, process_request=router.process_request)
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri_of(server, "/missing"))
    assert caught.value.response.status_code == 410
    async with tether.connect(uri_of(server, "/chat/z")) as ws:
        assert await ws.recv() == "room z"


async def test_handler_without_process_request(start_server: ServerFactory) -> None:
    # Too late for a 404: the connection is open, so it closes with 1008.
    router = Router(ROUTES)
    server = await start_server(router.handler)
    async with tether.connect(uri_of(server, "/chat/w")) as ws:
        assert await ws.recv() == "room w"
    async with tether.connect(uri_of(server, "/missing")) as ws:
        async with asyncio.timeout(TIMEOUT):
            await ws.wait_closed()
    assert ws.close_code == 1008
    assert ws.close_reason == "no route for this path"
