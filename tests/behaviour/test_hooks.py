"""The server's opening handshake, on every API: origins, subprotocols, hooks, headers, timeouts."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from tests.backends import Backend, Face
from tests.behaviour.raw import exchange
from tether.exceptions import InvalidStatus, NegotiationError
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Request, Response


async def hello(ws: Face) -> None:
    await ws.send(f"hello {ws.subprotocol} {ws.native.username}")


async def refused(backend: Backend, uri: str, **options: Any) -> Response:
    """Connect, expecting a refusal; return the server's response."""
    with pytest.raises(InvalidStatus) as caught:
        await backend.connect(uri, **options)
    return caught.value.response


async def greeted(
    backend: Backend, uri: str, expected: str = "hello None None", **options: Any
) -> Face:
    """Connect, check the handler's greeting and close; return the connection."""
    ws = await backend.connect(uri, **options)
    assert await ws.recv() == expected
    await ws.close()
    return ws


async def http_get(backend: Backend, port: int, path: str) -> bytes:
    """Send a plain HTTP GET; return everything the server sent until it closed."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    return await backend.in_thread(lambda: exchange(port, request))


def hooks_of(backend: Backend, hook: Callable[..., Any]) -> list[Callable[..., Any]]:
    """``hook``, and for the async APIs the same hook as a coroutine function."""
    if backend.api == "sync":
        return [hook]

    async def async_hook(*args: Any) -> Any:
        await backend.sleep(0)
        return hook(*args)

    return [hook, async_hook]


# Origins


def test_origins(backend: Backend) -> None:
    async def body() -> None:
        origins = ["https://a.example", re.compile(r"https://[a-z]+\.b\.example"), None]
        async with backend.serve(hello, origins=origins) as port:
            uri = f"ws://127.0.0.1:{port}/"
            for origin in ["https://a.example", "https://x.b.example", None]:
                await greeted(backend, uri, origin=origin)
            # The pattern must match the whole value.
            for origin in ["https://c.example", "https://x.b.example.evil", "https://a.example:1"]:
                assert (await refused(backend, uri, origin=origin)).status_code == 403
        # Without None in the list, a missing origin is refused.
        async with backend.serve(hello, origins=["https://a.example"]) as port:
            assert (await refused(backend, f"ws://127.0.0.1:{port}/")).status_code == 403

    backend.run(body)


# Subprotocols


def test_subprotocols(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(hello, subprotocols=["chat", "superchat"]) as port:
            uri = f"ws://127.0.0.1:{port}/"
            # The server's preference wins.
            ws = await greeted(backend, uri, "hello chat None", subprotocols=["superchat", "chat"])
            assert ws.subprotocol == "chat"
            ws = await greeted(backend, uri, "hello chat None", subprotocols=["chat.v1", "chat"])
            assert ws.subprotocol == "chat"
            # As websockets: a client that offers none of them is refused with 400.
            for offered in (["other"], None):
                response = await refused(backend, uri, subprotocols=offered)
                assert response.status_code == 400

    backend.run(body)


def test_select_subprotocol(backend: Backend) -> None:
    calls: list[list[str]] = []

    def select(connection: Any, offered: Sequence[str]) -> str | None:
        calls.append(list(offered))
        return "b" if "b" in offered else None

    async def body() -> None:
        async with backend.serve(hello, select_subprotocol=select) as port:
            uri = f"ws://127.0.0.1:{port}/"
            ws = await greeted(backend, uri, "hello b None", subprotocols=["a", "b"])
            assert ws.subprotocol == "b"
            ws = await greeted(backend, uri, subprotocols=["a"])
            assert ws.subprotocol is None
            ws = await greeted(backend, uri)
            assert ws.subprotocol is None
        # A client that offers nothing is asked about too, with an empty list.
        assert calls == [["a", "b"], ["a"], []]

    backend.run(body)


# process_request


def healthz(connection: Any, request: Request) -> Response | None:
    if request.path == "/healthz":
        response: Response = connection.respond(200, "OK\n")
        response.headers["X-Checked"] = "yes"
        return response
    return None


def test_process_request_answers_plain_http(backend: Backend) -> None:
    async def body() -> None:
        for hook in hooks_of(backend, healthz):
            async with backend.serve(hello, process_request=hook) as port:
                data = await http_get(backend, port, "/healthz")
                head, _, content = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert b"\r\nContent-Length: 3\r\n" in head + b"\r\n"
                assert content == b"OK\n"
                response = await refused(backend, f"ws://127.0.0.1:{port}/healthz")
                assert response.status_code == 200
                assert response.headers["X-Checked"] == "yes"
                assert response.body == b"OK\n"
                # Other paths go on to the WebSocket handshake.
                await greeted(backend, f"ws://127.0.0.1:{port}/chat")

    backend.run(body)


def test_process_request_refuses(backend: Backend) -> None:
    def forbid(connection: Any, request: Request) -> Response | None:
        if "X-Token" not in request.headers:
            response: Response = connection.respond(403, "no token")
            response.headers["X-Reason"] = "token"
            return response
        return None

    async def body() -> None:
        async with backend.serve(hello, process_request=forbid) as port:
            uri = f"ws://127.0.0.1:{port}/"
            response = await refused(backend, uri)
            assert response.status_code == 403
            assert response.headers["X-Reason"] == "token"
            assert response.body == b"no token"
            await greeted(backend, uri, additional_headers={"X-Token": "1"})

    backend.run(body)


def test_process_request_sees_the_connection(backend: Backend) -> None:
    seen: list[object] = []

    def look(connection: Any, request: Request) -> None:
        seen.append((connection.request is request, connection.remote_address is not None))

    async def body() -> None:
        async with backend.serve(hello, process_request=look) as port:
            await greeted(backend, f"ws://127.0.0.1:{port}/")
        assert seen == [(True, True)]

    backend.run(body)


# process_response


def test_process_response_alters_the_101(backend: Backend) -> None:
    def add(connection: Any, request: Request, response: Response) -> None:
        response.headers["X-Path"] = request.path

    async def body() -> None:
        for hook in hooks_of(backend, add):
            async with backend.serve(hello, process_response=hook) as port:
                ws = await greeted(backend, f"ws://127.0.0.1:{port}/here")
                assert ws.response_headers["X-Path"] == "/here"

    backend.run(body)


def test_process_response_replaces_the_response(backend: Backend) -> None:
    def replace(connection: Any, request: Request, response: Response) -> Response | None:
        if request.path == "/closed":
            gone: Response = connection.respond(410, "gone")
            return gone
        return None

    async def body() -> None:
        for hook in hooks_of(backend, replace):
            async with backend.serve(hello, process_response=hook) as port:
                response = await refused(backend, f"ws://127.0.0.1:{port}/closed")
                assert response.status_code == 410
                assert response.body == b"gone"
                await greeted(backend, f"ws://127.0.0.1:{port}/open")

    backend.run(body)


def test_process_response_sees_refusals(backend: Backend) -> None:
    statuses: list[int] = []

    def record(connection: Any, request: Request, response: Response) -> None:
        statuses.append(response.status_code)

    async def body() -> None:
        async with backend.serve(hello, process_request=healthz, process_response=record) as port:
            await http_get(backend, port, "/healthz")
            await greeted(backend, f"ws://127.0.0.1:{port}/")
        assert statuses == [200, 101]

    backend.run(body)


# Failing hooks


def broken_request(connection: Any, request: Request) -> None:
    raise RuntimeError("request hook broke")


def broken_response(connection: Any, request: Request, response: Response) -> None:
    raise RuntimeError("response hook broke")


def wrong_type(connection: Any, request: Request) -> str:
    return "not a response"


@pytest.mark.parametrize(
    ("name", "hook"),
    [
        ("process_request", broken_request),
        ("process_response", broken_response),
        ("process_request", wrong_type),
    ],
    ids=["request", "response", "wrong-type"],
)
def test_hook_error_gives_500_and_is_logged(
    backend: Backend, caplog: pytest.LogCaptureFixture, name: str, hook: Callable[..., Any]
) -> None:
    caplog.set_level(logging.ERROR, logger="tether.server")
    hooks = hooks_of(backend, hook)

    async def body() -> None:
        for each in hooks:
            async with backend.serve(hello, **{name: each}) as port:
                response = await refused(backend, f"ws://127.0.0.1:{port}/")
                assert response.status_code == 500

    backend.run(body)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == len(hooks)
    for error in errors:
        assert error.name == "tether.server"
        assert "opening handshake failed" in error.getMessage()
        assert error.exc_info is not None
        assert isinstance(error.exc_info[1], RuntimeError | TypeError)


def test_unsendable_response_drops_the_connection(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_status(connection: Any, request: Request) -> Response:
        return Response(42, "Nope", connection.respond(400, "x").headers)

    caplog.set_level(logging.ERROR, logger="tether.server")

    async def body() -> None:
        async with backend.serve(hello, process_request=bad_status) as port:
            assert await http_get(backend, port, "/") == b""

    backend.run(body)
    assert any("cannot send" in r.getMessage() for r in caplog.records)


# The Server header and respond()


def test_server_header(backend: Backend) -> None:
    async def body() -> None:
        for header, expected in [(None, None), ("Custom/1.0", "Custom/1.0"), ("", USER_AGENT)]:
            options = {} if header == "" else {"server_header": header}
            async with backend.serve(hello, **options) as port:
                ws = await greeted(backend, f"ws://127.0.0.1:{port}/")
                assert ws.response_headers.get("Server") == expected
            # Refusals carry it the same way.
            async with backend.serve(hello, origins=[], **options) as port:
                response = await refused(backend, f"ws://127.0.0.1:{port}/")
                assert response.headers.get("Server") == expected
        assert USER_AGENT.startswith("Python/")

    backend.run(body)


def test_respond(backend: Backend) -> None:
    built: list[Response] = []

    def capture(connection: Any, request: Request) -> Response:
        built.append(connection.respond(418, "short and stout"))
        return built[0]

    async def body() -> None:
        async with backend.serve(hello, process_request=capture, server_header="S") as port:
            response = await refused(backend, f"ws://127.0.0.1:{port}/")
            assert response.status_code == 418
        (sent,) = built
        assert sent.reason_phrase == "I'm a Teapot"
        assert sent.body == b"short and stout"
        assert sent.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert sent.headers["Content-Length"] == "15"
        assert sent.headers["Server"] == "S"

    backend.run(body)


# open_timeout


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET / HTTP/1.1\r\nHost: x\r\n", b"GET / HTTP/1.1\r\nHo"],
    ids=["nothing", "half-request", "half-line"],
)
def test_open_timeout_drops_slow_clients(backend: Backend, sent: bytes) -> None:
    async def body() -> None:
        async with backend.serve(hello, open_timeout=0.05) as port:
            # Dropped without a response.
            assert await backend.in_thread(lambda: exchange(port, sent)) == b""
            # The server goes on.
            await greeted(backend, f"ws://127.0.0.1:{port}/")

    backend.run(body)


def test_open_timeout_none_and_compression_none(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(hello, open_timeout=None) as port:
            ws = await greeted(backend, f"ws://127.0.0.1:{port}/")
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        async with backend.serve(hello, compression=None) as port:
            ws = await greeted(backend, f"ws://127.0.0.1:{port}/")
            assert "Sec-WebSocket-Extensions" not in ws.response_headers

    backend.run(body)


def test_select_subprotocol_gets_the_server_connection(backend: Backend) -> None:
    seen: list[tuple[object, list[str]]] = []

    def select(connection: Any, offered: Sequence[str]) -> str | None:
        seen.append((connection, list(offered)))
        # The connection is the handler's: its request is there already.
        assert connection.request is not None
        if connection.request.path == "/refuse" or not offered:
            raise NegotiationError("not here")
        return offered[-1]

    handled: list[Any] = []

    async def handler(ws: Face) -> None:
        handled.append(ws.native)
        await ws.send(str(ws.subprotocol))

    async def body() -> None:
        async with backend.serve(handler, select_subprotocol=select) as port:
            uri = f"ws://127.0.0.1:{port}"
            ws = await backend.connect(f"{uri}/", subprotocols=["a", "b"])
            assert await ws.recv() == "b"
            await ws.close()
            assert seen == [(handled[0], ["a", "b"])]
            for path, offered in [("/refuse", ["a"]), ("/", None)]:
                with pytest.raises(InvalidStatus) as info:
                    await backend.connect(f"{uri}{path}", subprotocols=offered)
                assert info.value.response.status_code == 400

    backend.run(body)


def test_create_connection(backend: Backend) -> None:
    class Tagged(backend.module("server").ServerConnection):  # type: ignore[misc]
        tag = "custom"

    async def handler(ws: Face) -> None:
        assert isinstance(ws.native, Tagged)
        await ws.send(ws.native.tag)

    async def body() -> None:
        async with backend.serve(handler, create_connection=Tagged) as port:
            ws = await greeted(backend, f"ws://127.0.0.1:{port}/", "custom")
            assert ws.close_code == 1000

    backend.run(body)
