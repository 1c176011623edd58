"""websockets' older spellings on the asyncio API: each works, with a DeprecationWarning."""

from __future__ import annotations

import asyncio
import http

import pytest

import tether
import tether.exceptions
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus, ProtocolError
from tether.legacy import AbortHandshake
from tether.protocol.headers import Headers

from .conftest import ServerFactory, uri_of


async def test_handler_taking_path(start_server: ServerFactory) -> None:
    async def handler(websocket: ServerConnection, path: str) -> None:
        await websocket.send(path)

    with pytest.warns(DeprecationWarning, match=r"\(websocket, path\).*request\.path"):
        server = await start_server(handler)
    async with tether.connect(uri_of(server, "/chat?room=1")) as ws:
        assert await ws.recv() == "/chat?room=1"


async def test_handler_with_a_default_second_argument_is_not_legacy(
    start_server: ServerFactory,
) -> None:
    async def handler(websocket: ServerConnection, greeting: str = "hi") -> None:
        await websocket.send(greeting)

    server = await start_server(handler)
    async with tether.connect(uri_of(server)) as ws:
        assert await ws.recv() == "hi"


async def test_process_request_path_and_headers(start_server: ServerFactory) -> None:
    seen: list[tuple[str, str]] = []

    def process_request(
        path: str, request_headers: Headers
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        seen.append((path, request_headers["X-Token"]))
        if request_headers["X-Token"] != "ok":
            return http.HTTPStatus.FORBIDDEN, [("X-Why", "token")], b"no entry\n"
        return None

    async def hello(websocket: ServerConnection) -> None:
        await websocket.send("hello")

    with pytest.warns(DeprecationWarning, match=r"process_request\(path, request_headers\)"):
        server = await start_server(hello, process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server, "/a"), additional_headers={"X-Token": "bad"})
    response = info.value.response
    assert (response.status_code, response.reason_phrase) == (403, "Forbidden")
    assert response.headers["X-Why"] == "token"
    assert response.body == b"no entry\n"
    async with tether.connect(uri_of(server, "/b"), additional_headers={"X-Token": "ok"}) as ws:
        assert await ws.recv() == "hello"
    assert seen == [("/a", "bad"), ("/b", "ok")]


async def test_process_request_coroutine_old_spelling(start_server: ServerFactory) -> None:
    async def process_request(path: str, request_headers: Headers) -> tuple[int, Headers, bytes]:
        await asyncio.sleep(0)
        return 200, Headers({"Content-Type": "text/plain"}), b"healthy"

    with pytest.warns(DeprecationWarning, match=r"process_request\(path, request_headers\)"):
        server = await start_server(process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server))
    assert info.value.response.status_code == 200
    assert info.value.response.body == b"healthy"


async def test_process_request_old_spelling_bad_return_is_500(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def process_request(path: str, request_headers: Headers) -> str:
        return "nope"

    with pytest.warns(DeprecationWarning, match=r"process_request\(path, request_headers\)"):
        server = await start_server(process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server))
    assert info.value.response.status_code == 500
    assert "must return None or (status, headers, body)" in caplog.text


async def test_abort_handshake_from_process_request(start_server: ServerFactory) -> None:
    def process_request(connection: ServerConnection, request: object) -> None:
        raise AbortHandshake(http.HTTPStatus.UNAUTHORIZED, {"WWW-Authenticate": "Basic"}, b"who?")

    server = await start_server(process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server))
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Basic"
    assert response.body == b"who?"


async def test_open_closed_path(start_server: ServerFactory) -> None:
    paths: list[str] = []

    async def handler(websocket: ServerConnection) -> None:
        with pytest.warns(DeprecationWarning, match=r"connection\.request\.path"):
            paths.append(websocket.path)
        await websocket.send("x")
        await websocket.wait_closed()

    server = await start_server(handler)
    async with tether.connect(uri_of(server, "/p?q")) as ws:
        with pytest.warns(DeprecationWarning, match=r"state is State\.OPEN"):
            assert ws.open
        with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
            assert not ws.closed
        assert await ws.recv() == "x"
    with pytest.warns(DeprecationWarning, match=r"state is State\.OPEN"):
        assert not ws.open
    with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
        assert ws.closed
    assert paths == ["/p?q"]


async def test_invalid_status_code_catches_a_refusal(start_server: ServerFactory) -> None:
    def refuse(connection: ServerConnection, request: object) -> tether.protocol.Response:
        return connection.respond(403, "no")

    server = await start_server(process_request=refuse)
    with pytest.warns(
        DeprecationWarning, match="InvalidStatusCode is deprecated; use InvalidStatus"
    ):
        invalid_status_code = tether.exceptions.InvalidStatusCode
    with pytest.raises(invalid_status_code) as info:
        await tether.connect(uri_of(server))
    with pytest.warns(DeprecationWarning, match=r"response\.status_code"):
        assert info.value.status_code == 403
    with pytest.warns(DeprecationWarning, match=r"response\.headers"):
        assert info.value.headers["Content-Length"] == "2"


def test_deprecated_exception_names() -> None:
    with pytest.warns(DeprecationWarning, match="WebSocketProtocolError is deprecated"):
        assert tether.exceptions.WebSocketProtocolError is ProtocolError
    with pytest.warns(DeprecationWarning, match="AbortHandshake is deprecated"):
        abort = tether.exceptions.AbortHandshake
    exc = abort(404, [("X", "y")], b"gone")
    assert (exc.status, exc.headers["X"], exc.body) == (404, "y", b"gone")
    assert str(exc) == "HTTP 404, 1 headers, 4 bytes"
    with pytest.warns(DeprecationWarning, match="RedirectHandshake is deprecated"):
        redirect = tether.exceptions.RedirectHandshake
    assert str(redirect("ws://elsewhere/")) == "redirect to ws://elsewhere/"
    with pytest.raises(AttributeError):
        tether.exceptions.NoSuchThing  # noqa: B018
