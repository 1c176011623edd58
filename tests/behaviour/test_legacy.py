"""websockets' older spellings on the asyncio and threading APIs: each works, with a
DeprecationWarning. (websockets.trio never had them, nor has tether.trio.)"""

from __future__ import annotations

import asyncio
import contextlib
import http
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from tests.backends import Backend, Face, ThreadFace
from tether.exceptions import InvalidStatus
from tether.legacy import AbortHandshake
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request

pytestmark = pytest.mark.apis("asyncio", "sync")

PathBody = Callable[[Face, str], Coroutine[Any, Any, None]]


def taking_path(backend: Backend, body: PathBody) -> Callable[..., Any]:
    """A handler of the API's server in websockets' old spelling: (websocket, path)."""
    if backend.api == "sync":

        def handler(websocket: Any, path: str) -> None:
            asyncio.run(body(ThreadFace(websocket), path))

        return handler

    async def coroutine(websocket: Any, path: str) -> None:
        await body(Face(websocket), path)

    return coroutine


async def hello(ws: Face) -> None:
    await ws.send("hello")


async def first_message(backend: Backend, uri: str, **options: Any) -> Any:
    ws = await backend.connect(uri, **options)
    message = await ws.recv()
    await ws.close()
    return message


def test_handler_taking_path(backend: Backend) -> None:
    async def send_path(ws: Face, path: str) -> None:
        await ws.send(path)

    async def body() -> None:
        serve = backend.module("server").serve
        handler = taking_path(backend, send_path)
        async with contextlib.AsyncExitStack() as stack:
            with pytest.warns(DeprecationWarning, match=r"\(websocket, path\).*request\.path"):
                port = await stack.enter_async_context(backend.listen(serve, handler, {}))
            uri = f"ws://127.0.0.1:{port}/chat?room=1"
            assert await first_message(backend, uri) == "/chat?room=1"

    backend.run(body)


def test_handler_with_a_default_second_argument_is_not_legacy(backend: Backend) -> None:
    async def greet(ws: Face, greeting: str = "hi") -> None:
        await ws.send(greeting)

    async def body() -> None:
        async with backend.serve(greet) as port:
            assert await first_message(backend, f"ws://127.0.0.1:{port}/") == "hi"

    backend.run(body)


def test_process_request_path_and_headers(backend: Backend) -> None:
    seen: list[tuple[str, str]] = []

    def process_request(
        path: str, request_headers: Headers
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        seen.append((path, request_headers["X-Token"]))
        if request_headers["X-Token"] != "ok":
            return http.HTTPStatus.FORBIDDEN, [("X-Why", "token")], b"no entry\n"
        return None

    async def body() -> None:
        warning = r"process_request\(path, request_headers\)"
        async with contextlib.AsyncExitStack() as stack:
            served = backend.serve(hello, process_request=process_request)
            with pytest.warns(DeprecationWarning, match=warning):
                port = await stack.enter_async_context(served)
            with pytest.raises(InvalidStatus) as info:
                await backend.connect(
                    f"ws://127.0.0.1:{port}/a", additional_headers={"X-Token": "bad"}
                )
            response = info.value.response
            assert (response.status_code, response.reason_phrase) == (403, "Forbidden")
            assert response.headers["X-Why"] == "token"
            assert response.body == b"no entry\n"
            uri = f"ws://127.0.0.1:{port}/b"
            headers = {"X-Token": "ok"}
            assert await first_message(backend, uri, additional_headers=headers) == "hello"
        assert seen == [("/a", "bad"), ("/b", "ok")]

    backend.run(body)


def test_process_request_old_spelling_bad_return_is_500(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    def process_request(path: str, request_headers: Headers) -> str:
        return "nope"

    async def body() -> None:
        warning = r"process_request\(path, request_headers\)"
        async with contextlib.AsyncExitStack() as stack:
            served = backend.serve(hello, process_request=process_request)
            with pytest.warns(DeprecationWarning, match=warning):
                port = await stack.enter_async_context(served)
            with pytest.raises(InvalidStatus) as info:
                await backend.connect(f"ws://127.0.0.1:{port}/")
            assert info.value.response.status_code == 500

    backend.run(body)
    assert "must return None or (status, headers, body)" in caplog.text


def test_abort_handshake_from_process_request(backend: Backend) -> None:
    def process_request(connection: Any, request: Request) -> None:
        raise AbortHandshake(http.HTTPStatus.UNAUTHORIZED, {"WWW-Authenticate": "Basic"}, b"who?")

    async def body() -> None:
        async with backend.serve(hello, process_request=process_request) as port:
            with pytest.raises(InvalidStatus) as info:
                await backend.connect(f"ws://127.0.0.1:{port}/")
            response = info.value.response
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Basic"
            assert response.body == b"who?"

    backend.run(body)


def test_open_closed_path(backend: Backend) -> None:
    paths: list[str] = []

    async def handler(ws: Face) -> None:
        with pytest.warns(DeprecationWarning, match=r"connection\.request\.path"):
            paths.append(ws.native.path)
        await ws.send("x")
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(handler) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/p?q")
            with pytest.warns(DeprecationWarning, match=r"state is State\.OPEN"):
                assert ws.native.open
            with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
                assert not ws.native.closed
            assert await ws.recv() == "x"
            await ws.close()
            with pytest.warns(DeprecationWarning, match=r"state is State\.OPEN"):
                assert not ws.native.open
            with pytest.warns(DeprecationWarning, match=r"state is State\.CLOSED"):
                assert ws.native.closed
        assert paths == ["/p?q"]

    backend.run(body)
