"""Count how closing handshakes end over a lossy, slow link while the server pings.

Clients connect over the emulated link of :mod:`tests.faults.netem` (two
network namespaces; root, iproute2 and ``/dev/net/tun`` needed) to a server
(``--server``: asyncio, the threading server or trio, the last two in a
thread of their own) that pings every ``--ping`` seconds, exchange three
messages each and
close at once. The server's pings cross the clients' close frames, and each
client answers such a ping with a pong after its close frame: a server that
closes TCP at once gets that pong on a closed socket and its kernel resets
TCP, dropping a close frame the link lost (the client then ends with 1006).
Prints the clients' close codes::

    python -m bench.lossy_close --loss 0.2 --delay 0.05 --clients 40 --server trio
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio
from tests.faults.netem import ADDRESS_B, Link, link

import tether
import tether.sync
import tether.trio
from tether.asyncio.server import ServerConnection

SERVERS = ("asyncio", "threading", "trio")


async def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    async for data in ws:
        await ws.send(data)


def echo_sync(ws: tether.sync.ServerConnection) -> None:
    """Send every message back, on the threading server."""
    for data in ws:
        ws.send(data)


async def echo_trio(ws: tether.trio.ServerConnection) -> None:
    """Send every message back, on the trio server."""
    async for data in ws:
        await ws.send(data)


def serve_trio(
    listener: socket.socket,
    ping: float | None,
    started: Callable[[], None],
    stopping: threading.Event,
) -> None:
    """Run the trio server on ``listener`` until ``stopping`` is set (in a thread)."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sockets = [trio.SocketListener(trio.socket.from_stdlib_socket(listener))]
            server = await nursery.start(
                partial(
                    tether.trio.serve,
                    echo_trio,
                    listeners=sockets,
                    ping_interval=ping,
                    ping_timeout=None,
                    close_timeout=30,
                )
            )
            started()
            await trio.to_thread.run_sync(stopping.wait)
            await server.aclose()

    trio.run(main)


@asynccontextmanager
async def serving(kind: str, listener: socket.socket, ping: float | None) -> AsyncIterator[None]:
    """The server of ``kind`` on ``listener``, while the block runs."""
    if kind == "asyncio":
        async with tether.serve(
            echo, sock=listener, ping_interval=ping, ping_timeout=None, close_timeout=30
        ):
            yield
        return
    started = threading.Event()
    if kind == "threading":
        server = tether.sync.serve(
            echo_sync, sock=listener, ping_interval=ping, ping_timeout=None, close_timeout=30
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        stop: Callable[[], None] = server.shutdown
        started.set()
    else:
        stopping = threading.Event()
        thread = threading.Thread(
            target=serve_trio, args=(listener, ping, started.set, stopping), daemon=True
        )
        stop = stopping.set
    thread.start()
    try:
        assert await asyncio.to_thread(started.wait, 30), "the server did not start"
        yield
    finally:
        await asyncio.to_thread(stop)
        await asyncio.to_thread(thread.join, 60)


async def one_client(net: Link, port: int) -> int | None:
    """Connect, exchange three messages, close; return the close code."""
    sock = net.socket_in("a")
    sock.setblocking(False)
    async with asyncio.timeout(60):
        await asyncio.get_running_loop().sock_connect(sock, (ADDRESS_B, port))
        ws = await tether.connect(
            f"ws://{ADDRESS_B}:{port}/", sock=sock, ping_interval=None, close_timeout=30
        )
        for _ in range(3):
            await ws.send("x" * 100)
            await ws.recv()
        await ws.close()
    return ws.close_code


async def run(loss: float, delay: float, clients: int, ping: float | None, server: str) -> None:
    """Run the clients at once; print how their closing handshakes ended."""
    with link(delay=delay, loss=loss) as net:
        listener = net.listener()
        port = listener.getsockname()[1]
        async with serving(server, listener, ping):
            codes = await asyncio.gather(*(one_client(net, port) for _ in range(clients)))
        dropped, forwarded = net.dropped, net.forwarded
    counts = collections.Counter(codes)
    print(
        f"close codes: {dict(sorted(counts.items(), key=str))}; "
        f"{dropped} of {dropped + forwarded} packets dropped"
    )


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.2, help="packet loss, 0 to 1")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds each way")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--ping", type=float, default=0.05, help="server ping interval; 0: none")
    parser.add_argument("--server", choices=SERVERS, default="asyncio")
    args = parser.parse_args()
    asyncio.run(run(args.loss, args.delay, args.clients, args.ping or None, args.server))


if __name__ == "__main__":
    main()
