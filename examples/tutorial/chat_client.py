import asyncio
import sys

import tether


async def main(uri: str, *messages: str) -> None:
    async with tether.connect(uri) as websocket:
        for message in messages:
            await websocket.send(message)
        # Print what the room says, until it relays our last message.
        async for received in websocket:
            print(received)
            if isinstance(received, str) and received.endswith(messages[-1]):
                break


asyncio.run(main(*sys.argv[1:]))
