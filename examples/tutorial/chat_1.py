import asyncio

import tether

connected: set[tether.ServerConnection] = set()


async def chat(websocket: tether.ServerConnection) -> None:
    connected.add(websocket)
    try:
        async for message in websocket:
            tether.broadcast(connected, message)
    finally:
        connected.discard(websocket)


async def main() -> None:
    async with tether.serve(chat, "127.0.0.1", 8766) as server:
        await server.serve_forever()


asyncio.run(main())
