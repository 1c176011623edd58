"""``async for websocket in connect(...)``: reconnection, backoff, and what stops it."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

import pytest

import tether
from tether import ConnectionClosed, InvalidMessage, InvalidStatus, InvalidURI
from tether.asyncio.client import process_exception
from tether.asyncio.server import ServerConnection
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, echo, raw_tcp_server, uri_of

BOUND = 10.0
"""Seconds after which a reconnecting test is declared stuck."""

FAST: dict[str, Any] = {"backoff_initial_delay": 0.01, "backoff_max_delay": 0.02}
"""Backoff options that keep the tests fast."""


class Stop(Exception):
    """Raised by the fake sleep to end a reconnection loop after enough delays."""


def refused_port() -> tuple[socket.socket, int]:
    """A port on loopback that refuses connections until the socket listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


async def first_reply(uri: str, max_attempts: int = 20, **options: Any) -> tuple[int, str | bytes]:
    """Reconnect until a connection answers an echo; give the connections opened and the reply."""
    opened = 0
    async with asyncio.timeout(BOUND):
        async for websocket in tether.connect(uri, **options):
            opened += 1
            assert opened <= max_attempts
            try:
                await websocket.send("hello")
                reply = await websocket.recv()
            except ConnectionClosed:
                continue
            await websocket.close()
            return opened, reply
    raise AssertionError("the iteration ended")


# Reconnecting after the connection drops


