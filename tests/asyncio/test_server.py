"""The asyncio server: lifecycle, listening options and handler semantics."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

import tether
from tether.asyncio.server import Server, ServerConnection, serve
from tether.exceptions import ConnectionClosed
from tether.protocol.frames import Opcode, parse_frame
from tether.protocol.handshake import generate_key

from .conftest import ServerFactory, echo, uri_of

TIMEOUT = 5  # Bounds every wait, so that a bug fails a test instead of hanging it.


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def port_of(server: Server, family: socket.AddressFamily = socket.AF_INET) -> int:
    for sock in server.sockets:
        if sock.family == family:
            port: int = sock.getsockname()[1]
            return port
    raise AssertionError(f"no {family.name} socket")


async def raw_handshake(
    port: int, path: str = "/"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a WebSocket by hand; return the streams and the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {generate_key()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, head


# Lifecycle


async def test_async_with_and_serve_forever_cancelled() -> None:
    async with serve(echo, "127.0.0.1", 0) as server:
        task = asyncio.create_task(server.serve_forever())
        async with tether.connect(uri_of(server)) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with asyncio.timeout(TIMEOUT):
                await ws.wait_closed()
        assert ws.close_code == 1001
        assert not server.is_serving()


async def test_serve_forever_returns_when_closed() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0)
    assert not task.done()
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await task
    assert task.result() is None


async def test_await_serve() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    try:
        assert server.is_serving()
        assert server.get_loop() is asyncio.get_running_loop()
        assert len(list(server.sockets)) == 1
        async with tether.connect(uri_of(server)) as ws:
            await ws.send(b"bytes")
            assert await ws.recv() == b"bytes"
    finally:
        server.close()
        await server.wait_closed()
    assert not server.is_serving()
    # Closing twice is harmless.
    server.close()
    await server.wait_closed()


async def test_server_as_context_manager() -> None:
    server = await serve(echo, "127.0.0.1", 0)
    async with server as same:
        assert same is server
        assert server.is_serving()
    assert not server.is_serving()


async def test_start_serving_later() -> None:
    server = await serve(echo, "127.0.0.1", 0, start_serving=False)
    try:
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        async with tether.connect(uri_of(server)) as ws:
            await ws.send("late")
            assert await ws.recv() == "late"
    finally:
        server.close()
        await server.wait_closed()


async def test_close_waits_at_most_close_timeout(start_server: ServerFactory) -> None:
    # A client that never answers the close frame is dropped after close_timeout.
    server = await start_server(close_timeout=0.05)
    reader, writer, head = await raw_handshake(port_of(server))
    assert head.startswith(b"HTTP/1.1 101 ")
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
        data = await reader.read()  # Up to EOF: the server dropped TCP.
    parsed = parse_frame(data, 0, expect_mask=False)
    assert parsed is not None
    frame, _ = parsed
    assert frame.opcode is Opcode.CLOSE
    assert frame.data[:2] == (1001).to_bytes(2, "big")
    writer.close()


async def test_close_drops_connection_before_its_request(start_server: ServerFactory) -> None:
    server = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    async with asyncio.timeout(TIMEOUT):
        while not server._connections:  # Accepted, but no request sent yet.
            await asyncio.sleep(0.01)
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
        assert await reader.read() == b""
    writer.close()


async def _no_change(connection: ServerConnection, request: object) -> None:
    return None


@pytest.mark.parametrize("hooks", [{}, {"process_request": _no_change}])
async def test_frames_sent_with_the_request_are_handled(
    start_server: ServerFactory, hooks: dict[str, Any]
) -> None:
    # A client should wait for the response, but one that sends a message in
    # the same packet as its request must not wait for more bytes to get it
    # handled. Without hooks the server answers at once, with them in a task.
    async def reply(connection: ServerConnection) -> None:
        await connection.send("got " + str(await connection.recv()))

    server = await start_server(reply, **hooks)
    port = port_of(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {generate_key()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        + bytes([0x81, 0x82, 0, 0, 0, 0])
        + b"hi"
    )
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await reader.readexactly(8) == b"\x81\x06got hi"
    writer.close()


async def test_wait_closed_waits_for_handlers(start_server: ServerFactory) -> None:
    finished: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed:
            await asyncio.sleep(0.01)  # Clean up after the connection closed.
            finished.append("cleaned")

    server = await start_server(handler)
    ws = await tether.connect(uri_of(server))
    server.close()
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
    assert finished == ["cleaned"]
    assert ws.close_code == 1001


# Listening


async def test_host_none_listens_on_ipv4_and_ipv6() -> None:
    async with serve(echo, None, 0) as server:
        families = {sock.family for sock in server.sockets}
        assert socket.AF_INET in families
        targets = [("127.0.0.1", port_of(server, socket.AF_INET))]
        if ipv6_loopback():
            assert socket.AF_INET6 in families
            targets.append(("[::1]", port_of(server, socket.AF_INET6)))
        for host, port in targets:
            async with tether.connect(f"ws://{host}:{port}/") as ws:
                await ws.send(host)
                assert await ws.recv() == host


async def test_list_of_hosts() -> None:
    hosts = ["127.0.0.1", "::1"] if ipv6_loopback() else ["127.0.0.1"]
    async with serve(echo, hosts, 0) as server:
        assert len(list(server.sockets)) == len(hosts)
        for sock in server.sockets:
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            async with tether.connect(f"ws://{shown}:{port}/") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"


async def test_reuse_port() -> None:
    async with serve(echo, "127.0.0.1", 0, reuse_port=True) as first:
        port = port_of(first)
        async with serve(echo, "127.0.0.1", port, reuse_port=True) as second:
            assert port_of(second) == port
            for _ in range(4):
                async with tether.connect(f"ws://127.0.0.1:{port}/") as ws:
                    await ws.send("shared")
                    assert await ws.recv() == "shared"


async def test_tls(server_context: ssl.SSLContext, client_context: ssl.SSLContext) -> None:
    async with serve(echo, "127.0.0.1", 0, ssl=server_context) as server:
        uri = uri_of(server).replace("ws://", "wss://")
        async with tether.connect(uri, ssl=client_context) as ws:
            await ws.send("secret")
            assert await ws.recv() == "secret"
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object") is not None


@pytest.mark.parametrize("how", ["raised", "task cancelled"])
async def test_cancelled_handler_closes_its_connection(
    start_server: ServerFactory, how: str
) -> None:
    # A handler cancelled, or letting a CancelledError out, leaves nobody to
    # read its connection: it closes with 1011, as when the handler fails,
    # rather than stay open until the client leaves.
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        if how == "raised":
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(10)

    server = await start_server(handler)
    async with tether.connect(uri_of(server)) as ws:
        await ws.send("go")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1011


@pytest.mark.parametrize(
    "option",
    [
        {"max_queue": 0},
        {"max_queue": (4, 8)},
        {"write_limit": -1},
        {"write_limit": (10, 20)},
        {"write_limit": (100, -5)},
    ],
)
async def test_limits_no_connection_can_take_are_refused_at_once(option: dict[str, Any]) -> None:
    # Not by each connection as it is made: a server would fail every one
    # it accepts (or, for write_limit, leave it unregistered), in the loop's log.
    with pytest.raises(ValueError, match=r"max_queue|write_limit"):
        serve(echo, "127.0.0.1", 0, **option)
    with pytest.raises(ValueError, match=r"max_queue|write_limit"):
        tether.listen(tether.Listener, "127.0.0.1", 0, **option)
    with pytest.raises(ValueError, match=r"max_queue|write_limit"):
        tether.connect("ws://127.0.0.1/", **option)
