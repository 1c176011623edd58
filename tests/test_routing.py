"""Dispatching by request path, shared by both APIs: tether.routing."""

from __future__ import annotations

import gc

import pytest

from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response
from tether.protocol.server import ServerProtocol
from tether.routing import BaseRouter, Pattern

ROUTES = {
    "/": "index",
    "/echo": "echo",
    "/chat/lobby": "lobby",
    "/chat/{room}": "chat",
    "/users/{user}/files/{rest:path}": "files",
}


class FakeConnection:
    """Just what BaseRouter uses of a server connection."""

    def __init__(self, path: str | None = None) -> None:
        self.protocol = ServerProtocol()
        self.request = None if path is None else Request(path, Headers())

    def respond(self, status: int, text: str) -> Response:
        return self.protocol.reject(status, text)


Router = BaseRouter[FakeConnection, str]


# Pattern


def parts(path: str) -> list[str]:
    return path.split("/")[1:]


def test_pattern_literals_and_parameters() -> None:
    pattern = Pattern("/a/{x}/c")
    assert pattern.pattern == "/a/{x}/c"
    assert pattern.rest is None
    assert pattern.match(parts("/a/b/c")) == {"x": "b"}
    assert pattern.match(parts("/a/b%2Fc/c")) == {"x": "b/c"}
    assert pattern.match(parts("/a//c")) is None
    assert pattern.match(parts("/A/b/c")) is None
    assert pattern.match(parts("/a/b")) is None
    assert pattern.match(parts("/a/b/c/d")) is None


def test_pattern_rest_parameter() -> None:
    pattern = Pattern("/f/{rest:path}")
    assert pattern.rest == "rest"
    assert pattern.match(parts("/f/x")) == {"rest": "x"}
    assert pattern.match(parts("/f/x/y/")) == {"rest": "x/y/"}
    assert pattern.match(parts("/f/caf%C3%A9")) == {"rest": "café"}
    assert pattern.match(parts("/f/")) is None
    assert pattern.match(parts("/f")) is None
    assert pattern.match(parts("/g/x")) is None


def test_pattern_root_and_trailing_slash() -> None:
    assert Pattern("/").match(parts("/")) == {}
    assert Pattern("/").match(parts("/x")) is None
    assert Pattern("/dir/").match(parts("/dir/")) == {}
    assert Pattern("/dir/").match(parts("/dir")) is None
    assert Pattern("/dir").match(parts("/dir/")) is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("echo", "start with '/'"),
        ("", "start with '/'"),
        ("/chat/room{id}", "fill its segment"),
        ("/chat/{id", "fill its segment"),
        ("/chat/id}", "fill its segment"),
        ("/chat/{1st}", "invalid parameter name"),
        ("/chat/{}", "invalid parameter name"),
        ("/a/{x}/b/{x}", "twice"),
        ("/a/{x}/{x:path}", "twice"),
        ("/a/{rest:path}/b", "must come last"),
        ("/a/{x:int}", "unknown parameter kind"),
    ],
)
def test_invalid_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pattern(pattern)


# BaseRouter


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", ("index", {})),
        ("/echo", ("echo", {})),
        ("/echo?x=1&y=/chat/z", ("echo", {})),
        ("/chat/lobby", ("lobby", {})),  # First match wins.
        ("/chat/kitchen?since=3", ("chat", {"room": "kitchen"})),
        ("/chat/caf%C3%A9%20au%2Flait", ("chat", {"room": "café au/lait"})),
        ("/users/ann/files/a", ("files", {"user": "ann", "rest": "a"})),
        ("/users/ann/files/a/b/c.txt", ("files", {"user": "ann", "rest": "a/b/c.txt"})),
        ("/users/ann/files/a%2Fb", ("files", {"user": "ann", "rest": "a/b"})),
    ],
)
def test_match(path: str, expected: tuple[str, dict[str, str]]) -> None:
    assert Router(ROUTES).match(path) == expected


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
        "?/echo",
    ],
)
def test_no_match(path: str) -> None:
    assert Router(ROUTES).match(path) is None


def test_literal_is_compared_decoded() -> None:
    assert Router({"/a b": "index"}).match("/a%20b") == ("index", {})


def test_routes_are_kept_and_checked() -> None:
    assert Router(ROUTES).routes == ROUTES
    with pytest.raises(ValueError, match="start with"):
        Router({"echo": "echo"})


def test_process_request_then_routed() -> None:
    router = Router(ROUTES)
    connection = FakeConnection("/chat/kitchen")
    assert connection.request is not None
    assert router.process_request(connection, connection.request) is None
    # The path of the request given to process_request counts, not a later look.
    connection.request = Request("/nope", Headers())
    assert router.routed(connection) == ("chat", {"room": "kitchen"})


def test_process_request_refuses_with_404() -> None:
    router = Router(ROUTES)
    connection = FakeConnection()
    response = router.process_request(connection, Request("/nope?x", Headers()))
    assert response is not None
    assert response.status_code == 404
    assert response.body == b"Not Found.\n"


def test_not_found_can_be_overridden() -> None:
    class Gone(Router):
        def not_found(self, connection: FakeConnection, request: Request) -> Response:
            return connection.respond(410, f"Gone: {request.path}")

    response = Gone(ROUTES).process_request(FakeConnection(), Request("/x", Headers()))
    assert response is not None
    assert response.status_code == 410
    assert response.body == b"Gone: /x"


def test_routed_without_process_request() -> None:
    router = Router(ROUTES)
    assert router.routed(FakeConnection("/users/u/files/f")) == (
        "files",
        {"user": "u", "rest": "f"},
    )
    assert router.routed(FakeConnection("/nope")) is None


def test_routed_takes_the_match_once() -> None:
    router = Router(ROUTES)
    connection = FakeConnection("/echo")
    assert connection.request is not None
    router.process_request(connection, connection.request)
    assert router.routed(connection) == ("echo", {})
    connection.request = Request("/nope", Headers())
    assert router.routed(connection) is None


def test_a_connection_that_never_ran_is_not_kept() -> None:
    router = Router(ROUTES)
    connection = FakeConnection("/echo")
    assert connection.request is not None
    router.process_request(connection, connection.request)
    del connection
    gc.collect()
    assert len(router._matched) == 0


def test_long_hostile_path_is_cheap() -> None:
    router = Router(ROUTES)
    assert router.match("/" + "a/" * 10_000) is None
    found = router.match("/users/u/files/" + "a/" * 10_000 + "z")
    assert found is not None
    assert found[1]["rest"].endswith("a/z")
