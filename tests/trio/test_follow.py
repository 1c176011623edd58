"""The trio client follows redirects, takes headers and limits."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import tether.trio
from tether.exceptions import HeaderLineTooLong, InvalidStatus, SecurityError
from tether.follow import MAX_REDIRECTS
from tether.protocol.http11 import Limits, Request, Response
from tether.trio import ServerConnection

from .conftest import serving, trio_test, uri_of


async def whoami(ws: ServerConnection) -> None:
    path = ws.request.path if ws.request is not None else None
    await ws.send(f"{ws.username} {ws.request_headers.get('Cookie')} {path}")


def redirect_to(
    location: str, status: int = 302
) -> Callable[[ServerConnection, Request], Response]:
    def hook(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(status, "")
        response.headers["Location"] = location
        return response

    return hook


@pytest.mark.parametrize("status", [301, 308])
@trio_test
async def test_redirects(status: int) -> None:
    cookie = {"Cookie": "c=1"}
    async with serving(whoami) as target:
        # Another origin (127.0.0.1 to localhost): the cookie stays behind.
        location = uri_of(target, "/moved").replace("127.0.0.1", "localhost")
        async with (
            serving(process_request=redirect_to(location, status)) as source,
            tether.trio.connect(uri_of(source), extra_headers=cookie) as ws,
        ):
            assert await ws.recv() == "None None /moved"

    def move(connection: ServerConnection, request: Request) -> Response | None:
        return redirect_to("/moved", status)(connection, request) if request.path == "/" else None

    # The same origin keeps it.
    async with (
        serving(whoami, process_request=move) as server,
        tether.trio.connect(uri_of(server), additional_headers=cookie) as ws,
    ):
        assert await ws.recv() == "None c=1 /moved"


@trio_test
async def test_too_many_redirects_and_fixed_addresses() -> None:
    hops: list[str] = []

    def loop(connection: ServerConnection, request: Request) -> Response:
        hops.append(request.path)
        response = connection.respond(303, "")
        response.headers["Location"] = "/again"
        return response

    async with serving(process_request=loop) as server:
        with pytest.raises(SecurityError, match="redirects"):
            await tether.trio.connect(uri_of(server))
        assert len(hops) == MAX_REDIRECTS + 1
    async with serving(process_request=redirect_to("ws://127.0.0.2:1/")) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ValueError, match="explicit host or port"):
            await tether.trio.connect("ws://example.test/", host="127.0.0.1", port=port)


@trio_test
async def test_extra_headers_and_limits() -> None:
    async def headers(ws: ServerConnection) -> None:
        await ws.send(str(ws.request_headers.get("X-Trio")))

    async with serving(headers) as server:
        async with tether.trio.connect(uri_of(server), extra_headers={"X-Trio": "yes"}) as ws:
            assert await ws.recv() == "yes"
        with pytest.raises(TypeError, match="not both"):
            tether.trio.connect(uri_of(server), extra_headers={}, additional_headers={})

    def long_header(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(403, "")
        response.headers["X-Long"] = "x" * 2000
        return response

    async with serving(process_request=long_header) as server:
        with pytest.raises(HeaderLineTooLong):
            await tether.trio.connect(uri_of(server), limits=Limits(max_line=1024))
        # The default limits read it, and the 403 is what fails.
        with pytest.raises(InvalidStatus, match="403"):
            await tether.trio.connect(uri_of(server))
