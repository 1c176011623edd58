import asyncio

import tether


async def main() -> None:
    async with tether.connect("ws://127.0.0.1:8766/") as websocket:
        await websocket.send("Hello!")
        print(await websocket.recv())


asyncio.run(main())
