"""websockets' older spellings on the threading API: each works, with a DeprecationWarning."""

from __future__ import annotations

import http

import pytest

from tether.exceptions import InvalidStatus
from tether.legacy import AbortHandshake
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request
from tether.sync import ServerConnection, connect

from .conftest import ServerFactory, uri_of


def test_handler_taking_path(start_server: ServerFactory) -> None:
    def handler(websocket: ServerConnection, path: str) -> None:
        websocket.send(path)

    with pytest.warns(DeprecationWarning, match=r"\(websocket, path\)"):
        server = start_server(handler)
    with connect(uri_of(server, "/chat?room=1")) as ws:
        assert ws.recv(timeout=5) == "/chat?room=1"


def test_process_request_path_and_headers(start_server: ServerFactory) -> None:
    def process_request(path: str, request_headers: Headers) -> tuple[int, Headers, bytes] | None:
        if path == "/health":
            return http.HTTPStatus.OK, Headers({"X-Health": "fine"}), b"OK\n"
        return None

    def hello(websocket: ServerConnection) -> None:
        websocket.send("hello")

    with pytest.warns(DeprecationWarning, match=r"process_request\(path, request_headers\)"):
        server = start_server(hello, process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        connect(uri_of(server, "/health"))
    response = info.value.response
    assert (response.status_code, response.body) == (200, b"OK\n")
    assert response.headers["X-Health"] == "fine"
    with connect(uri_of(server, "/chat")) as ws:
        assert ws.recv(timeout=5) == "hello"


def test_abort_handshake_from_process_request(start_server: ServerFactory) -> None:
    def process_request(connection: ServerConnection, request: Request) -> None:
        raise AbortHandshake(403, [], b"forbidden")

    server = start_server(process_request=process_request)
    with pytest.raises(InvalidStatus) as info:
        connect(uri_of(server))
    assert (info.value.response.status_code, info.value.response.body) == (403, b"forbidden")


def test_open_closed_path(start_server: ServerFactory) -> None:
    paths: list[str] = []

    def handler(websocket: ServerConnection) -> None:
        with pytest.warns(DeprecationWarning, match=r"connection\.request\.path"):
            paths.append(websocket.path)
        websocket.send("x")
        websocket.wait_closed(5)

    server = start_server(handler)
    with connect(uri_of(server, "/p")) as ws:
        with pytest.warns(DeprecationWarning, match=r"state is State\.OPEN"):
            assert ws.open
        with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
            assert not ws.closed
        assert ws.recv(timeout=5) == "x"
    with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
        assert ws.closed
    assert paths == ["/p"]
