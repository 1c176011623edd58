import asyncio

import tether


async def echo(websocket: tether.ServerConnection) -> None:
    async for message in websocket:
        await websocket.send(message)


async def main() -> None:
    async with tether.serve(echo, "127.0.0.1", 8766) as server:
        await server.serve_forever()


asyncio.run(main())
