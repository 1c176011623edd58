"""Stop a client that processes messages in a loop: close the connection on SIGTERM.

Run it as ``python shutdown_client.py [URI]``, then ``kill -TERM <pid>``: the
signal handler starts the closing handshake, the ``async for`` loop ends when
the connection is closed, and the program exits with status 0. Unix only.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import tether


async def client(uri: str) -> None:
    """Print every message received until SIGTERM closes the connection."""
    async with tether.connect(uri) as websocket:
        loop = asyncio.get_running_loop()
        # The loop holds tasks weakly: keep the closing one until it is done.
        closing: set[asyncio.Task[None]] = set()

        def close() -> None:
            task = asyncio.create_task(websocket.close())
            closing.add(task)
            task.add_done_callback(closing.discard)

        loop.add_signal_handler(signal.SIGTERM, close)
        print(f"connected to {uri}; send SIGTERM to stop", flush=True)

        async for message in websocket:
            print(message, flush=True)


if __name__ == "__main__":
    asyncio.run(client(sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:8765/"))
