import asyncio
import hmac
import logging
import os
import signal
from collections import defaultdict

import tether
from tether.protocol import Request, Response

USERS = {"alice": "wonderland", "bob": "builder"}

rooms: defaultdict[str, set[tether.ServerConnection]] = defaultdict(set)


def check_credentials(username: str, password: str) -> bool:
    expected = USERS.get(username)
    return expected is not None and hmac.compare_digest(expected, password)


auth = tether.basic_auth(realm="chat", check_credentials=check_credentials)


async def process_request(connection: tether.ServerConnection, request: Request) -> Response | None:
    # A health check for the load balancer, without credentials.
    if request.path == "/healthz":
        return connection.respond(200, "OK\n")
    return await auth(connection, request)


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
    logging.basicConfig(level=logging.INFO)
    host = os.environ.get("CHAT_HOST", "127.0.0.1")
    port = int(os.environ.get("CHAT_PORT", "8766"))
    routes = {"/rooms/{room}": chat}
    async with tether.route(routes, host, port, process_request=process_request) as server:
        # systemd stops a service with SIGTERM: close every connection with
        # 1001 (going away), then exit with status 0.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, server.close)
        await server.serve_forever()


asyncio.run(main())
