"""Applications written for websockets' asyncio API run on tether with a changed import.

Each test is the shape of a typical websockets application: an echo server,
a chat room that relays messages to everyone, and a server that broadcasts
ticks. Only the import names tether.
"""

from __future__ import annotations

import asyncio
import json

import tether as websockets  # The point of these tests: the module is a drop-in.
from tether.asyncio.server import ServerConnection

from .conftest import uri_of


async def test_echo_application() -> None:
    async def echo(websocket: ServerConnection) -> None:
        async for message in websocket:
            await websocket.send(message)

    async with (
        websockets.serve(echo, "127.0.0.1", 0) as server,
        websockets.connect(uri_of(server)) as websocket,
    ):
        await websocket.send("Hello world!")
        assert await websocket.recv() == "Hello world!"


async def test_chat_room_application() -> None:
    room: set[ServerConnection] = set()

    async def chat(websocket: ServerConnection) -> None:
        room.add(websocket)
        try:
            async for message in websocket:
                event = json.loads(message)
                relayed = {"from": event["name"], "text": event["text"]}
                websockets.broadcast(room, json.dumps(relayed))
        finally:
            room.discard(websocket)

    async with (
        websockets.serve(chat, "127.0.0.1", 0) as server,
        websockets.connect(uri_of(server)) as alice,
        websockets.connect(uri_of(server)) as bob,
    ):
        async with asyncio.timeout(5):
            while len(room) < 2:
                await asyncio.sleep(0.01)
        await alice.send(json.dumps({"name": "alice", "text": "hi bob"}))
        expected = {"from": "alice", "text": "hi bob"}
        assert json.loads(await bob.recv()) == expected
        assert json.loads(await alice.recv()) == expected


async def test_broadcast_ticks_until_client_leaves() -> None:
    async def ticker(websocket: ServerConnection) -> None:
        for tick in range(3):
            await websocket.send(json.dumps({"tick": tick}))
        await websocket.close(1000, "done")

    async with websockets.serve(ticker, "127.0.0.1", 0) as server:
        received = []
        async with websockets.connect(uri_of(server)) as websocket:
            async for message in websocket:
                received.append(json.loads(message)["tick"])
        assert received == [0, 1, 2]
        assert websocket.close_code == 1000
        assert websocket.close_reason == "done"


async def test_reconnecting_client_shape() -> None:
    connections = 0

    async def drop_first(websocket: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await websocket.close(1012, "restarting")
            return
        await websocket.send("welcome back")

    async with websockets.serve(drop_first, "127.0.0.1", 0) as server:
        async for websocket in websockets.connect(uri_of(server), backoff_initial_delay=0.01):
            try:
                assert await websocket.recv() == "welcome back"
                break
            except websockets.ConnectionClosed:
                continue
    assert connections == 2
