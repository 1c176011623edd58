"""Routing connections by path on the threading server: tether.sync.Router and route."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response
from tether.sync import Router, Server, ServerConnection, basic_auth, connect, route
from tether.sync.router import RouteHandler

from .conftest import TIMEOUT, ServerFactory, echo, run_server, stop_server, uri_of


def chat(ws: ServerConnection, room: str) -> None:
    ws.send(f"room {room}")


def files(ws: ServerConnection, user: str, rest: str) -> None:
    ws.send(f"{user}: {rest}")


def index(ws: ServerConnection) -> None:
    ws.send("index")


ROUTES: dict[str, RouteHandler] = {
    "/": index,
    "/echo": echo,
    "/chat/lobby": index,
    "/chat/{room}": chat,
    "/users/{user}/files/{rest:path}": files,
    "/dir/": index,
}


RouteFactory = Callable[..., Server]


@pytest.fixture
def start_route() -> Iterator[RouteFactory]:
    """Start servers with route() on 127.0.0.1 and a free port; all are shut down after."""
    running: list[tuple[Server, threading.Thread]] = []

    def start(routes: dict[str, RouteHandler] = ROUTES, **kwargs: Any) -> Server:
        server = route(routes, "127.0.0.1", 0, **kwargs)
        running.append((server, run_server(server)))
        return server

    yield start
    for server, thread in running:
        stop_server(server, thread)


def first_message(uri: str) -> str | bytes:
    with connect(uri, open_timeout=TIMEOUT) as ws:
        return ws.recv(timeout=TIMEOUT)


def status_of(uri: str) -> int:
    with pytest.raises(InvalidStatus) as caught:
        connect(uri, open_timeout=TIMEOUT)
    return caught.value.response.status_code


def test_route_dispatches_with_params(start_route: RouteFactory) -> None:
    server = start_route()
    assert first_message(uri_of(server, "/")) == "index"
    assert first_message(uri_of(server, "/chat/kitchen")) == "room kitchen"
    assert first_message(uri_of(server, "/chat/lobby")) == "index"  # First match wins.
    assert first_message(uri_of(server, "/chat/caf%C3%A9%20au%2Flait")) == "room café au/lait"
    assert first_message(uri_of(server, "/users/ann/files/x/y.txt")) == "ann: x/y.txt"
    with connect(uri_of(server, "/echo"), open_timeout=TIMEOUT) as ws:
        ws.send("ping")
        assert ws.recv(timeout=TIMEOUT) == "ping"


def test_query_string_is_ignored(start_route: RouteFactory) -> None:
    server = start_route()
    assert first_message(uri_of(server, "/chat/kitchen?since=3&path=/echo")) == "room kitchen"
    assert first_message(uri_of(server, "/?x")) == "index"
    assert status_of(uri_of(server, "/missing?/echo")) == 404


def test_unknown_path_gets_404_in_the_handshake(start_route: RouteFactory) -> None:
    server = start_route()
    for path in ["/missing", "/chat", "/chat/", "/chat/a/b", "/users/ann/files/", "//echo"]:
        assert status_of(uri_of(server, path)) == 404, path
    assert server.connections == set()


def test_trailing_slash_counts(start_route: RouteFactory) -> None:
    server = start_route()
    assert status_of(uri_of(server, "/echo/")) == 404
    assert first_message(uri_of(server, "/dir/")) == "index"
    assert status_of(uri_of(server, "/dir")) == 404


def test_route_with_basic_auth(start_route: RouteFactory) -> None:
    def whoami(ws: ServerConnection) -> None:
        ws.send(f"you are {ws.username}")

    auth = basic_auth("r", credentials=("ann", "pw"))
    server = start_route({**ROUTES, "/whoami": whoami}, process_request=auth)
    assert status_of(uri_of(server, "/chat/x")) == 401
    # Authentication comes first: a stranger cannot probe for paths.
    assert status_of(uri_of(server, "/missing")) == 401
    uri = uri_of(server, "/chat/x").replace("ws://", "ws://ann:pw@")
    with connect(uri, open_timeout=TIMEOUT) as ws:
        assert ws.recv(timeout=TIMEOUT) == "room x"
        assert status_of(uri.replace("/chat/x", "/missing")) == 404
    assert first_message(uri.replace("/chat/x", "/whoami")) == "you are ann"


def test_route_with_another_process_request(start_route: RouteFactory) -> None:
    def healthz(connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(200, "OK") if request.path == "/healthz" else None

    server = start_route(process_request=healthz)
    assert status_of(uri_of(server, "/healthz")) == 200
    assert first_message(uri_of(server, "/chat/y")) == "room y"
    assert status_of(uri_of(server, "/missing")) == 404


def test_route_passes_serve_options(start_route: RouteFactory) -> None:
    server = start_route(subprotocols=["chat.v1"])
    with connect(uri_of(server, "/chat/s"), subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        assert ws.recv(timeout=TIMEOUT) == "room s"


def test_route_as_context_manager() -> None:
    with route({"/": index}, "127.0.0.1", 0) as server:
        thread = run_server(server)
        assert first_message(uri_of(server)) == "index"
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_router_by_hand(start_server: ServerFactory) -> None:
    class Custom(Router):
        def not_found(self, connection: ServerConnection, request: Request) -> Response:
            return connection.respond(410, "Gone")

    router = Custom(ROUTES)
    server = start_server(router.handler, process_request=router.process_request)
    assert status_of(uri_of(server, "/missing")) == 410
    assert first_message(uri_of(server, "/chat/z")) == "room z"
    assert router.routes == ROUTES


def test_handler_without_process_request(start_server: ServerFactory) -> None:
    # Too late for a 404: the connection is open, so it closes with 1008.
    router = Router(ROUTES)
    server = start_server(router.handler)
    assert first_message(uri_of(server, "/chat/w")) == "room w"
    with connect(uri_of(server, "/missing"), open_timeout=TIMEOUT) as ws:
        assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1008
    assert ws.close_reason == "no route for this path"


def test_a_failing_routed_handler_closes_with_1011(start_route: RouteFactory) -> None:
    def broken(ws: ServerConnection, room: str) -> None:
        raise RuntimeError(room)

    server = start_route({"/broken/{room}": broken})
    with connect(uri_of(server, "/broken/r"), open_timeout=TIMEOUT) as ws:
        assert ws.wait_closed(TIMEOUT)
    assert ws.close_code == 1011


def test_invalid_pattern_is_refused_before_listening() -> None:
    with pytest.raises(ValueError, match="start with '/'"):
        route({"echo": echo}, "127.0.0.1", 0)
