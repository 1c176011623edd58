"""What the application and the client see, with tether and with uvicorn's own class.

Every scenario runs twice, parametrized over ``--ws``: on tether's class and
on uvicorn's default, ``websockets-sansio``, in the same configuration. The
assertions are the same for both except where a comment says tether chose
otherwise, so each scenario proves that tether gives applications what
uvicorn's own class gives them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
import trustme
import websockets.asyncio.client
import websockets.exceptions

import tether
from tests.asgi.servers import MAIN_OPTIONS, MAX_SIZE, Uvicorn, UvicornConfig
from tests.behaviour.raw import ECHO_IN_KERNEL, ECHO_IN_SERVER, close_then_pong
from tests.conformance.peer import Peer, connect_peer
from tether.exceptions import ConnectionClosed, InvalidStatus
from tether.protocol.frames import Opcode

TIMEOUT = 10.0

_names = itertools.count()

CONNECT = {"type": "websocket.connect"}
ACCEPT = {"send": "websocket.accept"}
CLOSE = {"send": "websocket.close"}
START = {"send": "websocket.http.response.start"}
BODY = {"send": "websocket.http.response.body"}


def _name() -> str:
    return f"behaviour-{os.getpid()}-{next(_names)}"


@pytest.fixture(params=["tether", "sansio"])
def server(
    request: pytest.FixtureRequest, uvicorn_server: Callable[[UvicornConfig], Uvicorn]
) -> Uvicorn:
    """The same Starlette application and options, under tether's class or uvicorn's own."""
    return uvicorn_server(
        UvicornConfig(request.param, "httptools", "uvloop", "starlette", MAIN_OPTIONS)
    )


async def seen(server: Uvicorn, name: str, count: int) -> list[Any]:
    """What the application recorded, once it has ``count`` entries (or after a while)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        record = await asyncio.to_thread(server.seen, name)
        if len(record) >= count or asyncio.get_running_loop().time() > deadline:
            return record
        await asyncio.sleep(0.02)


@asynccontextmanager
async def raw_peer(server: Uvicorn, path: str) -> AsyncIterator[Peer]:
    """A client that writes frames byte by byte, from tests/conformance."""
    peer, head = await connect_peer("127.0.0.1", server.port, path=path)
    assert peer is not None, head
    try:
        yield peer
    finally:
        await peer.stop()


# Closing, from the client's side


async def test_client_closes_with_code_and_reason(server: Uvicorn) -> None:
    name = _name()
    async with tether.connect(server.uri(f"/echo?id={name}")) as ws:
        await ws.send("hi")
        assert await ws.recv() == "hi"
        await ws.close(4001, "bye")
    assert await seen(server, name, 4) == [
        CONNECT,
        ACCEPT,
        {"type": "websocket.receive", "text": "str:2"},
        {"type": "websocket.disconnect", "code": 4001, "reason": "bye"},
    ]


async def test_application_closes(server: Uvicorn) -> None:
    name = _name()
    async with tether.connect(server.uri(f"/close-after?id={name}")) as ws:
        await ws.send("bye?")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert (closed.value.code, closed.value.reason) == (4002, "app bye")
    assert await seen(server, name, 5) == [
        CONNECT,
        ACCEPT,
        {"type": "websocket.receive", "text": "str:4"},
        CLOSE,
        {"type": "websocket.disconnect", "code": 4002, "reason": "app bye"},
    ]


async def test_client_drops_tcp(server: Uvicorn) -> None:
    name = _name()
    async with raw_peer(server, f"/echo?id={name}") as peer:
        await peer.send_message(b"hi")
        await peer.expect_echo(b"hi")
        peer.abort()
    # No close frame: 1005, as uvicorn's class reports it, without a reason.
    assert await seen(server, name, 4) == [
        CONNECT,
        ACCEPT,
        {"type": "websocket.receive", "bytes": "bytes:2"},
        {"type": "websocket.disconnect", "code": 1005},
    ]