@pytest.mark.parametrize("how", ["abort", "1011", "1001"])
async def test_reconnect_after_the_connection_drops(start_server: ServerFactory, how: str) -> None:
    accepted = 0

    async def drop_three(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        if accepted > 3:
            await echo(ws)
        elif how == "abort":
            assert ws.transport is not None
            ws.transport.abort()
        else:
            await ws.close(int(how))

    server = await start_server(drop_three)
    assert await first_reply(uri_of(server), **FAST) == (4, "hello")


async def test_reconnect_in_the_faq_shape(start_server: ServerFactory) -> None:
    # ``async for message in websocket`` ends quietly on 1000/1001 and raises otherwise.
    accepted = 0
    received: list[str | bytes] = []

    async def serve_one_each(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        await ws.send(f"connection {accepted}")
        if accepted == 1:
            await ws.close(1001)  # Going away, as a restarting server says.
        elif accepted == 2:
            assert ws.transport is not None
            ws.transport.abort()
        else:
            await ws.close(1000)

    server = await start_server(serve_one_each)
    async with asyncio.timeout(BOUND):
        async for websocket in tether.connect(uri_of(server), **FAST):
            try:
                async for message in websocket:
                    received.append(message)
            except ConnectionClosed:
                continue
            if len(received) == 3:
                break
    assert received == ["connection 1", "connection 2", "connection 3"]


async def test_an_exception_in_the_body_ends_the_loop(start_server: ServerFactory) -> None:
    server = await start_server()
    opened: list[tether.ClientConnection] = []

    async def run() -> None:
        async for websocket in tether.connect(uri_of(server)):
            opened.append(websocket)
            raise LookupError("not handled")

    with pytest.raises(LookupError):
        await run()
    assert len(opened) == 1
    # The abandoned iterator closes its connection when it is finalized.
    async with asyncio.timeout(BOUND):
        await opened[0].wait_closed()


# Reconnecting after failing to connect


async def test_reconnect_until_the_server_starts() -> None:
    sock, port = refused_port()
    failures: list[Exception] = []

    def record(exc: Exception) -> Exception | None:
        failures.append(exc)
        return process_exception(exc)

    async def start_later() -> tether.Server:
        # Wait until the client has been refused a few times, without a timing assumption.
        async with asyncio.timeout(BOUND):
            while len(failures) < 3:
                await asyncio.sleep(0.005)
        return await tether.serve(echo, sock=sock)

    starting = asyncio.create_task(start_later())
    try:
        opened, reply = await first_reply(
            f"ws://127.0.0.1:{port}/", process_exception=record, **FAST
        )
    finally:
        server = await starting
        server.close()
        await server.wait_closed()
    assert (opened, reply) == (1, "hello")
    assert len(failures) >= 3
    assert all(isinstance(exc, ConnectionRefusedError) for exc in failures)


async def test_reconnect_when_the_handshake_is_cut(start_server: ServerFactory) -> None:
    # A server that drops TCP before its response, as one restarting does, is retried.
    attempts = 0

    def cut_twice(connection: ServerConnection, request: Request) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            assert connection.transport is not None
            connection.transport.abort()

    server = await start_server(process_request=cut_twice)
    assert await first_reply(uri_of(server), **FAST) == (1, "hello")
    assert attempts == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_retry_on_5xx_and_429(start_server: ServerFactory, status: int) -> None:
    attempts = 0

    def busy_twice(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        return connection.respond(status, "Try later.\n") if attempts <= 2 else None

    server = await start_server(process_request=busy_twice)
    assert await first_reply(uri_of(server), **FAST) == (1, "hello")
    assert attempts == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_raise_on_other_4xx(start_server: ServerFactory, status: int) -> None:
    attempts = 0

    def refuse(connection: ServerConnection, request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        return connection.respond(status, "No.\n")

    server = await start_server(process_request=refuse)
    with pytest.raises(InvalidStatus) as caught:
        await first_reply(uri_of(server), **FAST)
    assert caught.value.response.status_code == status
    assert attempts == 1


async def test_raise_on_invalid_uri() -> None:
    with pytest.raises(InvalidURI):
        await first_reply("wss://example.invalid:99999/", **FAST)


async def test_raise_on_an_http_server() -> None:
    connections = 0

    async def http_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
        await writer.drain()
        writer.close()

    async with raw_tcp_server(http_200) as port:
        with pytest.raises(InvalidStatus) as caught:
            await first_reply(f"ws://127.0.0.1:{port}/", **FAST)
    assert caught.value.response.status_code == 200
    assert caught.value.response.body == b"hello world"
    assert connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2p1\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n",
    ],
)
async def test_raise_on_a_peer_that_is_not_a_websocket_server(answer: bytes) -> None:
    connections = 0

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        await reader.read()
        writer.close()

    async with raw_tcp_server(garbage) as port:
        with pytest.raises(tether.InvalidHandshake) as caught:
            await first_reply(f"ws://127.0.0.1:{port}/", **FAST)
    assert not isinstance(caught.value, InvalidStatus)
    assert connections == 1


# process_exception


def test_default_process_exception() -> None:
    def status(code: int) -> InvalidStatus:
        return InvalidStatus(Response(code, "", Headers()))

    cut = InvalidMessage("connection closed before any response")
    cut.__cause__ = EOFError("before any response")
    reset = InvalidMessage("connection closed during the opening handshake")
    reset.__cause__ = ConnectionResetError()
    retried: list[Exception] = [
        ConnectionRefusedError(),
        TimeoutError(),
        OSError("network is unreachable"),
        cut,
        reset,
        status(500),
        status(503),
        status(599),
        status(429),
    ]
    for exc in retried:
        assert process_exception(exc) is None, exc
    fatal: list[Exception] = [
        status(200),
        status(301),
        status(403),
        status(404),
        status(426),
        InvalidMessage("invalid status line"),
        InvalidURI("http://x/", "scheme isn't ws or wss"),
        ssl.SSLCertVerificationError("certificate verify failed"),
        ValueError("bad option"),
    ]
    for exc in fatal:
        assert process_exception(exc) is exc, exc


async def test_custom_process_exception(start_server: ServerFactory) -> None:
    attempts = 0

    def refuse_once(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        return connection.respond(403, "Not yet.\n") if attempts == 1 else None

    def retry_403(exc: Exception) -> Exception | None:
        if isinstance(exc, InvalidStatus) and exc.response.status_code == 403:
            return None
        return process_exception(exc)

    server = await start_server(process_request=refuse_once)
    assert await first_reply(uri_of(server), process_exception=retry_403, **FAST) == (1, "hello")
    assert attempts == 2


async def test_process_exception_may_replace_the_exception() -> None:
    sock, port = refused_port()

    def give_up(exc: Exception) -> Exception | None:
        return RuntimeError("server down")

    def raise_instead(exc: Exception) -> Exception | None:
        raise RuntimeError("raised by the hook")

    with sock:
        with pytest.raises(RuntimeError, match="server down") as caught:
            await first_reply(f"ws://127.0.0.1:{port}/", process_exception=give_up)
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        with pytest.raises(RuntimeError, match="raised by the hook"):
            await first_reply(f"ws://127.0.0.1:{port}/", process_exception=raise_instead)


# Backoff


def expected_delays(initial: float, factor: float, maximum: float, count: int) -> list[float]:
    return [min(maximum, initial * factor**n) for n in range(count)]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the client's backoff sleeps instead of sleeping; stop after eight."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 8:
            raise Stop
        await real_sleep(0)

    monkeypatch.setattr("tether.asyncio.client.asyncio.sleep", fake_sleep)
    return delays


async def refuse_until_stopped(**options: Any) -> None:
    sock, port = refused_port()
    with sock, pytest.raises(Stop):
        await first_reply(f"ws://127.0.0.1:{port}/", ping_interval=None, **options)


BACKOFF: dict[str, Any] = {
    "backoff_initial_delay": 0.01,
    "backoff_factor": 2.0,
    "backoff_max_delay": 0.05,
}


async def test_backoff_with_jitter_stays_within_bounds(sleeps: list[float]) -> None:
    await refuse_until_stopped(**BACKOFF)
    for delay, base in zip(sleeps, expected_delays(0.01, 2.0, 0.05, 8), strict=True):
        assert base / 2 <= delay <= base


@pytest.mark.parametrize("extreme", ["low", "high"])
async def test_backoff_jitter_extremes(
    sleeps: list[float], monkeypatch: pytest.MonkeyPatch, extreme: str
) -> None:
    def uniform(low: float, high: float) -> float:
        return low if extreme == "low" else high

    monkeypatch.setattr("tether.reconnecting.random.uniform", uniform)
    await refuse_until_stopped(**BACKOFF)
    bases = expected_delays(0.01, 2.0, 0.05, 8)
    wanted = [base / 2 for base in bases] if extreme == "low" else bases
    assert sleeps == pytest.approx(wanted)


async def test_backoff_defaults(sleeps: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tether.reconnecting.random.uniform", lambda low, high: high)
    await refuse_until_stopped()
    assert sleeps == pytest.approx(expected_delays(1.0, 1.618, 60.0, 8))


async def test_backoff_resets_after_a_connection(
    start_server: ServerFactory, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tether.reconnecting.random.uniform", lambda low, high: high)
    attempts = 0

    # Attempts 1-3 busy, 4 opens and drops, 5-6 busy, 7 opens and echoes.
    def schedule(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        return connection.respond(503, "Busy.\n") if attempts in {1, 2, 3, 5, 6} else None

    async def drop_first(ws: ServerConnection) -> None:
        if attempts == 4:
            assert ws.transport is not None
            ws.transport.abort()
            return
        await echo(ws)

    server = await start_server(drop_first, process_request=schedule, ping_interval=None)
    assert await first_reply(uri_of(server), ping_interval=None, **BACKOFF) == (2, "hello")
    assert sleeps == pytest.approx([0.01, 0.02, 0.04, 0.01, 0.02])


async def test_backoff_survives_huge_exponents(
    sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tether.reconnecting.random.uniform", lambda low, high: high)
    await refuse_until_stopped(
        backoff_initial_delay=0.01, backoff_factor=1e200, backoff_max_delay=0.03
    )
    assert sleeps == pytest.approx([0.01] + [0.03] * 7)


async def test_retries_are_logged(sleeps: list[float], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.reconnect")
    await refuse_until_stopped(logger="app.reconnect", **BACKOFF)
    messages = [r.getMessage() for r in caplog.records if r.name == "app.reconnect"]
    assert len([m for m in messages if "retrying in" in m]) == 8


async def test_retry_after_is_honoured(start_server: ServerFactory, sleeps: list[float]) -> None:
    attempts = 0

    def busy_twice(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal attempts
        attempts += 1
        if attempts > 2:
            return None
        response = connection.respond(503, "Try later.\n")
        response.headers["Retry-After"] = "30" if attempts == 1 else "7200"
        return response

    server = await start_server(process_request=busy_twice)
    assert await first_reply(uri_of(server), backoff_max_delay=120.0) == (1, "hello")
    # As asked, then capped at backoff_max_delay.
    assert sleeps == [30.0, 120.0]
