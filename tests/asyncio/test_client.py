"""Every option of :func:`tether.connect`, against live local servers."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import uvloop

import tether
from tether import ConnectionClosedError, InvalidStatus, InvalidURI
from tether.asyncio.client import ClientConnection, parse_unix_uri, unix_connect
from tether.asyncio.server import Server, ServerConnection
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, raw_tcp_server, uri_of

BOUND = 5.0
"""Seconds after which a test that waits for something is declared stuck."""


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait, within :data:`BOUND`, until ``condition()`` holds."""
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.005)


def is_uvloop() -> bool:
    return isinstance(asyncio.get_running_loop(), uvloop.Loop)


async def deaf(ws: ServerConnection) -> None:
    """Stop reading, so that pings and close frames stay unanswered."""
    assert ws.transport is not None
    ws.transport.pause_reading()
    await ws.wait_closed()


# compression, extensions, subprotocols


async def test_compression_deflate_is_the_default(echo_server: Server) -> None:
    async with tether.connect(uri_of(echo_server)) as ws:
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        await ws.send("a" * 10_000)
        assert await ws.recv() == "a" * 10_000


async def test_compression_none_disables_it(echo_server: Server) -> None:
    async with tether.connect(uri_of(echo_server), compression=None) as ws:
        assert ws.protocol.extensions == []
        assert "Sec-WebSocket-Extensions" not in ws.request_headers
        await ws.send("a" * 10_000)
        assert await ws.recv() == "a" * 10_000


def test_unsupported_compression() -> None:
    with pytest.raises(ValueError, match="unsupported compression"):
        tether.connect("ws://localhost/", compression="br")  # type: ignore[arg-type]


async def test_subprotocol_negotiated(start_server: ServerFactory) -> None:
    server = await start_server(subprotocols=["v2.chat", "v1.chat"])
    async with tether.connect(uri_of(server), subprotocols=["v1.chat", "v2.chat"]) as ws:
        # The server's preference wins.
        assert ws.subprotocol == "v2.chat"
    async with tether.connect(uri_of(server), subprotocols=["v1.chat"]) as ws:
        assert ws.subprotocol == "v1.chat"
    # As websockets: a server with subprotocols refuses a client without one.
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server))
    assert info.value.response.status_code == 400
    assert info.value.response.body == (
        b"Failed to open a WebSocket connection: missing subprotocol.\n"
    )


# open_timeout


async def test_open_timeout_with_a_silent_server() -> None:
    lost = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # Returns at EOF: the client gave up and closed.
        lost.set()
        writer.close()

    async with raw_tcp_server(silent) as port:
        with pytest.raises(TimeoutError):
            await tether.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.05)
        async with asyncio.timeout(BOUND):
            await lost.wait()


async def test_open_timeout_none_waits_for_a_slow_server(start_server: ServerFactory) -> None:
    async def slow(connection: ServerConnection, request: Request) -> None:
        await asyncio.sleep(0.05)

    server = await start_server(process_request=slow)
    async with tether.connect(uri_of(server), open_timeout=None) as ws:
        await ws.send("late")
        assert await ws.recv() == "late"


# ping_interval, ping_timeout, close_timeout


async def test_ping_interval_sends_keepalive_pings(start_server: ServerFactory) -> None:
    server = await start_server(ping_interval=None)
    async with tether.connect(uri_of(server), ping_interval=0.01) as ws:
        assert ws.ping_interval == 0.01
        await eventually(lambda: ws.latency > 0)
    async with tether.connect(uri_of(server), ping_interval=None) as ws:
        assert ws.ping_interval is None
        await asyncio.sleep(0.05)
        assert ws.latency == 0


async def test_ping_timeout_fails_the_connection(start_server: ServerFactory) -> None:
    server = await start_server(deaf, ping_interval=None, close_timeout=0.05)
    async with tether.connect(uri_of(server), ping_interval=0.01, ping_timeout=0.02) as ws:
        assert ws.ping_timeout == 0.02
        with pytest.raises(ConnectionClosedError) as caught:
            async with asyncio.timeout(BOUND):
                await ws.recv()
    assert caught.value.sent is not None
    assert caught.value.sent.code == 1011
    assert caught.value.rcvd is None


async def test_close_timeout_bounds_the_closing_handshake(start_server: ServerFactory) -> None:
    server = await start_server(deaf, ping_interval=None, close_timeout=0.05)
    ws = await tether.connect(uri_of(server), close_timeout=0.05)
    assert ws.close_timeout == 0.05
    async with asyncio.timeout(BOUND):
        await ws.close()
    # No close frame came back: the client dropped TCP once the timeout ran out.
    assert ws.close_code == 1006


# max_size, max_queue, write_limit


