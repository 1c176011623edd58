"""The trio client takes extra_headers and limits (redirects: tests/behaviour/test_redirects.py)."""

from __future__ import annotations

import pytest

import tether.trio
from tether.exceptions import HeaderLineTooLong, InvalidStatus
from tether.protocol.http11 import Limits, Request, Response
from tether.trio import ServerConnection

from .conftest import serving, trio_test, uri_of


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
