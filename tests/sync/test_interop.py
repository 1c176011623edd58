"""tether.sync against other implementations: websockets, websocket-client, tether's asyncio API."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
import websockets.sync.client
import websockets.sync.server

import tether
import tether.asyncio.server
from tether.exceptions import ConnectionClosed
from tether.sync import Server, ServerConnection, connect

from .conftest import TIMEOUT, ServerFactory, start_thread, uri_of

SIZE = 3 * 1024 * 1024
MESSAGES: list[str | bytes] = ["", "text", "é" * 1000, b"", b"\x00\xff" * 500, os.urandom(SIZE)]


def closing_echo(ws: ServerConnection) -> None:
    """Echo messages; on the message "close <code>", close with that code."""
    for message in ws:
        if isinstance(message, str) and message.startswith("close "):
            ws.close(int(message.split()[1]), "server says bye")
            return
        ws.send(message)


@pytest.fixture(params=["deflate", None])
def compression(request: pytest.FixtureRequest) -> str | None:
    value: str | None = request.param
    return value


# tether.sync client against websockets' threading server


@pytest.fixture
def websockets_server(compression: str | None) -> Iterator[str]:
    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        for message in ws:
            if message == "close 4002":
                ws.close(4002, "server says bye")
                return
            ws.send(message)

    server = websockets.sync.server.serve(
        handler, "127.0.0.1", 0, max_size=None, compression=compression
    )
    thread = start_thread(server.serve_forever)
    yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    server.shutdown()
    thread.join(TIMEOUT)


def test_client_against_websockets(websockets_server: str, compression: Any) -> None:
    with connect(websockets_server, max_size=None, compression=compression) as ws:
        converse_with_closing_echo(ws, 4002, ConnectionClosed)


def converse_with_closing_echo(ws: Any, code: int, closed: type[Exception]) -> None:
    """Exchange every kind of message with an echo server, then have it close with ``code``.

    The server closes with "server says bye" when sent ``close <code>``, as
    :func:`closing_echo` does. ``ws`` is a threading client, tether's or
    websockets' (whose interface is the same), ``closed`` the exception its
    ``recv`` raises once closed.
    """
    for message in MESSAGES:
        ws.send(message)
        assert ws.recv(timeout=TIMEOUT) == message
    ws.send(["frag", "mented"])
    assert ws.recv(timeout=TIMEOUT) == "fragmented"
    assert ws.ping().wait(TIMEOUT)
    ws.send(f"close {code}")
    with pytest.raises(closed):
        ws.recv(timeout=TIMEOUT)
    assert ws.close_code == code
    assert ws.close_reason == "server says bye"


def test_client_closes_websockets(websockets_server: str) -> None:
    ws = connect(websockets_server)
    ws.close(4003, "client says bye")
    assert ws.close_code == 4003  # websockets echoes the close frame


# websockets' threading client against tether.sync's server


def test_websockets_client(start_server: ServerFactory, compression: Any) -> None:
    server = start_server(closing_echo, max_size=None, compression=compression)
    with websockets.sync.client.connect(
        uri_of(server), max_size=None, compression=compression, open_timeout=TIMEOUT
    ) as ws:
        converse_with_closing_echo(ws, 4004, websockets.exceptions.ConnectionClosed)


def test_websockets_client_closes(start_server: ServerFactory) -> None:
    codes: list[int | None] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        for _ in ws:
            pass
        codes.append(ws.close_code)
        done.set()

    server = start_server(handler)
    with websockets.sync.client.connect(uri_of(server), open_timeout=TIMEOUT) as ws:
        ws.close(1001)
    assert done.wait(TIMEOUT)
    assert codes == [1001]


# websocket-client against tether.sync's server


def test_websocket_client(start_server: ServerFactory) -> None:
    server = start_server(closing_echo, max_size=None)
    ws = websocket.create_connection(uri_of(server), timeout=TIMEOUT)
    try:
        ws.send("text")
        assert ws.recv() == "text"
        ws.send_binary(b"\x01\x02")
        assert ws.recv() == b"\x01\x02"
        big = os.urandom(SIZE)
        ws.send_binary(big)
        assert ws.recv() == big
        ws.send("close 4005")
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 4005
    finally:
        ws.close()
        # After the server's close, websocket-client's close() leaves the
        # socket open: shutdown() closes it. Until then, the server waits for
        # the client's end of TCP, as RFC 6455 says, for close_timeout.
        ws.shutdown()  # type: ignore[no-untyped-call]


# tether's asyncio API and tether.sync, both ways


def run_async(coroutine: Callable[[], Any]) -> Any:
    """Run an asyncio coroutine function in a fresh loop in this thread, bounded."""

    async def bounded() -> Any:
        async with asyncio.timeout(TIMEOUT):
            return await coroutine()

    return asyncio.run(bounded())


def test_asyncio_client_against_sync_server(start_server: ServerFactory, compression: Any) -> None:
    server = start_server(closing_echo, max_size=None, compression=compression)

    async def client() -> tuple[int | None, str | None]:
        async with tether.connect(uri_of(server), max_size=None, compression=compression) as ws:
            for message in MESSAGES:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"
            await ws.send("close 4006")
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code, ws.close_reason

    assert run_async(client) == (4006, "server says bye")


def test_sync_client_against_asyncio_server(compression: Any) -> None:
    ready = threading.Event()
    stop: list[Callable[[], object]] = []
    address: list[str] = []
    closes: list[int | None] = []

    async def handler(ws: tether.asyncio.server.ServerConnection) -> None:
        try:
            async for message in ws:
                if message == "close 4007":
                    await ws.close(4007, "asyncio says bye")
                    return
                await ws.send(message)
        finally:
            closes.append(ws.close_code)

    async def main() -> None:
        async with tether.serve(
            handler, "127.0.0.1", 0, max_size=None, compression=compression
        ) as server:
            address.append(uri_of_asyncio(server))
            finished = asyncio.Event()
            loop = asyncio.get_running_loop()
            stop.append(lambda: loop.call_soon_threadsafe(finished.set))
            ready.set()
            async with asyncio.timeout(TIMEOUT * 3):
                await finished.wait()

    thread = start_thread(lambda: asyncio.run(main()))
    try:
        assert ready.wait(TIMEOUT)
        with connect(address[0], max_size=None, compression=compression) as ws:
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
            ws.send([b"frag", b"mented"])
            assert ws.recv(timeout=TIMEOUT) == b"fragmented"
            assert ws.ping().wait(TIMEOUT)
            ws.send("close 4007")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 4007
            assert ws.close_reason == "asyncio says bye"
        ws2 = connect(address[0])
        ws2.close(4008, "sync says bye")
        assert ws2.close_code == 4008
    finally:
        if stop:
            stop[0]()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert sorted(code or 0 for code in closes) == [4007, 4008]


def uri_of_asyncio(server: tether.asyncio.server.Server) -> str:
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return f"ws://{host}:{port}/"


def test_sync_server_type(start_server: ServerFactory) -> None:
    assert isinstance(start_server(), Server)