async def test_max_queue_pauses_reading(start_server: ServerFactory) -> None:
    async def send_three(ws: ServerConnection) -> None:
        for index in range(3):
            await ws.send(f"message {index}")
        await ws.wait_closed()

    server = await start_server(send_three)
    async with tether.connect(uri_of(server), max_queue=2) as ws:
        transport = ws.transport
        assert transport is not None
        await eventually(lambda: not transport.is_reading())
        assert [await ws.recv() for _ in range(3)] == ["message 0", "message 1", "message 2"]
        assert transport.is_reading()
    async with tether.connect(uri_of(server), max_queue=None) as ws:
        assert [await ws.recv() for _ in range(3)] == ["message 0", "message 1", "message 2"]


async def test_write_limit(echo_server: Server) -> None:
    async with tether.connect(uri_of(echo_server), write_limit=4096) as ws:
        assert ws.write_limit == 4096
        assert ws.transport is not None
        assert ws.transport.get_write_buffer_limits()[1] == 4096
        # A message far over the limit waits for the buffer to drain, and arrives whole.
        await ws.send(b"\x02" * 1_000_000)
        assert await ws.recv() == b"\x02" * 1_000_000


# logger


class Adapter(logging.LoggerAdapter[logging.Logger]):
    """A user's adapter that adds a field of its own."""


@pytest.mark.parametrize("kind", ["logger", "adapter", "name"])
async def test_logger(echo_server: Server, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    name = f"app.websocket.{kind}"
    caplog.set_level(logging.DEBUG, logger=name)
    option: logging.Logger | logging.LoggerAdapter[Any] | str
    if kind == "logger":
        option = logging.getLogger(name)
    elif kind == "adapter":
        option = Adapter(logging.getLogger(name), {"tenant": "blue"})
    else:
        option = name
    async with tether.connect(uri_of(echo_server), logger=option) as ws:
        pass
    records = [record for record in caplog.records if record.name == name]
    assert records
    assert all(getattr(record, "websocket", None) is ws for record in records)
    assert any("connected" in record.getMessage() for record in records)
    if kind == "adapter":
        assert all(getattr(record, "tenant", None) == "blue" for record in records)


async def test_default_logger(echo_server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tether.client")
    async with tether.connect(uri_of(echo_server)):
        pass
    assert any(record.name == "tether.client" for record in caplog.records)


# Failures of the handshake and of the arguments


async def test_invalid_status_carries_the_response(start_server: ServerFactory) -> None:
    def forbid(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(403, "No token, no entry.\n")

    server = await start_server(process_request=forbid)
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri_of(server))
    response = caught.value.response
    assert response.status_code == 403
    assert response.body == b"No token, no entry.\n"
    assert "403" in str(caught.value)


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost/",
        "localhost:8000",
        "ws://",
        "ws://localhost:0/",
        "ws://localhost:65536/",
        "ws://local host/",
        "ws://localhost/#fragment",
        "ws+unix://%00/",
        "ws+unix://%FF/",
        "ws+unix://%2Ftmp%2Fa b.sock/",
        "ws+unix:///no-socket-path",
        "ws+tcp://localhost/",
    ],
)
def test_invalid_uri(uri: str) -> None:
    with pytest.raises(InvalidURI):
        tether.connect(uri)


async def test_invalid_uri_is_raised_on_await() -> None:
    with pytest.raises(InvalidURI):
        await tether.connect("https://localhost/")


async def test_await_then_close(echo_server: Server) -> None:
    ws = await tether.connect(uri_of(echo_server))
    assert isinstance(ws, ClientConnection)
    await ws.send("awaited")
    assert await ws.recv() == "awaited"
    await ws.close()
    assert ws.close_code == 1000
    await ws.close()  # Closing twice is harmless.


@pytest.mark.parametrize(
    ("uri", "option"),
    [
        ("ws://localhost/", ssl.create_default_context()),
        ("ws://localhost/", True),
        ("wss://localhost/", False),
    ],
)
def test_ssl_that_does_not_fit_the_uri(uri: str, option: ssl.SSLContext | bool) -> None:
    with pytest.raises(ValueError, match="ssl"):
        tether.connect(uri, ssl=option)


def test_ssl_false_with_ws_is_fine() -> None:
    assert tether.connect("ws://localhost/", ssl=False).ssl is False


def test_extra_and_additional_headers_together() -> None:
    with pytest.raises(TypeError):
        tether.connect("ws://localhost/", extra_headers={"A": "1"}, additional_headers={"B": "2"})


async def test_headers_as_pairs_and_headers(start_server: ServerFactory) -> None:
    seen: list[Headers] = []

    def record(connection: ServerConnection, request: Request) -> None:
        seen.append(request.headers)

    server = await start_server(process_request=record)
    async with tether.connect(uri_of(server), additional_headers=[("X-A", "1"), ("X-A", "2")]):
        pass
    async with tether.connect(uri_of(server), extra_headers=Headers({"X-B": "3"})):
        pass
    assert seen[0].get_all("X-A") == ["1", "2"]
    assert seen[1]["X-B"] == "3"


# Unix sockets


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "tether.sock")


