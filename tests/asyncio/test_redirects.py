"""The asyncio client follows redirects as websockets 17 does."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest
import trustme

import tether
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import InvalidStatus, SecurityError
from tether.follow import MAX_REDIRECTS
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, uri_of


def redirect(status: int, location: Callable[[Request], str]) -> object:
    """A process_request hook answering every request with ``status`` to ``location``."""

    def hook(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, "Moved.\n")
        response.headers["Location"] = location(request)
        return response

    return hook


async def tell_headers(ws: ServerConnection) -> None:
    """Send back the path and the credential headers the client sent."""
    headers = ws.request_headers
    assert ws.request is not None
    await ws.send(f"{ws.request.path}|{headers.get('Authorization')}|{headers.get('Cookie')}")


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
async def test_redirect_statuses_are_followed(start_server: ServerFactory, status: int) -> None:
    target = await start_server(tell_headers)
    source = await start_server(
        process_request=redirect(status, lambda request: uri_of(target, "/moved")),
    )
    async with tether.connect(uri_of(source, "/old")) as ws:
        assert await ws.recv() == "/moved|None|None"


async def test_relative_location_keeps_the_origin_and_its_credentials(
    start_server: ServerFactory,
) -> None:
    def hook(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/new":
            return None
        response = connection.respond(302, "")
        response.headers["Location"] = "new"
        return response

    server = await start_server(tell_headers, process_request=hook)
    port = uri_of(server).split(":")[2].strip("/")
    uri = f"ws://alice:pw@127.0.0.1:{port}/dir"
    async with tether.connect(uri, additional_headers={"Cookie": "a=1"}) as ws:
        path, authorization, cookie = str(await ws.recv()).split("|")
    assert path == "/new"
    assert authorization.startswith("Basic")
    assert cookie == "a=1"


async def test_cross_origin_drops_credentials(start_server: ServerFactory) -> None:
    target = await start_server(tell_headers)
    source = await start_server(
        process_request=redirect(302, lambda request: uri_of(target, "/there")),
    )
    port = uri_of(source).split(":")[2].strip("/")
    headers = {"Authorization": "Bearer secret", "Cookie": "session=1", "X-Kept": "yes"}
    async with tether.connect(f"ws://alice:pw@127.0.0.1:{port}/", additional_headers=headers) as ws:
        assert await ws.recv() == "/there|None|None"
        assert ws.request_headers["X-Kept"] == "yes"


async def test_too_many_redirects(start_server: ServerFactory) -> None:
    hops: list[str] = []

    def hook(connection: ServerConnection, request: Request) -> Response:
        hops.append(request.path)
        response = connection.respond(307, "")
        response.headers["Location"] = f"/hop{len(hops)}"
        return response

    server = await start_server(process_request=hook)
    with pytest.raises(SecurityError, match=f"more than {MAX_REDIRECTS} redirects"):
        await tether.connect(uri_of(server))
    assert len(hops) == MAX_REDIRECTS + 1


async def test_tls_downgrade_is_refused(start_server: ServerFactory) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    plain = await start_server()
    secure = await start_server(
        process_request=redirect(301, lambda request: uri_of(plain)), ssl=server_context
    )
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    secure_uri = uri_of(secure).replace("ws://", "wss://")
    with pytest.raises(SecurityError, match="non-secure") as caught:
        await tether.connect(secure_uri, ssl=client_context)
    assert isinstance(caught.value.__cause__, InvalidStatus)


async def test_what_cannot_follow_a_redirect(start_server: ServerFactory) -> None:
    other = await start_server()
    server: Server = await start_server(
        process_request=redirect(302, lambda request: uri_of(other)),
    )
    port = int(uri_of(server).split(":")[2].strip("/"))
    with pytest.raises(ValueError, match="explicit host or port"):
        await tether.connect("ws://example.test/", host="127.0.0.1", port=port)
    sock = socket.create_connection(("127.0.0.1", port))
    with pytest.raises(ValueError, match="preexisting socket"):
        await tether.connect("ws://example.test/", sock=sock)
    sock.close()


async def test_a_redirect_without_location_is_raised(start_server: ServerFactory) -> None:
    def hook(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(302, "")

    server = await start_server(process_request=hook)
    with pytest.raises(InvalidStatus, match="302"):
        await tether.connect(uri_of(server))
