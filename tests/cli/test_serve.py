"""``tether serve``: its endpoints, its page, its banner, and stopping it."""

from __future__ import annotations

import asyncio
import http.client
import signal
import socket
import subprocess

import pytest

import tether
from tests.cli.conftest import TETHER, WAIT, DemoServer, start_demo_server, stop_demo_server


def test_banner_gives_the_page_and_the_terminal_commands(demo_server: DemoServer) -> None:
    banner = demo_server.banner
    assert f"http://127.0.0.1:{demo_server.port}/" in banner
    assert f"ws://127.0.0.1:{demo_server.port}/chat" in banner
    assert f"ws://127.0.0.1:{demo_server.port}/echo" in banner


def test_page_is_served_over_http(demo_server: DemoServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", demo_server.port, timeout=WAIT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert int(response.getheader("Content-Length", "0")) == len(body.encode())
    for element in ('id="messages"', 'id="input"', 'id="send"', "new WebSocket("):
        assert element in body


async def test_websocket_request_for_the_page_is_refused(demo_server: DemoServer) -> None:
    with pytest.raises(tether.InvalidStatus) as raised:
        await tether.connect(demo_server.uri("/"), open_timeout=WAIT)
    assert raised.value.response.status_code == 404


async def test_echo_endpoint(demo_server: DemoServer) -> None:
    async with tether.connect(demo_server.uri("/echo"), open_timeout=WAIT) as ws:
        await ws.send("text")
        assert await ws.recv(timeout=WAIT) == "text"
        await ws.send(b"\x00bytes")
        assert await ws.recv(timeout=WAIT) == b"\x00bytes"


async def test_chat_broadcasts_to_everyone_in_the_room(demo_server: DemoServer) -> None:
    async with (
        tether.connect(demo_server.uri("/chat"), open_timeout=WAIT) as alice,
        tether.connect(demo_server.uri("/chat"), open_timeout=WAIT) as bob,
    ):
        # A first round trip proves both joined before the message that counts.
        await bob.send("bob joined")
        assert await alice.recv(timeout=WAIT) == "bob joined"
        assert await bob.recv(timeout=WAIT) == "bob joined"
        await alice.send("hello, room")
        assert await bob.recv(timeout=WAIT) == "hello, room"
        assert await alice.recv(timeout=WAIT) == "hello, room"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_the_server_cleanly(signum: int) -> None:
    server = start_demo_server()
    try:
        ws = await tether.connect(server.uri("/echo"), open_timeout=WAIT)
        status, rest = await asyncio.to_thread(stop_demo_server, server, signum)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(WAIT)
    assert status == 0
    assert rest == "Server stopped.\n"
    await asyncio.wait_for(ws.wait_closed(), WAIT)
    assert ws.close_code == 1001


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [*TETHER, "serve", "--port", str(port)],
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"tether: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