class PathLog:
    """A handler that echoes and keeps the request path and Host of each connection."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.requests.append((ws.request.path, ws.request_headers["Host"]))
        async for message in ws:
            await ws.send(message)


async def test_unix_true_with_path(start_server: ServerFactory, socket_path: str) -> None:
    log = PathLog()
    await start_server(log, unix=True, path=socket_path)
    async with tether.connect("ws://localhost/chat", unix=True, path=socket_path) as ws:
        await ws.send("over a unix socket")
        assert await ws.recv() == "over a unix socket"
    assert log.requests == [("/chat", "localhost")]


async def test_ws_unix_uri(start_server: ServerFactory, socket_path: str) -> None:
    log = PathLog()
    await start_server(log, unix=True, path=socket_path)
    uri = f"ws+unix://{quote(socket_path, safe='')}/chat?room=1"
    async with tether.connect(uri) as ws:
        await ws.send("ws+unix")
        assert await ws.recv() == "ws+unix"
    # Without a target, the request asks for "/".
    async with tether.connect(f"ws+unix://{quote(socket_path, safe='')}") as ws:
        pass
    # An empty authority leaves the socket path to path=.
    async with tether.connect("ws+unix:///empty-authority", path=socket_path) as ws:
        pass
    assert log.requests == [
        ("/chat?room=1", "localhost"),
        ("/", "localhost"),
        ("/empty-authority", "localhost"),
    ]


async def test_unix_connect(start_server: ServerFactory, socket_path: str) -> None:
    log = PathLog()
    await start_server(log, unix=True, path=socket_path)
    async with unix_connect(socket_path) as ws:
        await ws.send("unix_connect")
        assert await ws.recv() == "unix_connect"
    async with unix_connect(socket_path, "ws://tether.test/api") as ws:
        pass
    assert log.requests == [("/", "localhost"), ("/api", "tether.test")]


async def test_unix_socket_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await tether.connect(f"ws+unix://{quote(str(tmp_path / 'absent.sock'), safe='')}/")


def test_socket_path_given_twice() -> None:
    with pytest.raises(ValueError, match="not both"):
        tether.connect("ws+unix://%2Ftmp%2Fa.sock/", path="/tmp/b.sock")


@pytest.mark.parametrize(
    ("uri", "secure", "socket", "target"),
    [
        ("ws+unix://%2Frun%2Fapp.sock/chat?room=1", False, "/run/app.sock", "/chat?room=1"),
        ("ws+unix://%2Frun%2Fapp.sock?room=1", False, "/run/app.sock", "/?room=1"),
        ("WS+UNIX://relative.sock", False, "relative.sock", "/"),
        ("ws+unix://%2Ftmp%2Fa%20b%C3%A9.sock/", False, "/tmp/a b\u00e9.sock", "/"),
        ("wss+unix://%2Frun%2Fapp.sock/a%20b", True, "/run/app.sock", "/a%20b"),
        ("ws+unix:///chat", False, None, "/chat"),
    ],
)
def test_parse_unix_uri(uri: str, secure: bool, socket: str | None, target: str) -> None:
    parsed, socket_path = parse_unix_uri(uri)
    assert socket_path == socket
    assert parsed.secure is secure
    assert parsed.resource_name == target
    assert parsed.host_header == "localhost"


def test_parse_unix_uri_refuses_other_schemes() -> None:
    with pytest.raises(InvalidURI):
        parse_unix_uri("ws://localhost/")
    with pytest.raises(InvalidURI, match="fragment"):
        parse_unix_uri("ws+unix://%2Frun%2Fapp.sock/#here")


# Arguments of create_connection


async def test_happy_eyeballs_delay_reaches_create_connection(echo_server: Server) -> None:
    port = next(iter(echo_server.sockets)).getsockname()[1]
    families = {
        info[0]
        for info in await asyncio.get_running_loop().getaddrinfo(
            "localhost", port, type=socket.SOCK_STREAM
        )
    }
    assert socket.AF_INET in families
    # Where localhost also means ::1, which refuses here, the client falls back on 127.0.0.1.
    connecting = tether.connect(f"ws://localhost:{port}/", happy_eyeballs_delay=0.01, interleave=1)
    if is_uvloop():
        # uvloop's create_connection has no such argument: its TypeError shows it got there.
        with pytest.raises(TypeError, match="happy_eyeballs_delay"):
            await connecting
        return
    async with connecting as ws:
        await ws.send("eyeballs")
        assert await ws.recv() == "eyeballs"
        assert ws.remote_address[0] == "127.0.0.1"


async def test_port_overrides_the_uri(echo_server: Server) -> None:
    port = next(iter(echo_server.sockets)).getsockname()[1]
    # Port 9 (discard) in the URI would be refused: port= sends the client elsewhere.
    async with tether.connect("ws://127.0.0.1:9/", port=port) as ws:
        assert ws.request_headers["Host"] == "127.0.0.1:9"
        assert ws.remote_address[1] == port


async def test_unknown_argument_reaches_create_connection(echo_server: Server) -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        await tether.connect(uri_of(echo_server), no_such_option=True)
