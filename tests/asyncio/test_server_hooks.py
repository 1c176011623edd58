"""The server's opening handshake: origins, subprotocols, hooks, headers, timeouts, limits."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence

import pytest

import tether
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response
from tether.protocol.server import ServerProtocol

from .conftest import ServerFactory, uri_of

TIMEOUT = 5


def port_of(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


async def refused(uri: str, **kwargs: object) -> Response:
    """Connect, expecting a refusal; return the server's response."""
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri, **kwargs)  # type: ignore[arg-type]
    return caught.value.response


async def http_get(port: int, path: str) -> bytes:
    """Send a plain HTTP GET; return everything the server sent until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    async with asyncio.timeout(TIMEOUT):
        data = await reader.read()
    writer.close()
    return data


async def hello(ws: ServerConnection) -> None:
    await ws.send(f"hello {ws.subprotocol} {ws.username}")


# Origins


async def test_origins(start_server: ServerFactory) -> None:
    origins = ["https://a.example", re.compile(r"https://[a-z]+\.b\.example"), None]
    server = await start_server(hello, origins=origins)
    for origin in ["https://a.example", "https://x.b.example", None]:
        async with tether.connect(uri_of(server), origin=origin) as ws:
            assert await ws.recv() == "hello None None"
    # The pattern must match the whole value.
    for origin in ["https://c.example", "https://x.b.example.evil", "https://a.example:1"]:
        response = await refused(uri_of(server), origin=origin)
        assert response.status_code == 403


async def test_origins_without_none_refuse_a_missing_origin(start_server: ServerFactory) -> None:
    server = await start_server(hello, origins=["https://a.example"])
    response = await refused(uri_of(server))
    assert response.status_code == 403


# Subprotocols


async def test_subprotocols(start_server: ServerFactory) -> None:
    server = await start_server(hello, subprotocols=["chat", "superchat"])
    async with tether.connect(uri_of(server), subprotocols=["superchat", "chat"]) as ws:
        assert ws.subprotocol == "chat"  # The server's preference wins.
        assert await ws.recv() == "hello chat None"
    # As websockets: a client that offers none of them is refused with 400.
    for offered in (["other"], None):
        with pytest.raises(InvalidStatus) as info:
            await tether.connect(uri_of(server), subprotocols=offered)
        assert info.value.response.status_code == 400


async def test_select_subprotocol(start_server: ServerFactory) -> None:
    calls: list[list[str]] = []

    def select(connection: ServerProtocol, offered: Sequence[str]) -> str | None:
        calls.append(list(offered))
        return "b" if "b" in offered else None

    server = await start_server(hello, select_subprotocol=select)
    async with tether.connect(uri_of(server), subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b"
        assert await ws.recv() == "hello b None"
    async with tether.connect(uri_of(server), subprotocols=["a"]) as ws:
        assert ws.subprotocol is None
    assert calls == [["a", "b"], ["a"]]


# process_request


def healthz(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    return None


async def async_healthz(connection: ServerConnection, request: Request) -> Response | None:
    await asyncio.sleep(0)
    return healthz(connection, request)


@pytest.mark.parametrize("hook", [healthz, async_healthz], ids=["sync", "async"])
async def test_process_request_answers_plain_http(
    start_server: ServerFactory, hook: object
) -> None:
    server = await start_server(hello, process_request=hook)
    data = await http_get(port_of(server), "/healthz")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 3\r\n" in head + b"\r\n"
    assert body == b"OK\n"
    response = await refused(uri_of(server, "/healthz"))
    assert response.status_code == 200
    assert response.body == b"OK\n"
    # Other paths go on to the WebSocket handshake.
    async with tether.connect(uri_of(server, "/chat")) as ws:
        assert await ws.recv() == "hello None None"


async def test_process_request_refuses(start_server: ServerFactory) -> None:
    def forbid(connection: ServerConnection, request: Request) -> Response | None:
        if "X-Token" not in request.headers:
            response = connection.respond(403, "no token")
            response.headers["X-Reason"] = "token"
            return response
        return None

    server = await start_server(hello, process_request=forbid)
    response = await refused(uri_of(server))
    assert response.status_code == 403
    assert response.headers["X-Reason"] == "token"
    assert response.body == b"no token"
    async with tether.connect(uri_of(server), additional_headers={"X-Token": "1"}) as ws:
        assert await ws.recv() == "hello None None"


async def test_process_request_sees_the_connection(start_server: ServerFactory) -> None:
    seen: list[object] = []

    def look(connection: ServerConnection, request: Request) -> None:
        seen.append((connection.request is request, connection.remote_address is not None))

    server = await start_server(hello, process_request=look)
    async with tether.connect(uri_of(server)) as ws:
        await ws.recv()
    assert seen == [(True, True)]


# process_response


def add_header(connection: ServerConnection, request: Request, response: Response) -> None:
    response.headers["X-Added"] = "sync"


async def add_header_async(
    connection: ServerConnection, request: Request, response: Response
) -> None:
    await asyncio.sleep(0)
    response.headers["X-Added"] = "async"


@pytest.mark.parametrize(
    ("hook", "value"), [(add_header, "sync"), (add_header_async, "async")], ids=["sync", "async"]
)
async def test_process_response_alters_the_101(
    start_server: ServerFactory, hook: object, value: str
) -> None:
    server = await start_server(hello, process_response=hook)
    async with tether.connect(uri_of(server)) as ws:
        assert ws.response_headers["X-Added"] == value
        assert await ws.recv() == "hello None None"


async def test_process_response_replaces_the_response(start_server: ServerFactory) -> None:
    async def replace(
        connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if request.path == "/closed":
            return connection.respond(410, "gone")
        return None

    server = await start_server(hello, process_response=replace)
    response = await refused(uri_of(server, "/closed"))
    assert response.status_code == 410
    assert response.body == b"gone"
    async with tether.connect(uri_of(server, "/open")) as ws:
        assert await ws.recv() == "hello None None"


async def test_process_response_sees_refusals(start_server: ServerFactory) -> None:
    statuses: list[int] = []

    def record(connection: ServerConnection, request: Request, response: Response) -> None:
        statuses.append(response.status_code)

    server = await start_server(hello, process_request=healthz, process_response=record)
    await http_get(port_of(server), "/healthz")
    async with tether.connect(uri_of(server)) as ws:
        await ws.recv()
    assert statuses == [200, 101]


def broken_request(connection: ServerConnection, request: Request) -> None:
    raise RuntimeError("request hook broke")


async def broken_response(
    connection: ServerConnection, request: Request, response: Response
) -> None:
    raise RuntimeError("response hook broke")


def wrong_type(connection: ServerConnection, request: Request) -> str:
    return "not a response"


@pytest.mark.parametrize(
    "options",
    [
        {"process_request": broken_request},
        {"process_response": broken_response},
        {"process_request": wrong_type},
    ],
    ids=["request", "response", "wrong-type"],
)
async def test_hook_error_gives_500_and_is_logged(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture, options: dict[str, object]
) -> None:
    caplog.set_level(logging.ERROR, logger="tether.server")
    server = await start_server(hello, **options)
    response = await refused(uri_of(server))
    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "tether.server"
    assert "opening handshake failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None


async def test_unsendable_response_drops_the_connection(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def bad_status(connection: ServerConnection, request: Request) -> Response:
        return Response(42, "Nope", connection.respond(400, "x").headers)

    caplog.set_level(logging.ERROR, logger="tether.server")
    server = await start_server(hello, process_request=bad_status)
    assert await http_get(port_of(server), "/") == b""
    assert any("cannot send" in r.getMessage() for r in caplog.records)


# Server header


async def test_server_header(start_server: ServerFactory) -> None:
    default = await start_server(hello)
    custom = await start_server(hello, server_header="Custom/1.0")
    absent = await start_server(hello, server_header=None)
    async with tether.connect(uri_of(default)) as ws:
        assert ws.response_headers["Server"].startswith("Python/")
    async with tether.connect(uri_of(custom)) as ws:
        assert ws.response_headers["Server"] == "Custom/1.0"
    async with tether.connect(uri_of(absent)) as ws:
        assert "Server" not in ws.response_headers
    # Refusals carry it the same way.
    absent_refusing = await start_server(hello, server_header=None, origins=[])
    response = await refused(uri_of(absent_refusing))
    assert "Server" not in response.headers
    custom_refusing = await start_server(hello, server_header="Custom/1.0", origins=[])
    response = await refused(uri_of(custom_refusing))
    assert response.headers["Server"] == "Custom/1.0"


# respond


async def test_respond(start_server: ServerFactory) -> None:
    built: list[Response] = []

    def capture(connection: ServerConnection, request: Request) -> Response:
        built.append(connection.respond(418, "short and stout"))
        return built[0]

    server = await start_server(hello, process_request=capture, server_header="S")
    response = await refused(uri_of(server))
    assert response.status_code == 418
    (sent,) = built
    assert sent.reason_phrase == "I'm a Teapot"
    assert sent.body == b"short and stout"
    assert sent.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert sent.headers["Content-Length"] == "15"
    assert sent.headers["Server"] == "S"


# open_timeout


@pytest.mark.parametrize(
    "sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half-request"]
)
async def test_open_timeout_drops_slow_clients(start_server: ServerFactory, sent: bytes) -> None:
    server = await start_server(hello, open_timeout=0.05)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    writer.write(sent)
    async with asyncio.timeout(TIMEOUT):
        assert await reader.read() == b""  # Dropped without a response.
    writer.close()


async def test_open_timeout_covers_slow_hooks(start_server: ServerFactory) -> None:
    async def stall(connection: ServerConnection, request: Request) -> None:
        await asyncio.sleep(TIMEOUT * 2)

    server = await start_server(hello, open_timeout=0.05, process_request=stall)
    with pytest.raises(tether.InvalidMessage):
        async with asyncio.timeout(TIMEOUT):
            await tether.connect(uri_of(server))


async def test_open_timeout_none(start_server: ServerFactory) -> None:
    server = await start_server(hello, open_timeout=None)
    async with tether.connect(uri_of(server)) as ws:
        assert await ws.recv() == "hello None None"


# Compression and limits


async def test_compression_default_is_deflate(start_server: ServerFactory) -> None:
    server = await start_server(hello)
    async with tether.connect(uri_of(server)) as ws:
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]


async def test_compression_none(start_server: ServerFactory) -> None:
    server = await start_server(hello, compression=None)
    async with tether.connect(uri_of(server)) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response_headers
        assert await ws.recv() == "hello None None"


async def test_unsupported_compression() -> None:
    with pytest.raises(ValueError, match="unsupported compression"):
        tether.serve(hello, "127.0.0.1", 0, compression="gzip")  # type: ignore[arg-type]
