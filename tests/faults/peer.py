"""A WebSocket peer in a process of its own, for the tests to freeze, kill and restart.

    python peer.py client URI          connect, print "open", echo until closed
    python peer.py client-partial URI  connect, send the first fragment of a message, print
                                       "partial", and wait to be killed
    python peer.py server PORT LOG     serve on 127.0.0.1:PORT, print "listening"; append each
                                       message to LOG, then echo it
    python peer.py server-partial PORT serve; send each client the first fragment of a
                                       message, print "partial", and wait to be killed

The peer sends no keepalive pings of its own (it answers the other side's):
what a test observes is the other side's keepalive. It logs nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator

import tether
import tether.sync
from tether.asyncio.server import ServerConnection

FRAGMENT = b"\x00" * 65536
"""The first fragment of the message that never ends."""


def say(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def endless_message() -> Iterator[bytes]:
    yield FRAGMENT
    say("partial")
    while True:
        time.sleep(60)


def client(uri: str, partial: bool) -> None:
    with tether.sync.connect(uri, ping_interval=None, compression=None) as ws:
        say("open")
        if partial:
            ws.send(endless_message())
        for message in ws:
            ws.send(message)


async def server(port: int, log: str | None) -> None:
    async def record(ws: ServerConnection) -> None:
        assert log is not None
        with open(log, "a", encoding="utf-8") as file:
            async for message in ws:
                assert isinstance(message, str), "the test sends text"
                # Written before the echo, which is the client's confirmation.
                file.write(f"{message}\n")
                file.flush()
                await ws.send(message)

    async def endless() -> AsyncIterator[bytes]:
        yield FRAGMENT
        say("partial")
        await asyncio.Event().wait()

    async def partial(ws: ServerConnection) -> None:
        await ws.send(endless())

    handler = record if log is not None else partial
    async with tether.serve(handler, "127.0.0.1", port, ping_interval=None, compression=None):
        say("listening")
        await asyncio.Event().wait()


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode in ("client", "client-partial"):
        client(argv[1], partial=mode == "client-partial")
    elif mode == "server":
        asyncio.run(server(int(argv[1]), argv[2]))
    elif mode == "server-partial":
        asyncio.run(server(int(argv[1]), None))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
