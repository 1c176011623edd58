"""Routing connections by path: Router.match, and awaiting the asyncio route."""

from __future__ import annotations

import pytest

import tether
from tether.asyncio.router import RouteHandler, Router, route
from tether.asyncio.server import ServerConnection

from .conftest import echo, uri_of

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


async def test_await_route() -> None:
    server = await route({"/": index}, "127.0.0.1", 0)
    try:
        async with tether.connect(uri_of(server)) as ws:
            assert await ws.recv() == "index"
    finally:
        server.close()
        await server.wait_closed()
