"""The fixtures and assertions of tether.testing, used the way tether's own tests use them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tether.asyncio.server import ServerConnection
from tether.sync.server import ServerConnection as SyncServerConnection
from tether.testing import (
    LocalServer,
    assert_closes,
    assert_closes_sync,
    assert_receives,
    assert_receives_sync,
    start_server,
)

ServerFactory = Callable[..., LocalServer]


async def silent(websocket: ServerConnection) -> None:
    await websocket.wait_closed()


async def greet_and_close(websocket: ServerConnection) -> None:
    await websocket.send("hello")
    await websocket.close(4001, "enough")


async def test_asyncio_helpers_pass(tether_server: ServerFactory) -> None:
    server = tether_server(greet_and_close)
    async with server.connect() as websocket:
        await assert_receives(websocket, "hello")
        await assert_closes(websocket, 4001, "enough")


async def test_assert_receives_times_out(tether_server: ServerFactory) -> None:
    server = tether_server(silent)
    async with server.connect() as websocket:
        with pytest.raises(AssertionError, match=r"received \[\]: nothing more within 0\.05 s"):
            await assert_receives(websocket, "anything", timeout=0.05)


async def test_assert_receives_sees_the_close(tether_server: ServerFactory) -> None:
    server = tether_server(greet_and_close)
    async with server.connect() as websocket:
        with pytest.raises(AssertionError, match=r"received \['hello'\]: the connection closed"):
            await assert_receives(websocket, "hello", "more")


async def test_assert_closes_times_out(tether_server: ServerFactory) -> None:
    server = tether_server(silent)
    async with server.connect() as websocket:
        with pytest.raises(AssertionError, match=r"did not close within 0\.05 s"):
            await assert_closes(websocket, 1000, timeout=0.05)


def test_sync_helpers(tether_sync_server: ServerFactory, tether_client: Callable[..., Any]) -> None:
    def greet(websocket: SyncServerConnection) -> None:
        websocket.send(b"\x00")
        websocket.recv()

    websocket = tether_client(tether_sync_server(greet), "/")
    assert_receives_sync(websocket, b"\x00")
    with pytest.raises(AssertionError, match=r"nothing more within 0\.05 s"):
        assert_receives_sync(websocket, "late", timeout=0.05)
    with pytest.raises(AssertionError, match=r"did not close within 0\.05 s"):
        assert_closes_sync(websocket, 1000, timeout=0.05)
    websocket.send("bye")
    assert_closes_sync(websocket, 1000)


def test_server_options_and_uri(
    tether_server: ServerFactory, tether_client: Callable[..., Any]
) -> None:
    server = tether_server(greet_and_close, subprotocols=["v1"])
    assert server.uri("/x") == f"ws://127.0.0.1:{server.port}/x"
    websocket = tether_client(server.uri(), subprotocols=["v1"])
    assert websocket.subprotocol == "v1"
    assert_receives_sync(websocket, "hello")


def test_bad_options_raise_at_start(tether_server: ServerFactory) -> None:
    with pytest.raises(TypeError):
        tether_server(silent, no_such_option=True)


def test_start_and_stop_without_pytest() -> None:
    server = start_server(greet_and_close)
    try:
        with server.connect_sync() as websocket:
            assert_receives_sync(websocket, "hello")
    finally:
        server.stop()
        server.stop()  # a second stop does nothing
    assert server.errors == []
