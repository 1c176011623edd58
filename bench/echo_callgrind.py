"""Instructions a server spends per echoed message, counted by callgrind.

``python -m bench.echo_callgrind [--api asyncio|trio|listener|floor] [--size 16]``
runs an echo server of the chosen API (``listener``: a :class:`tether.Listener`
echoing from ``on_message`` with ``send_nowait``) under ``valgrind --tool=callgrind`` for one
connection, and an asyncio client outside valgrind that sends ``N``
messages of ``--size`` bytes one at a time and waits for each echo. It does
so for two values of ``N`` and prints the difference of the two counts
divided by the difference of ``N``: the server's instructions per message,
with start-up, the handshake and the closing cancelled out. The count is
exact and does not depend on the machine's load, so a change to a server's
message path can be measured on a busy machine; the server runs with a fixed
hash seed (:func:`bench.callgrind.seeded`), so that it repeats from run to run.

The trio server's watcher also wakes on timers while a connection is
active (:data:`tether.trio.watcher.GRACE` and ``IDLE``): a cost per second,
not per message, which valgrind's slowness would spread over the messages
as if it were theirs. ``--no-timers`` sets both timers beyond the run, to
count the message path alone.

``--json`` sends the bench's 1 KiB JSON-like text messages instead
(:func:`bench.workloads.text_payloads`), ``--deflate`` turns permessage-deflate
on at both ends, and ``--uvloop`` runs the asyncio server on uvloop, as the
bench's ``tether-uvloop`` does: ``--json --deflate`` against ``--json`` is the
cost of compression in a whole server process.

``--api floor`` is no WebSocket server at all but the floor of the
coroutine model under it: a bare :class:`asyncio.Protocol` whose
``data_received`` hands each read to the one future a coroutine waits on,
and the coroutine writes a reply frame made once (the client's messages are
all the same zeros), with the handshake and closing done by hand. What
``--api asyncio`` costs above it is tether's.

``--api floor-direct`` is the same floor with the waiting task woken by
:func:`tether.asyncio._wake.wake_now` from ``data_received`` itself (the
direct wake tether's connections use) instead of through ``set_result``'s
``call_soon``: what the direct wake saves on each loop, with nothing else of
tether in the way. On 2026-12-07 (16 B, instructions per message): uvloop,
floor 11,863 and floor-direct 11,304; asyncio's own loop, 44,543 and 31,020.

``--server API PORT`` is the child's entry point (the server itself).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
from typing import Any

import tether
from bench.callgrind import VALGRIND, collected, seeded
from bench.workloads import text_payloads
from tether.asyncio._wake import wake_now
from tether.protocol.handshake import accept_key


async def echo(websocket: object) -> None:
    """Echo every message (the handler of both servers)."""
    async for message in websocket:  # type: ignore[attr-defined]
        await websocket.send(message)  # type: ignore[attr-defined]


def serve_once(
    api: str, port: int, timers: bool = True, deflate: bool = False, use_uvloop: bool = False
) -> None:
    """Serve one connection on ``port`` with the ``api`` server, then return."""
    options: dict[str, Any] = {
        "compression": "deflate" if deflate else None,
        "ping_interval": None,
    }
    if api == "trio":
        # Only the trio server process imports trio.
        import trio  # noqa: PLC0415

        import tether.trio as tether_trio  # noqa: PLC0415
        from tether.trio import watcher as trio_watcher  # noqa: PLC0415

        if not timers:
            trio_watcher.GRACE = trio_watcher.IDLE = 3600.0

        async def trio_main() -> None:
            async with trio.open_nursery() as nursery:

                async def handler(websocket: tether_trio.ServerConnection) -> None:
                    await echo(websocket)
                    nursery.cancel_scope.cancel()

                await nursery.start(
                    lambda task_status: tether_trio.serve(
                        handler, port, host="127.0.0.1", task_status=task_status, **options
                    )
                )
                print("ready", flush=True)

        trio.run(trio_main)
        return

    if api in {"listener", "floor", "floor-direct"}:
        main = {"listener": listener_main, "floor": floor_main, "floor-direct": floor_direct_main}[
            api
        ]
        if use_uvloop:
            import uvloop  # noqa: PLC0415  (bench processes import what they run)

            uvloop.run(main(port, options))
        else:
            asyncio.run(main(port, options))
        return

    async def asyncio_main() -> None:
        done = asyncio.get_running_loop().create_future()

        async def handler(websocket: tether.ServerConnection) -> None:
            await echo(websocket)
            done.set_result(None)

        async with tether.serve(handler, "127.0.0.1", port, **options):
            print("ready", flush=True)
            await done

    if use_uvloop:
        import uvloop  # noqa: PLC0415  (bench processes import what they run)

        uvloop.run(asyncio_main())
    else:
        asyncio.run(asyncio_main())


class Echo(tether.Listener):
    """Echo every message from the callback (the ``listener`` server)."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done

    def on_message(self, ws: tether.asyncio.Connection, message: str | bytes) -> None:
        ws.send_nowait(message)

    def on_close(self, ws: tether.asyncio.Connection) -> None:
        self.done.set_result(None)


async def listener_main(port: int, options: dict[str, Any]) -> None:
    """Serve one connection with a :class:`tether.Listener` that echoes."""
    done = asyncio.get_running_loop().create_future()
    async with tether.listen(lambda: Echo(done), "127.0.0.1", port, **options):
        print("ready", flush=True)
        await done


