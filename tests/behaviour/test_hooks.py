"""The handshake hooks and options of the server, on every API."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest

from tests.backends import Backend, Face
from tether.exceptions import ConnectionClosed, InvalidStatus
from tether.protocol.http11 import Request, Response


async def echo(ws: Face) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await ws.send(await ws.recv(timeout=None))


async def _refused(backend: Backend, uri: str, **options: Any) -> Response:
    with pytest.raises(InvalidStatus) as caught:
        await backend.connect(uri, **options)
    return caught.value.response


def test_process_request_can_answer_instead(backend: Backend) -> None:
    def process_request(connection: Any, request: Request) -> Response | None:
        if request.path == "/health":
            response: Response = connection.respond(200, "OK\n")
            response.headers["X-Checked"] = "yes"
            return response
        return None

    async def body() -> None:
        async with backend.serve(echo, process_request=process_request) as port:
            response = await _refused(backend, f"ws://127.0.0.1:{port}/health")
            assert response.status_code == 200
            assert response.headers["X-Checked"] == "yes"
            assert response.body == b"OK\n"
            ws = await backend.connect(f"ws://127.0.0.1:{port}/chat")
            await ws.send("open")
            assert await ws.recv() == "open"
            await ws.close()

    backend.run(body)


def test_process_response_can_add_headers(backend: Backend) -> None:
    def process_response(connection: Any, request: Request, response: Response) -> None:
        response.headers["X-Path"] = request.path

    async def body() -> None:
        async with backend.serve(echo, process_response=process_response) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/here")
            assert ws.response_headers["X-Path"] == "/here"
            await ws.close()

    backend.run(body)


def test_failing_hook_gives_500(backend: Backend) -> None:
    def process_request(connection: Any, request: Request) -> None:
        raise RuntimeError("bug in the hook")

    async def body() -> None:
        async with backend.serve(echo, process_request=process_request) as port:
            response = await _refused(backend, f"ws://127.0.0.1:{port}/")
            assert response.status_code == 500

    backend.run(body)


def test_origins_refuse_others_with_403(backend: Backend) -> None:
    async def body() -> None:
        origins = ["https://good.example", re.compile(r"https://[a-z]+\.trusted\.example")]
        async with backend.serve(echo, origins=origins) as port:
            uri = f"ws://127.0.0.1:{port}/"
            response = await _refused(backend, uri, origin="https://evil.example")
            assert response.status_code == 403
            for origin in ("https://good.example", "https://app.trusted.example"):
                ws = await backend.connect(uri, origin=origin)
                await ws.close()

    backend.run(body)


def test_subprotocol_negotiation(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(echo, subprotocols=["chat.v2", "chat.v3"]) as port:
            ws = await backend.connect(
                f"ws://127.0.0.1:{port}/", subprotocols=["chat.v1", "chat.v2"]
            )
            assert ws.subprotocol == "chat.v2"
            await ws.close()

    backend.run(body)


def test_basic_auth(backend: Backend) -> None:
    hook = backend.module("auth").basic_auth(realm="test", credentials=("alice", "s3cret"))
    seen: list[str | None] = []

    async def who(ws: Face) -> None:
        seen.append(ws.native.username)
        await ws.send(ws.native.username)

    async def body() -> None:
        async with backend.serve(who, process_request=hook) as port:
            uri = f"ws://127.0.0.1:{port}/"
            response = await _refused(backend, uri)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith('Basic realm="test"')
            bad = {"Authorization": "Basic YWxpY2U6d3Jvbmc="}  # alice:wrong
            assert (await _refused(backend, uri, additional_headers=bad)).status_code == 401
            good = {"Authorization": "Basic YWxpY2U6czNjcmV0"}  # alice:s3cret
            ws = await backend.connect(uri, additional_headers=good)
            assert await ws.recv() == "alice"
            await ws.close()
            assert seen == ["alice"]

    backend.run(body)
