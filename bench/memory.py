"""Memory per connection of tether's servers: the growth of a server process's RSS.

``python -m bench.memory [COUNT]`` starts a server in a child process for
each case, opens COUNT connections to it (1,000 by default) from this
process, with or without exchanging one message on each, and reports how much the server's
resident memory grew, divided by COUNT. The server's RSS is read from
``/proc`` (Linux only). The figures include everything a connection costs
the server process: tether's objects, the event loop's transport, the
socket's user-space buffers, and zlib's state when compression is on.

``--api asyncio --api trio`` (repeatable) limits the servers measured to
those named (asyncio, threading, trio), ``--plain`` skips the cases with
compression, and ``--repeat N`` measures each case N times, alternating the
servers, so that servers compared are measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import tether

SERVER = """
import asyncio, sys, threading
import tether, tether.sync

api, compression = sys.argv[1], sys.argv[2] == "deflate"
options = {"compression": "deflate" if compression else None}

async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)

def sync_echo(websocket):
    for message in websocket:
        websocket.send(message)

async def trio_main():
    import trio, tether.trio
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: tether.trio.serve(
                echo, 0, host="127.0.0.1", task_status=task_status, **options
            )
        )
        print(server.sockets[0].getsockname()[1], flush=True)

async def main():
    async with tether.serve(echo, "127.0.0.1", 0, **options) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await server.serve_forever()

if api == "asyncio":
    asyncio.run(main())
elif api == "trio":
    import trio
    trio.run(trio_main)
else:
    with tether.sync.serve(sync_echo, "127.0.0.1", 0, **options) as server:
        print(server.socket.getsockname()[1], flush=True)
        server.serve_forever()
"""


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def open_connections(
    port: int, count: int, compression: bool, exchange: bool = True
) -> list[tether.ClientConnection]:
    """Open ``count`` connections and, if ``exchange``, send and receive a message on each."""
    option: Literal["deflate"] | None = "deflate" if compression else None
    connections = []
    for _ in range(count):
        websocket = await tether.connect(
            f"ws://127.0.0.1:{port}/", compression=option, ping_interval=None
        )
        if exchange:
            await websocket.send("hello")
            await websocket.recv()
        connections.append(websocket)
    return connections


async def measure(api: str, compression: bool, count: int, exchange: bool) -> float:
    """Bytes of server RSS per connection."""
    mode = "deflate" if compression else "none"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, api, mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        # Warm up: the first connections load code and grow the loop's structures.
        warm = await open_connections(port, 50, compression)
        await asyncio.sleep(0.5)
        before = rss(process.pid)
        connections = await open_connections(port, count, compression, exchange)
        await asyncio.sleep(0.5)
        after = rss(process.pid)
        for websocket in warm + connections:
            await websocket.close()
        return (after - before) / count
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description="Server RSS per idle connection.")
    parser.add_argument("count", nargs="?", type=int, default=1000)
    parser.add_argument("--api", action="append", choices=("asyncio", "threading", "trio"))
    parser.add_argument("--plain", action="store_true", help="skip permessage-deflate")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    count = args.count
    apis = args.api or ["asyncio", "threading", "trio"]
    print(f"server RSS per connection, over {count} idle connections")
    for compression in (False,) if args.plain else (False, True):
        for exchange in (False, True):
            for _ in range(args.repeat):
                for api in apis:
                    start = time.monotonic()
                    per = asyncio.run(measure(api, compression, count, exchange))
                    label = "permessage-deflate" if compression else "no compression"
                    after = "after one message" if exchange else "handshake only"
                    elapsed = time.monotonic() - start
                    print(
                        f"{api:<10} {label:<19} {after:<18} {per / 1024:7.1f} KiB"
                        f"  ({elapsed:.0f} s)",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