@pytest.mark.parametrize("size", [ECHO_IN_KERNEL, ECHO_IN_SERVER])
@pytest.mark.parametrize(("http", "loop"), [("h11", "asyncio"), ("httptools", "uvloop")])
async def test_pong_after_the_clients_close_frame_does_not_reset_tcp(
    uvicorn_server: Callable[[UvicornConfig], Uvicorn], http: str, loop: str, size: int
) -> None:
    # On tether's class only: uvicorn's own close TCP at once, and reset it.
    server = uvicorn_server(UvicornConfig("tether", http, loop, "starlette", MAIN_OPTIONS))
    name = _name()

    def close_taken() -> None:
        # The disconnect reached the application: the close frame was read.
        deadline = time.monotonic() + TIMEOUT
        while not any(m.get("type") == "websocket.disconnect" for m in server.seen(name)):
            assert time.monotonic() < deadline, "the server never read the close frame"
            time.sleep(0.01)

    await asyncio.to_thread(close_then_pong, server.port, f"/echo?id={name}", size, close_taken)
    record = await seen(server, name, 4)
    assert record[3] == {"type": "websocket.disconnect", "code": 1000, "reason": "done"}


# Failures on the client's data


async def test_oversized_message_fails_with_1009(server: Uvicorn) -> None:
    name = _name()
    async with raw_peer(server, f"/echo?id={name}") as peer:
        # The header announces one byte too many: refused before the payload comes.
        await peer.write(peer.frame(Opcode.BINARY, b"", length=MAX_SIZE + 1, length_bytes=8))
        await peer.expect_close(1009)
        await peer.expect_eof()
    record = await seen(server, name, 3)
    assert record[:2] == [CONNECT, ACCEPT]
    assert record[2]["type"] == "websocket.disconnect"
    assert record[2]["code"] == 1009
    assert len(record) == 3


async def test_message_at_max_size_passes(server: Uvicorn) -> None:
    async with tether.connect(server.uri("/echo"), max_size=None) as ws:
        await ws.send(bytes(MAX_SIZE))
        assert await ws.recv() == bytes(MAX_SIZE)


async def test_invalid_utf8_fails_with_1007(server: Uvicorn) -> None:
    name = _name()
    async with raw_peer(server, f"/echo?id={name}") as peer:
        await peer.send(Opcode.TEXT, b"caf\xc3")
        await peer.expect_close(1007)
        await peer.expect_eof()
    record = await seen(server, name, 3)
    assert record[:2] == [CONNECT, ACCEPT]
    assert (record[2]["type"], record[2]["code"]) == ("websocket.disconnect", 1007)
    assert len(record) == 3


# The handshake: scope, subprotocols, headers, denials


async def test_scope(server: Uvicorn) -> None:
    uri = server.uri("/scope?a=1&b=%20")
    async with tether.connect(uri, subprotocols=["chat.v1", "chat.v2"]) as ws:
        scope = json.loads(await ws.recv())
        local = ws.local_address[:2]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope"
    assert scope["raw_path"] == "/api/scope"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["client"] == list(local)
    assert scope["extensions"] == ["websocket.http.response"]
    headers = dict(scope["headers"])
    assert headers["sec-websocket-protocol"] == "chat.v1, chat.v2"
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert all(name == name.lower() for name, _ in scope["headers"])


async def test_proxy_headers(server: Uvicorn) -> None:
    # uvicorn trusts proxies on 127.0.0.1 by default: its middleware rewrites the scope.
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    async with tether.connect(server.uri("/scope"), additional_headers=forwarded) as ws:
        scope = json.loads(await ws.recv())
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "wss"


