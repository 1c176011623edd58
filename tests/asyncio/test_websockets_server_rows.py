"""The asyncio server and connection rows of the websockets 17 checklist, end to end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import pytest

import tether
from tether.asyncio.broadcast import broadcast
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection, serve
from tether.exceptions import ConnectionClosedError, InvalidStatus, NegotiationError
from tether.protocol.connection import State

from .conftest import ServerFactory, echo, uri_of

TIMEOUT = 5


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def test_select_subprotocol_gets_the_server_connection(start_server: ServerFactory) -> None:
    seen: list[tuple[object, list[str]]] = []

    def select(connection: ServerConnection, offered: Sequence[str]) -> str | None:
        seen.append((connection, list(offered)))
        # The connection is the handler's: its request is there already.
        assert connection.request is not None
        if connection.request.path == "/refuse":
            raise NegotiationError("not here")
        return offered[-1] if offered else None

    handled: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        handled.append(ws)
        await ws.send(str(ws.subprotocol))

    server = await start_server(handler, select_subprotocol=select)
    async with tether.connect(uri_of(server), subprotocols=["a", "b"]) as ws:
        assert await ws.recv() == "b"
    assert seen == [(handled[0], ["a", "b"])]
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server, "/refuse"), subprotocols=["a"])
    assert info.value.response.status_code == 400


async def test_server_close_with_code_and_reason(start_server: ServerFactory) -> None:
    server = await start_server(hold)
    clients = [await tether.connect(uri_of(server)) for _ in range(2)]
    server.close(code=1012, reason="restarting")
    async with asyncio.timeout(TIMEOUT):
        await server.wait_closed()
        for ws in clients:
            await ws.wait_closed()
    assert [(ws.close_code, ws.close_reason) for ws in clients] == [(1012, "restarting")] * 2


async def test_serve_forever_starts_serving() -> None:
    server = await serve(echo, "127.0.0.1", 0, start_serving=False)
    assert not server.is_serving()
    task = asyncio.create_task(server.serve_forever())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not server.is_serving():
                await asyncio.sleep(0)
            async with tether.connect(uri_of(server)) as ws:
                await ws.send("served")
                assert await ws.recv() == "served"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not server.is_serving()


async def test_create_connection(start_server: ServerFactory) -> None:
    class Tagged(ServerConnection):
        tag = "custom"

    async def handler(ws: ServerConnection) -> None:
        assert isinstance(ws, Tagged)
        await ws.send(ws.tag)

    server = await start_server(handler, create_connection=Tagged)
    async with tether.connect(uri_of(server)) as ws:
        assert await ws.recv() == "custom"


async def test_respond_sends_the_text_as_given(start_server: ServerFactory) -> None:
    def refuse(connection: ServerConnection, request: object) -> tether.protocol.Response:
        return connection.respond(418, "no newline")

    server = await start_server(process_request=refuse)
    with pytest.raises(InvalidStatus) as info:
        await tether.connect(uri_of(server))
    assert info.value.response.body == b"no newline"


async def open_clients(server: Server, count: int) -> list[ClientConnection]:
    clients = [await tether.connect(uri_of(server)) for _ in range(count)]
    async with asyncio.timeout(TIMEOUT):
        while len(server.connections) < count:
            await asyncio.sleep(0.01)
    return clients


@pytest.mark.parametrize(
    ("message", "text", "expected"),
    [
        ("é", None, "é"),
        ("é", False, "é".encode()),
        (b'{"a": 1}', True, '{"a": 1}'),
        (b"\x00", None, b"\x00"),
    ],
)
async def test_broadcast_text(
    start_server: ServerFactory, message: str | bytes, text: bool | None, expected: str | bytes
) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 2)
    assert broadcast(server.connections, message, text=text) == 2
    for ws in clients:
        assert await ws.recv() == expected
        await ws.close()


async def test_broadcast_raise_exceptions_is_keyword_only(start_server: ServerFactory) -> None:
    server = await start_server(hold)
    with pytest.raises(TypeError):
        broadcast(server.connections, "x", True)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["basic_auth", "broadcast"])
def test_server_module_exports(name: str) -> None:
    import tether.asyncio.server as server_module  # noqa: PLC0415

    assert getattr(server_module, name) is getattr(tether, name)
    with pytest.raises(AttributeError):
        server_module.no_such_name  # noqa: B018


@pytest.mark.parametrize("raises", [False, True])
async def test_async_with_a_connection_that_raises_closes_with_1011(
    start_server: ServerFactory, raises: bool
) -> None:
    closed: asyncio.Queue[tuple[int | None, str | None]] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        await closed.put((ws.close_code, ws.close_reason))

    server = await start_server(handler)
    for opener in ("connect", "connection"):
        with pytest.raises(RuntimeError) if raises else contextlib.nullcontext():
            if opener == "connect":
                async with tether.connect(uri_of(server)):
                    if raises:
                        raise RuntimeError("boom")
            else:
                ws = await tether.connect(uri_of(server))
                async with ws:
                    if raises:
                        raise RuntimeError("boom")
        async with asyncio.timeout(TIMEOUT):
            assert await closed.get() == ((1011, "") if raises else (1000, ""))


async def test_handler_exception_closes_1011_on_the_client(start_server: ServerFactory) -> None:
    async def handler(ws: ServerConnection) -> None:
        raise RuntimeError("handler bug")

    server = await start_server(handler)
    async with tether.connect(uri_of(server)) as ws:
        with pytest.raises(ConnectionClosedError):
            await ws.recv()
    assert ws.close_code == 1011
    assert ws.state is State.CLOSED
