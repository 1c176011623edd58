import asyncio
import hmac
from collections import defaultdict

import tether

USERS = {"alice": "wonderland", "bob": "builder"}

rooms: defaultdict[str, set[tether.ServerConnection]] = defaultdict(set)


def check_credentials(username: str, password: str) -> bool:
    expected = USERS.get(username)
    return expected is not None and hmac.compare_digest(expected, password)


async def chat(websocket: tether.ServerConnection, room: str) -> None:
    members = rooms[room]
    members.add(websocket)
    tether.broadcast(members, f"{websocket.username} joined {room}")
    try:
        async for message in websocket:
            if isinstance(message, str):  # a chat carries text only
                tether.broadcast(members, f"{websocket.username}: {message}")
    finally:
        members.discard(websocket)
        tether.broadcast(members, f"{websocket.username} left")
        if not members:
            del rooms[room]


async def main() -> None:
    auth = tether.basic_auth(realm="chat", check_credentials=check_credentials)
    routes = {"/rooms/{room}": chat}
    async with tether.route(routes, "127.0.0.1", 8766, process_request=auth) as server:
        await server.serve_forever()


asyncio.run(main())
