import asyncio
import signal
import sys

import tether


async def client(uri: str) -> None:
    async with tether.connect(uri) as websocket:
        loop = asyncio.get_running_loop()
        closing = set()  # the event loop keeps tasks weakly: hold this one

        def close() -> None:
            closing.add(asyncio.create_task(websocket.close()))

        loop.add_signal_handler(signal.SIGTERM, close)
        print(f"connected to {uri}; send SIGTERM to stop", flush=True)
        async for message in websocket:
            print(message, flush=True)
    print("closed with", websocket.close_code)


if __name__ == "__main__":
    asyncio.run(client(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765/chat"))