@pytest.mark.parametrize("ws", ["tether", "sansio"])
async def test_tls_scheme(
    ws: str,
    uvicorn_server: Callable[[UvicornConfig], Uvicorn],
    ca: trustme.CA,
    client_context: ssl.SSLContext,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pem = tmp_path_factory.mktemp("tls") / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    options = ("--ssl-certfile", str(pem), "--ssl-keyfile", str(pem))
    config = UvicornConfig(ws, "h11", "asyncio", "starlette", options)
    server = await asyncio.to_thread(uvicorn_server, config)
    uri = f"wss://127.0.0.1:{server.port}/scope"
    async with tether.connect(uri, ssl=client_context) as client:
        scope = json.loads(await client.recv())
        await client.send("over TLS")
        assert await client.recv() == "over TLS"
    assert scope["scheme"] == "wss"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], None), (None, None)],
)
async def test_subprotocol_selection(
    server: Uvicorn, offered: list[str] | None, chosen: str | None
) -> None:
    async with tether.connect(server.uri("/subprotocol"), subprotocols=offered) as ws:
        assert ws.subprotocol == chosen
        await ws.send("still echoing")
        assert await ws.recv() == "still echoing"


async def test_accept_headers_and_default_headers(server: Uvicorn) -> None:
    async with tether.connect(server.uri("/headers")) as ws:
        assert ws.response is not None
        headers = ws.response.headers
    assert headers["x-tether-test"] == "yes"
    assert headers["server"] == "uvicorn"
    assert headers["date"].endswith(" GMT")


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/deny", 403, b"go away"),
        ("/deny-stream", 401, b"piece 0;piece 1;piece 2;"),
        ("/refuse", 403, None),
        ("/no-such-endpoint", 403, None),
    ],
)
async def test_denial_response(server: Uvicorn, path: str, status: int, body: bytes | None) -> None:
    name = _name()
    with pytest.raises(InvalidStatus) as refused:
        await tether.connect(server.uri(f"{path}?id={name}"))
    response = refused.value.response
    assert response.status_code == status
    if body is not None:
        assert response.body == body
    if path == "/deny":
        assert response.headers["x-denied"] == "1"
    # The same through websockets, which reads the body too.
    with pytest.raises(websockets.exceptions.InvalidStatus) as again:
        await websockets.asyncio.client.connect(server.uri(path))
    assert again.value.response.status_code == status
    if body is not None:
        assert again.value.response.body == body
    # Starlette reads no websocket.connect before a denial.
    expected = {
        "/deny": [START, BODY],
        "/deny-stream": [START, BODY, BODY, BODY, BODY],
        "/refuse": [CLOSE],
        "/no-such-endpoint": [CLOSE],
    }[path]
    assert await seen(server, name, len(expected)) == expected


async def test_handler_raising_before_accept_gets_500(server: Uvicorn) -> None:
    name = _name()
    with pytest.raises(InvalidStatus) as refused:
        await tether.connect(server.uri(f"/raise?id={name}"))
    assert refused.value.response.status_code == 500
    assert await seen(server, name, 1) == [{"app raised": "RuntimeError"}]
    assert "Exception in ASGI application" in server.log()


async def test_handler_raising_after_accept(server: Uvicorn) -> None:
    name = _name()
    async with tether.connect(server.uri(f"/raise-after?id={name}")) as ws:
        await ws.send("boom")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    # tether's choice: a close frame with 1011; uvicorn's class drops TCP (1006).
    expected = 1011 if server.config.ws == "tether" else 1006
    assert closed.value.code == expected
    assert await seen(server, name, 4) == [
        CONNECT,
        ACCEPT,
        {"type": "websocket.receive", "text": "str:4"},
        {"app raised": "RuntimeError"},
    ]


# Flow control


async def test_client_that_never_reads(server: Uvicorn) -> None:
    name = _name()
    count = 400  # 25 MiB: more than loopback's socket buffers hold.
    async with raw_peer(server, f"/flood?id={name}&count={count}") as peer:
        peer.stop_reading()
        # The application's sends wait for the client: the count stops growing.
        previous = -1
        async with asyncio.timeout(TIMEOUT):
            while True:
                await asyncio.sleep(0.3)
                flooded = await _flooded(server, name)
                if flooded == previous:
                    break
                previous = flooded
        assert previous < count
        # Once the client reads, everything comes, in order.
        peer.resume_reading()
        for _ in range(count):
            assert await peer.next_message() == bytes(65536)
        assert await _flooded(server, name) == count