class Floor(asyncio.Protocol):
    """The floor's protocol: each read goes to the one future waiting for it."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.reader: asyncio.Future[bytes] | None = None
        self.head = b""
        # floor-direct: wake the coroutine's task from here (see wake_directly).
        self.direct = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is not None:
            self.reader = None
            if self.direct:
                wake_directly(reader, data)
            else:
                reader.set_result(data)
        else:
            # The handshake's request, before the coroutine waits.
            self.head += data
            if self.head.endswith(b"\r\n\r\n"):
                asyncio.get_running_loop().create_task(self.handle())

    async def handle(self) -> None:
        """Answer the handshake, then echo one future per message until the close frame."""
        transport = self.transport
        assert transport is not None
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in self.head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode()
            + b"\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        while True:
            reader = self.reader = loop.create_future()
            data = await reader
            if data is None:
                data = FLOOR_DATA.pop()
            if data[0] & 0x0F == 0x8:
                # The client's close frame: answer it and close TCP.
                transport.write(b"\x88\x02\x03\xe8")
                transport.close()
                self.done.set_result(None)
                return
            transport.write(FLOOR_REPLY)


def wake_directly(reader: asyncio.Future[bytes], data: bytes) -> None:
    """Set ``reader``'s result and run its task's wake-up now: tether's direct wake.

    :func:`tether.asyncio._wake.wake_now` (in C when built): what
    ``set_result`` schedules with ``call_soon`` (the waiting task's
    wake-up) runs in this protocol callback instead, in the task's context:
    no handle, no pass through the loop's ready queue. It sets the result
    to ``None``: the data goes in the result's place by hand first.
    """
    FLOOR_DATA.append(data)
    wake_now(reader, reader.get_loop())  # type: ignore[arg-type]


# The direct floor's reads, taken by its coroutine.
FLOOR_DATA: list[bytes] = []


# What the floor answers each message with: the client's 16 zero bytes, unmasked.
FLOOR_REPLY = b"\x82\x10" + bytes(16)


async def floor_main(port: int, options: dict[str, Any], direct: bool = False) -> None:
    """Serve one connection with the floor's bare protocol (``options`` are ignored)."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def protocol() -> Floor:
        floor = Floor(done)
        floor.direct = direct
        return floor

    server = await loop.create_server(protocol, "127.0.0.1", port)
    print("ready", flush=True)
    await done
    server.close()


async def floor_direct_main(port: int, options: dict[str, Any]) -> None:
    """The floor, its task woken from ``data_received`` itself (:func:`wake_directly`)."""
    await floor_main(port, options, direct=True)


async def client(
    port: int, count: int, size: int, json_like: bool = False, deflate: bool = False
) -> None:
    """Send ``count`` messages of ``size`` bytes (or JSON-like text), one at a time, each echoed."""
    ws = await tether.connect(
        f"ws://127.0.0.1:{port}/",
        compression="deflate" if deflate else None,
        ping_interval=None,
    )
    payloads: tuple[bytes | str, ...] = text_payloads(size, True) if json_like else (bytes(size),)
    for index in range(20 + count):
        payload = payloads[index % len(payloads)]
        await ws.send(payload)
        if await ws.recv() != payload:
            raise RuntimeError("the echo differs")
    await ws.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count_instructions(  # noqa: PLR0917 (the command line's options)
    api: str,
    count: int,
    size: int,
    timers: bool = True,
    json_like: bool = False,
    deflate: bool = False,
    use_uvloop: bool = False,
) -> int:
    """The server's instructions for one connection carrying ``count`` (+ 20) messages."""
    port = free_port()
    server = subprocess.Popen(
        [
            *VALGRIND,
            sys.executable,
            "-m",
            "bench.echo_callgrind",
            "--server",
            api,
            str(port),
            *([] if timers else ["--no-timers"]),
            *(["--deflate"] if deflate else []),
            *(["--uvloop"] if use_uvloop else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=seeded(),
    )
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError("the server did not start")
    asyncio.run(client(port, count, size, json_like, deflate))
    _, errors = server.communicate(timeout=120)
    return collected(errors)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--api", action="append", choices=("asyncio", "trio", "listener", "floor", "floor-direct")
    )
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--counts", type=int, nargs=2, default=(500, 2500))
    parser.add_argument("--no-timers", action="store_true", help="no watcher timers (trio)")
    parser.add_argument("--json", action="store_true", help="1 KiB JSON-like text messages")
    parser.add_argument("--deflate", action="store_true", help="permessage-deflate on")
    parser.add_argument("--uvloop", action="store_true", help="the asyncio server on uvloop")
    parser.add_argument("--server", nargs=2, metavar=("API", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        serve_once(
            args.server[0], int(args.server[1]), not args.no_timers, args.deflate, args.uvloop
        )
        return
    if {"floor", "floor-direct"} & set(args.api or ()) and (
        args.json or args.deflate or args.size != 16
    ):
        parser.error("--api floor echoes 16-byte messages only")
    low, high = args.counts
    size = 1024 if args.json else args.size
    what = f"{'JSON ' if args.json else ''}{size} B{' deflate' if args.deflate else ''}"
    for api in args.api or ["asyncio", "trio"]:
        flags = (not args.no_timers, args.json, args.deflate, args.uvloop)
        a = count_instructions(api, low, size, *flags)
        b = count_instructions(api, high, size, *flags)
        per = (b - a) / (high - low)
        print(f"{api:<8} echo {what}: {per:,.0f} instructions per message")


if __name__ == "__main__":
    main()
