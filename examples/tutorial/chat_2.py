import asyncio
from collections import defaultdict

import tether

rooms: defaultdict[str, set[tether.ServerConnection]] = defaultdict(set)


async def chat(websocket: tether.ServerConnection, room: str) -> None:
    members = rooms[room]
    members.add(websocket)
    try:
        async for message in websocket:
            tether.broadcast(members, message)
    finally:
        members.discard(websocket)
        if not members:
            del rooms[room]


async def main() -> None:
    async with tether.route({"/rooms/{room}": chat}, "127.0.0.1", 8766) as server:
        await server.serve_forever()


asyncio.run(main())