async def test_application_that_does_not_read(server: Uvicorn) -> None:
    # Messages wait for the application up to --ws-max-queue (uvicorn's own
    # class reads one at a time): then reading stops and the client's writes
    # back up instead of the server's memory growing.
    chunk = bytes(65536)
    limit = 1000  # 64 MiB: far more than loopback's socket buffers hold.
    async with raw_peer(server, "/stall?seconds=1") as peer:
        frame = peer.frame(Opcode.BINARY, chunk)
        written = 0
        while written < limit:
            written += 1
            try:
                async with asyncio.timeout(0.3):
                    await peer.write(frame)
            except TimeoutError:
                break  # This one waits in the client's buffer.
        assert written < limit
        # Once the application reads, every message arrives.
        await peer.send_message("end")
        assert await peer.next_message(timeout=TIMEOUT) == str(written)


async def test_messages_while_the_app_is_slow_are_kept_in_order(server: Uvicorn) -> None:
    async with tether.connect(server.uri("/echo")) as ws:
        for index in range(200):
            await ws.send(f"message {index}")
        for index in range(200):
            assert await ws.recv() == f"message {index}"


async def _flooded(server: Uvicorn, name: str) -> int:
    """How many messages /flood sent so far."""
    record = await seen(server, name, 3)
    (flooded,) = [entry["flooded"] for entry in record if "flooded" in entry]
    return int(flooded)


# Keepalive


@pytest.fixture(params=["tether", "sansio"])
def pinging_server(
    request: pytest.FixtureRequest, uvicorn_server: Callable[[UvicornConfig], Uvicorn]
) -> Uvicorn:
    """A server that pings every 0.2 s and waits 0.3 s for the pong, without compression."""
    options: tuple[str, ...] = ("--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.3")
    options += ("--ws-per-message-deflate", "false")
    return uvicorn_server(UvicornConfig(request.param, "h11", "asyncio", "starlette", options))


async def test_keepalive_pings_answered(pinging_server: Uvicorn) -> None:
    async with tether.connect(pinging_server.uri("/echo"), ping_interval=None) as ws:
        assert ws.response is not None
        # --no-ws-per-message-deflate: the client's offer is declined.
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await asyncio.sleep(0.8)
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_keepalive_timeout(pinging_server: Uvicorn) -> None:
    name = _name()
    async with raw_peer(pinging_server, f"/echo?id={name}") as peer:
        ping = await peer.next_frame(timeout=5)
        assert ping.opcode == Opcode.PING
        await peer.expect_close(1011)
    record = await seen(pinging_server, name, 3)
    # tether tells the application why (1011); uvicorn's class reports 1005.
    expected = 1011 if pinging_server.config.ws == "tether" else 1005
    assert record[:2] == [CONNECT, ACCEPT]
    assert (record[2]["type"], record[2]["code"]) == ("websocket.disconnect", expected)


# Shutdown


@pytest.mark.parametrize("ws", ["tether", "sansio"])
async def test_shutdown_under_load_closes_with_1012(ws: str) -> None:
    config = UvicornConfig(
        ws, "httptools", "uvloop", "starlette", ("--timeout-graceful-shutdown", "5")
    )
    server = await asyncio.to_thread(Uvicorn.start, config)
    clients = 50
    exchanged = asyncio.Event()
    started = 0
    codes: list[int | None] = []

    async def stream() -> None:
        nonlocal started
        async with tether.connect(server.uri("/echo"), ping_interval=None) as client:
            first = True
            with suppress(ConnectionClosed):
                for index in range(100_000):
                    await client.send(f"{index}")
                    assert await client.recv() == f"{index}"
                    if first:
                        first = False
                        started += 1
                        if started == clients:
                            exchanged.set()
            codes.append(client.close_code)

    try:
        tasks = [asyncio.create_task(stream()) for _ in range(clients)]
        async with asyncio.timeout(TIMEOUT):
            await exchanged.wait()
        status = await asyncio.to_thread(server.terminate)
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*tasks)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    # uvicorn exits by the signal it caught, once shut down.
    assert status == -signal.SIGTERM
    assert codes == [1012] * clients
