"""websockets' older spellings checked on the asyncio API: a coroutine process_request(path,
headers), InvalidStatusCode and the deprecated exception names (the others, on the asyncio and
threading APIs: tests/behaviour/test_legacy.py)."""

from __future__ import annotations

import asyncio

import pytest

import tether
import tether.exceptions
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus, ProtocolError
from tether.protocol.headers import Headers

from .conftest import ServerFactory, uri_of


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
