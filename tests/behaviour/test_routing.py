"""Routing connections by path (route and Router), on every API."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import pytest
import trio
from werkzeug.routing import Map, Rule

from tests.backends import Backend, Face, RouteHandler, echo_until_closed
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response


async def chat(ws: Face, room: str) -> None:
    await ws.send(f"room {room}")


async def files(ws: Face, user: str, rest: str) -> None:
    await ws.send(f"{user}: {rest}")


async def index(ws: Face) -> None:
    await ws.send("index")


ROUTES: dict[str, RouteHandler] = {
    "/": index,
    "/echo": echo_until_closed,
    "/chat/lobby": index,
    "/chat/{room}": chat,
    "/users/{user}/files/{rest:path}": files,
    "/dir/": index,
}


async def first_message(backend: Backend, uri: str, **options: Any) -> Any:
    ws = await backend.connect(uri, **options)
    message = await ws.recv()
    await ws.close()
    return message


async def status_of(backend: Backend, uri: str) -> int:
    with pytest.raises(InvalidStatus) as caught:
        await backend.connect(uri)
    return caught.value.response.status_code


def test_route_dispatches_with_params(backend: Backend) -> None:
    async def body() -> None:
        async with backend.route(ROUTES) as port:
            uri = f"ws://127.0.0.1:{port}"
            assert await first_message(backend, f"{uri}/") == "index"
            assert await first_message(backend, f"{uri}/chat/kitchen") == "room kitchen"
            assert await first_message(backend, f"{uri}/chat/lobby") == "index"  # First wins.
            message = await first_message(backend, f"{uri}/chat/caf%C3%A9%20au%2Flait")
            assert message == "room café au/lait"
            message = await first_message(backend, f"{uri}/users/ann/files/x/y.txt")
            assert message == "ann: x/y.txt"
            ws = await backend.connect(f"{uri}/echo")
            await ws.send("ping")
            assert await ws.recv() == "ping"
            await ws.close()
            # The query string is ignored.
            message = await first_message(backend, f"{uri}/chat/kitchen?since=3&path=/echo")
            assert message == "room kitchen"
            assert await first_message(backend, f"{uri}/?x") == "index"
            assert await status_of(backend, f"{uri}/missing?/echo") == 404
            # Unknown paths get a 404 in the handshake; the trailing slash counts.
            for path in ["/missing", "/chat", "/chat/", "/chat/a/b", "/users/ann/files/"]:
                assert await status_of(backend, f"{uri}{path}") == 404, path
            for path in ["//echo", "/echo/", "/dir"]:
                assert await status_of(backend, f"{uri}{path}") == 404, path
            assert await first_message(backend, f"{uri}/dir/") == "index"
            await backend.until(lambda: not backend.server.connections)

    backend.run(body)


def test_route_with_basic_auth(backend: Backend) -> None:
    async def whoami(ws: Face) -> None:
        await ws.send(f"you are {ws.native.username}")

    async def body() -> None:
        auth = backend.module("auth").basic_auth("r", credentials=("ann", "pw"))
        async with backend.route({**ROUTES, "/whoami": whoami}, process_request=auth) as port:
            assert await status_of(backend, f"ws://127.0.0.1:{port}/chat/x") == 401
            # Authentication comes first: a stranger cannot probe for paths.
            assert await status_of(backend, f"ws://127.0.0.1:{port}/missing") == 401
            uri = f"ws://ann:pw@127.0.0.1:{port}"
            assert await first_message(backend, f"{uri}/chat/x") == "room x"
            assert await status_of(backend, f"{uri}/missing") == 404
            assert await first_message(backend, f"{uri}/whoami") == "you are ann"

    backend.run(body)


def test_route_with_another_process_request_and_serve_options(backend: Backend) -> None:
    def healthz(connection: Any, request: Request) -> Response | None:
        if request.path == "/healthz":
            response: Response = connection.respond(200, "OK")
            return response
        return None

    async def body() -> None:
        options = {"process_request": healthz, "subprotocols": ["chat.v1"]}
        async with backend.route(ROUTES, **options) as port:
            uri = f"ws://127.0.0.1:{port}"
            assert await status_of(backend, f"{uri}/healthz") == 200
            assert await status_of(backend, f"{uri}/missing") == 404
            ws = await backend.connect(f"{uri}/chat/y", subprotocols=["chat.v1"])
            assert ws.subprotocol == "chat.v1"
            assert await ws.recv() == "room y"
            await ws.close()

    backend.run(body)


def test_router_by_hand(backend: Backend) -> None:
    base = backend.module("router").Router

    class Custom(base):  # type: ignore[misc, valid-type]
        def not_found(self, connection: Any, request: Request) -> Response:
            response: Response = connection.respond(410, "Gone")
            return response

    async def body() -> None:
        native = {path: backend.native(handler) for path, handler in ROUTES.items()}
        router = Custom(native)
        assert router.routes == native
        start = backend.module("server").serve
        options = {"process_request": router.process_request}
        async with backend.listen(start, router.handler, options) as port:
            assert await status_of(backend, f"ws://127.0.0.1:{port}/missing") == 410
            assert await first_message(backend, f"ws://127.0.0.1:{port}/chat/z") == "room z"
        # Without its process_request, it is too late for a 404: the
        # connection is open, so it closes with 1008.
        async with backend.listen(start, base(native).handler, {}) as port:
            assert await first_message(backend, f"ws://127.0.0.1:{port}/chat/w") == "room w"
            ws = await backend.connect(f"ws://127.0.0.1:{port}/missing")
            await ws.wait_closed()
            assert ws.close_code == 1008
            assert ws.close_reason == "no route for this path"

    backend.run(body)


def test_a_failing_routed_handler_closes_with_1011(backend: Backend) -> None:
    async def broken(ws: Face, room: str) -> None:
        raise RuntimeError(room)

    async def body() -> None:
        async with backend.route({"/broken/{room}": broken}) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/broken/r")
            await ws.wait_closed()
            assert ws.close_code == 1011

    backend.run(body)


def test_invalid_pattern_is_refused_before_listening(backend: Backend) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="start with '/'"):
            async with backend.route({"echo": echo_until_closed}):
                pass  # pragma: no cover - not reached

    backend.run(body)


# A werkzeug Map, as websockets' route() takes it


async def channel(ws: Face, channel_id: uuid.UUID) -> None:
    await ws.send(f"channel {channel_id.hex} {type(channel_id).__name__}")


def url_map(backend: Backend) -> Map:
    """A Map whose endpoints are handlers of the API's server."""
    return Map(
        [
            Rule("/", endpoint=backend.native(index)),
            Rule("/channel/<uuid:channel_id>", endpoint=backend.native(channel)),
            Rule("/old", redirect_to="/"),
            Rule("/dir/", endpoint=backend.native(index)),
        ]
    )


