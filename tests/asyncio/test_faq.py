"""Every answer of the client FAQ, run in its own shape against a live local server.

Where the FAQ names ``websockets``, tether must behave the same way.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

import tether
from tether import ConnectionClosed
from tether.asyncio.server import Server, ServerConnection
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.connection import State
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, echo, uri_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "faq" / "shutdown_client.py"


def port_of(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


class RequestLog:
    """A ``process_request`` hook that keeps the headers of every handshake request."""

    def __init__(self) -> None:
        self.headers: list[Headers] = []

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        self.headers.append(request.headers)
        return None

    @property
    def last(self) -> Headers:
        return self.headers[-1]


@pytest.fixture
async def logged_server(start_server: ServerFactory) -> tuple[Server, RequestLog]:
    log = RequestLog()
    server = await start_server(process_request=log)
    return server, log


# Why does the client close the connection prematurely?


async def test_premature_close_task_vs_awaited_work(start_server: ServerFactory) -> None:
    batches: list[list[str | bytes]] = []
    done = asyncio.Event()

    async def collect(ws: ServerConnection) -> None:
        received: list[str | bytes] = []
        batches.append(received)
        try:
            async for message in ws:
                received.append(message)
        finally:
            done.set()

    server = await start_server(collect)

    async def do_some_work(ws: tether.ClientConnection) -> None:
        for index in range(3):
            await ws.send(f"work {index}")
            await asyncio.sleep(0)

    # The wrong shape: the context manager exits before the task has run.
    async with tether.connect(uri_of(server)) as websocket:
        task = asyncio.create_task(do_some_work(websocket))
    with pytest.raises(ConnectionClosed):
        await task
    async with asyncio.timeout(5):
        await done.wait()
    assert batches[0] == []

    # The right shape: the work is finished before the context manager exits.
    done.clear()
    async with tether.connect(uri_of(server)) as websocket:
        await do_some_work(websocket)
    async with asyncio.timeout(5):
        await done.wait()
    assert batches[1] == ["work 0", "work 1", "work 2"]


# How do I access HTTP headers?


async def test_access_http_headers(logged_server: tuple[Server, RequestLog]) -> None:
    server, log = logged_server
    async with tether.connect(uri_of(server)) as websocket:
        assert websocket.request_headers["Host"] == f"127.0.0.1:{port_of(server)}"
        assert websocket.request_headers["Sec-WebSocket-Key"] == log.last["Sec-WebSocket-Key"]
        assert websocket.response_headers["Upgrade"].lower() == "websocket"
        assert "Sec-WebSocket-Accept" in websocket.response_headers
        assert websocket.request is not None
        assert websocket.request.path == "/"
        assert websocket.response is not None
        assert websocket.response.status_code == 101


# How do I set HTTP headers?


async def test_set_origin_extensions_subprotocols(start_server: ServerFactory) -> None:
    log = RequestLog()
    server = await start_server(
        process_request=log, origins=["https://app.tether.test"], subprotocols=["chat.v2"]
    )
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    async with tether.connect(
        uri_of(server),
        origin="https://app.tether.test",
        extensions=[factory],
        subprotocols=["chat.v2", "chat.v1"],
    ) as websocket:
        assert websocket.subprotocol == "chat.v2"
        assert [ext.name for ext in websocket.protocol.extensions] == ["permessage-deflate"]
    assert log.last["Origin"] == "https://app.tether.test"
    assert log.last["Sec-WebSocket-Protocol"] == "chat.v2, chat.v1"
    # The factory given replaces the default one rather than being offered twice.
    assert log.last["Sec-WebSocket-Extensions"] == "permessage-deflate"


async def test_override_user_agent(logged_server: tuple[Server, RequestLog]) -> None:
    server, log = logged_server
    async with tether.connect(uri_of(server)):
        pass
    assert log.last["User-Agent"].startswith("Python/")
    async with tether.connect(uri_of(server), user_agent_header="faq-bot/1.0"):
        pass
    assert log.last["User-Agent"] == "faq-bot/1.0"


async def test_remove_user_agent(start_server: ServerFactory) -> None:
    # Checked on the ServerConnection this time, rather than in process_request.
    seen: list[Headers] = []

    async def record(ws: ServerConnection) -> None:
        seen.append(ws.request_headers)

    server = await start_server(record)
    async with tether.connect(uri_of(server), user_agent_header=None) as websocket:
        await websocket.wait_closed()
    assert "User-Agent" not in seen[0]
    assert "User-Agent" not in websocket.request_headers


@pytest.mark.parametrize("option", ["extra_headers", "additional_headers"])
async def test_set_other_headers(logged_server: tuple[Server, RequestLog], option: str) -> None:
    server, log = logged_server
    headers = {"Authorization": "Bearer 5e3c2e7", "X-Trace": "faq"}
    options: dict[str, Any] = {option: headers}
    async with tether.connect(uri_of(server), **options) as websocket:
        await websocket.send("ping")
        assert await websocket.recv() == "ping"
    assert log.last["Authorization"] == "Bearer 5e3c2e7"
    assert log.last["X-Trace"] == "faq"


# How do I force the IP address that the client connects to?


async def test_force_ip_address(logged_server: tuple[Server, RequestLog]) -> None:
    server, log = logged_server
    port = port_of(server)
    # example.invalid never resolves (RFC 6761): only host= can reach the server.
    async with tether.connect(f"ws://example.invalid:{port}/", host="127.0.0.1") as websocket:
        await websocket.send("hello")
        assert await websocket.recv() == "hello"
    assert log.last["Host"] == f"example.invalid:{port}"


async def test_other_create_connection_arguments(echo_server: Server) -> None:
    port = port_of(echo_server)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    async with tether.connect(f"ws://localhost:{port}/", sock=sock) as websocket:
        await websocket.send("over sock=")
        assert await websocket.recv() == "over sock="
        assert websocket.local_address == sock.getsockname()

    async with tether.connect(
        uri_of(echo_server), local_addr=("127.0.0.1", 0), family=socket.AF_INET
    ) as websocket:
        assert websocket.local_address[0] == "127.0.0.1"
        await websocket.send("over local_addr=")
        assert await websocket.recv() == "over local_addr="


# How do I close a connection?


async def test_close_with_context_manager(start_server: ServerFactory) -> None:
    codes: list[int | None] = []

    async def wait(ws: ServerConnection) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    server = await start_server(wait)
    async with tether.connect(uri_of(server)) as websocket:
        assert websocket.state is State.OPEN
    # The same value as websocket.state, which mypy still takes for OPEN here.
    assert websocket.protocol.state is State.CLOSED
    assert websocket.close_code == 1000
    async with asyncio.timeout(5):
        while not codes:
            await asyncio.sleep(0.01)
    assert codes == [1000]


# How do I reconnect when the connection drops?


async def test_reconnect_when_connection_drops(start_server: ServerFactory) -> None:
    accepted = 0

    async def flaky(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        if accepted <= 2:
            assert ws.transport is not None
            ws.transport.abort()
            return
        await echo(ws)

    server = await start_server(flaky)
    replies: list[str | bytes] = []
    attempts = 0
    async with asyncio.timeout(10):
        async for websocket in tether.connect(uri_of(server), backoff_initial_delay=0.01):
            attempts += 1
            assert attempts <= 10
            try:
                await websocket.send("hello")
                replies.append(await websocket.recv())
            except ConnectionClosed:
                continue
            await websocket.close()
            break
    assert replies == ["hello"]
    assert attempts == 3


async def test_reconnect_when_server_starts_late() -> None:
    # Bound but not listening yet: connecting is refused until serve() listens.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    async def start_later() -> Server:
        await asyncio.sleep(0.1)
        return await tether.serve(echo, sock=listener)

    starting = asyncio.create_task(start_later())
    try:
        async with asyncio.timeout(10):
            async for websocket in tether.connect(
                f"ws://127.0.0.1:{port}/", backoff_initial_delay=0.01, backoff_max_delay=0.05
            ):
                try:
                    await websocket.send("late")
                    assert await websocket.recv() == "late"
                except ConnectionClosed:
                    continue
                await websocket.close()
                break
    finally:
        server = await starting
        server.close()
        await server.wait_closed()


# How do I stop a client that is processing messages in a loop?


async def test_stop_client_on_sigterm(start_server: ServerFactory) -> None:
    opened = asyncio.Event()
    codes: list[int | None] = []

    async def greet(ws: ServerConnection) -> None:
        opened.set()
        await ws.send("welcome")
        await ws.wait_closed()
        codes.append(ws.close_code)

    server = await start_server(greet)
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), uri_of(server), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            await opened.wait()
            # The client prints this once its SIGTERM handler is installed.
            assert (await process.stdout.readline()).startswith(b"connected to ")
            assert await process.stdout.readline() == b"welcome\n"
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
            while not codes:
                await asyncio.sleep(0.01)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert codes == [1000]


# How do I disable TLS/SSL certificate verification?


@pytest.fixture
async def tls_server(start_server: ServerFactory) -> Server:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return await start_server(ssl=context)


async def test_disable_tls_verification(tls_server: Server) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = port_of(tls_server)
    async with tether.connect(f"wss://127.0.0.1:{port}/", ssl=context) as websocket:
        await websocket.send("unverified")
        assert await websocket.recv() == "unverified"


async def test_tls_verification_is_on_by_default(tls_server: Server) -> None:
    # The error of the ssl module comes through unwrapped, as from create_connection.
    with pytest.raises(ssl.SSLCertVerificationError):
        async with tether.connect(f"wss://127.0.0.1:{port_of(tls_server)}/"):
            pass


async def test_server_hostname_with_tls(start_server: ServerFactory) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("chat.tether.test").configure_cert(server_context)
    server = await start_server(ssl=server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with tether.connect(
        f"wss://127.0.0.1:{port_of(server)}/",
        ssl=client_context,
        server_hostname="chat.tether.test",
    ) as websocket:
        await websocket.send("by name")
        assert await websocket.recv() == "by name"
