"""A small application to test: a counter that clients increment."""

import json

import tether

counter = {"value": 0}


async def count(websocket: tether.ServerConnection) -> None:
    async for message in websocket:
        if message != "increment":
            await websocket.close(1008, "unknown command")
            return
        counter["value"] += 1
        await websocket.send(json.dumps(counter))
