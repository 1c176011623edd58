"""The options only the asyncio connect has (max_queue pausing the transport, write_limit, Unix
socket URIs, create_connection's arguments); those of every API: tests/behaviour/test_client.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest
import uvloop

import tether
from tether import InvalidURI
from tether.asyncio.client import parse_unix_uri
from tether.asyncio.server import Server, ServerConnection

from .conftest import ServerFactory, uri_of

BOUND = 5.0
"""Seconds after which a test that waits for something is declared stuck."""


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait, within :data:`BOUND`, until ``condition()`` holds."""
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0.005)


def is_uvloop() -> bool:
    return isinstance(asyncio.get_running_loop(), uvloop.Loop)


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


# Unix sockets


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
