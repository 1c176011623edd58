"""The threading client follows redirects."""

from __future__ import annotations

import pytest

import tether.sync
from tether.exceptions import SecurityError
from tether.follow import MAX_REDIRECTS
from tether.protocol.http11 import Request, Response
from tether.sync.server import Server, ServerConnection

from .conftest import ServerFactory, uri_of


def whoami(ws: ServerConnection) -> None:
    ws.send(f"{ws.username} {ws.request_headers.get('Cookie')}")


def port_of(server: Server) -> int:
    port: int = server.socket.getsockname()[1]
    return port


def redirect_to(location: str, status: int = 302) -> object:
    def hook(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, "")
        response.headers["Location"] = location
        return response

    return hook


@pytest.mark.parametrize("status", [301, 308])
def test_redirects(start_server: ServerFactory, status: int) -> None:
    target = start_server(whoami)
    source = start_server(process_request=redirect_to(uri_of(target), status))
    # Another origin: the cookie stays behind.
    with tether.sync.connect(uri_of(source), additional_headers={"Cookie": "c=1"}) as ws:
        assert ws.recv(timeout=5) == "None None"


def test_too_many_redirects_and_downgrade(start_server: ServerFactory) -> None:
    hops: list[str] = []

    def loop(connection: ServerConnection, request: Request) -> Response:
        hops.append(request.path)
        response = connection.respond(303, "")
        response.headers["Location"] = "/again"
        return response

    server = start_server(process_request=loop)
    with pytest.raises(SecurityError, match="redirects"):
        tether.sync.connect(uri_of(server))
    assert len(hops) == MAX_REDIRECTS + 1
    with pytest.raises(ValueError, match="explicit host or port"):
        tether.sync.connect(
            "ws://example.test/",
            host="127.0.0.1",
            port=port_of(start_server(process_request=redirect_to("ws://127.0.0.2:1/"))),
        )