async def redirect_of(backend: Backend, port: int, path: str) -> Response:
    """The redirect the server answers ``path`` with.

    The client follows redirects; given a connection of its own, it follows
    none and says why, with the server's answer as the cause.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    if backend.api == "trio":
        options: dict[str, Any] = {
            "stream": trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        }
    else:
        options = {"sock": sock}
    try:
        with pytest.raises(ValueError, match="preexisting") as info:
            await backend.connect(f"ws://127.0.0.1:{port}{path}", **options)
    finally:
        sock.close()
    cause = info.value.__cause__
    assert isinstance(cause, InvalidStatus)
    return cause.response


def test_map_dispatches_with_converted_values(backend: Backend) -> None:
    async def body() -> None:
        route = backend.module("router").route
        async with backend.listen(route, url_map(backend), {}) as port:
            channel_id = uuid.uuid4()
            uri = f"ws://127.0.0.1:{port}"
            message = await first_message(backend, f"{uri}/channel/{channel_id}")
            assert message == f"channel {channel_id.hex} UUID"
            assert await first_message(backend, f"{uri}/?query=ignored") == "index"
            assert await status_of(backend, f"{uri}/channel/not-a-uuid") == 404
            # The rule's redirect, followed by the client.
            assert await first_message(backend, f"{uri}/old") == "index"

    backend.run(body)


@pytest.mark.parametrize(
    ("options", "location"),
    [
        ({}, "ws://127.0.0.1:{port}/"),
        ({"server_name": "chat.example"}, "ws://chat.example/"),
        ({"server_name": "chat.example", "ssl": True}, "wss://chat.example/"),
    ],
    ids=["host", "server-name", "tls"],
)
def test_map_redirects(backend: Backend, options: dict[str, Any], location: str) -> None:
    async def body() -> None:
        route = backend.module("router").route
        async with backend.listen(route, url_map(backend), options) as port:
            response = await redirect_of(backend, port, "/old")
            assert response.status_code == 302
            assert response.headers["Location"] == location.format(port=port)
            if options:
                # Strict slashes: a redirect to the path with its slash.
                response = await redirect_of(backend, port, "/dir")
                assert response.headers["Location"] == location + "dir/"

    backend.run(body)


def test_create_router_and_process_request(backend: Backend) -> None:
    made: list[tuple[str | None, str]] = []
    base = backend.module("router").Router

    class Custom(base):  # type: ignore[misc, valid-type]
        def __init__(self, routes: Any, server_name: str | None, url_scheme: str) -> None:
            made.append((server_name, url_scheme))
            super().__init__(routes, server_name, url_scheme)

        def not_found(self, connection: Any, request: Request) -> Response:
            response: Response = connection.respond(410, "Gone")
            return response

    def first(connection: Any, request: Request) -> Response | None:
        if request.path == "/":
            response: Response = connection.respond(403, "No")
            return response
        return None

    async def body() -> None:
        route = backend.module("router").route
        options = {"create_router": Custom, "process_request": first, "server_name": "s"}
        async with backend.listen(route, url_map(backend), options) as port:
            for path, status in [("/", 403), ("/nowhere", 410)]:
                assert await status_of(backend, f"ws://127.0.0.1:{port}{path}") == status
        assert made == [("s", "ws")]

    backend.run(body)
