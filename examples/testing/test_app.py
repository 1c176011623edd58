import json
from collections.abc import Callable
from typing import Any

import pytest
from app import count

from tether.testing import LocalServer, assert_closes, assert_closes_sync, assert_receives

StartServer = Callable[..., LocalServer]
Connect = Callable[..., Any]


def test_increment(tether_server: StartServer, tether_client: Connect) -> None:
    websocket = tether_client(tether_server(count))
    websocket.send("increment")
    assert json.loads(websocket.recv())["value"] >= 1


def test_unknown_command_closes(tether_server: StartServer, tether_client: Connect) -> None:
    websocket = tether_client(tether_server(count))
    websocket.send("decrement")
    assert_closes_sync(websocket, 1008, "unknown command")


@pytest.mark.asyncio
async def test_with_asyncio(tether_server: StartServer) -> None:
    server = tether_server(count)
    async with server.connect() as websocket:
        await websocket.send("increment")
        value = json.loads(await websocket.recv())["value"]
        await websocket.send("increment")
        await assert_receives(websocket, json.dumps({"value": value + 1}))
        await websocket.send("reset")
        await assert_closes(websocket, 1008)


def test_many_clients(tether_server: StartServer, tether_client: Connect) -> None:
    server = tether_server(count)
    clients = [tether_client(server) for _ in range(20)]
    for websocket in clients:
        websocket.send("increment")
    values = {json.loads(websocket.recv())["value"] for websocket in clients}
    assert len(values) == len(clients)
