"""Count how closing handshakes end over a lossy, slow link while the server pings.

Clients connect over the emulated link of :mod:`tests.faults.netem` (two
network namespaces; root, iproute2 and ``/dev/net/tun`` needed) to an asyncio
server that pings every ``--ping`` seconds, exchange three messages each and
close at once. The server's pings cross the clients' close frames, and each
client answers such a ping with a pong after its close frame: a server that
closes TCP at once gets that pong on a closed socket and its kernel resets
TCP, dropping a close frame the link lost (the client then ends with 1006).
Prints the clients' close codes::

    python -m bench.lossy_close --loss 0.2 --delay 0.05 --clients 40
"""

from __future__ import annotations

import argparse
import asyncio
import collections

from tests.faults.netem import ADDRESS_B, Link, link

import tether
from tether.asyncio.server import ServerConnection


async def echo(ws: ServerConnection) -> None:
    """Send every message back."""
    async for data in ws:
        await ws.send(data)


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


async def run(loss: float, delay: float, clients: int, ping: float | None) -> None:
    """Run the clients at once; print how their closing handshakes ended."""
    with link(delay=delay, loss=loss) as net:
        listener = net.listener()
        async with tether.serve(
            echo, sock=listener, ping_interval=ping, ping_timeout=None, close_timeout=30
        ):
            port = listener.getsockname()[1]
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
    args = parser.parse_args()
    asyncio.run(run(args.loss, args.delay, args.clients, args.ping or None))


if __name__ == "__main__":
    main()
