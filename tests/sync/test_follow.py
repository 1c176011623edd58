"""The threading client follows redirects and answers Digest challenges; sync digest_auth."""

from __future__ import annotations

import pytest

import tether.sync
from tether.exceptions import InvalidStatus, SecurityError
from tether.follow import MAX_REDIRECTS
from tether.protocol.http11 import Request, Response
from tether.sync.auth import digest_auth
from tether.sync.server import Server, ServerConnection

from .conftest import ServerFactory, uri_of


def whoami(ws: ServerConnection) -> None:
    ws.send(f"{ws.username} {ws.request_headers.get('Cookie')}")


def port_of(server: Server) -> int:
    port: int = server.socket.getsockname()[1]
    return port


def test_digest_auth_server_and_client(start_server: ServerFactory) -> None:
    seen: list[str | None] = []
    auth = digest_auth("sync", credentials=("alice", "s3cret"))

    def hook(connection: ServerConnection, request: Request) -> Response | None:
        seen.append(request.headers.get("Authorization"))
        return auth(connection, request)

    server = start_server(whoami, process_request=hook)
    with tether.sync.connect(uri_of(server), auth=("alice", "s3cret")) as ws:
        assert ws.recv(timeout=5) == "alice None"
    assert seen[0] is None
    assert str(seen[1]).startswith("Digest ")
    with pytest.raises(InvalidStatus, match="401"):
        tether.sync.connect(uri_of(server), auth=("alice", "wrong"))
    port = port_of(server)
    with tether.sync.connect(f"ws://alice:s3cret@127.0.0.1:{port}/") as ws:
        assert ws.recv(timeout=5) == "alice None"


def test_get_password(start_server: ServerFactory) -> None:
    def get_password(username: str) -> str | None:
        return {"dave": "pw"}.get(username)

    server = start_server(whoami, process_request=digest_auth(get_password=get_password))
    with tether.sync.connect(uri_of(server), auth=("dave", "pw")) as ws:
        assert ws.recv(timeout=5) == "dave None"
    with pytest.raises(InvalidStatus, match="401"):
        tether.sync.connect(uri_of(server), auth=("erin", "pw"))


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
