"""tether's asyncio connection in one process, without sockets: what its send and echo cost.

Two cases, on uvloop, with a connection whose transport keeps nothing:

- ``send``: a client connection sends 64-byte binary messages, pipelined
  (the library's share of the cell "client sending pipelined 64 B messages");
  ``send-text`` sends 64-character ASCII text messages the same way, and
  ``nowait`` and ``nowait-text`` send them with ``send_nowait``, the callback
  API's send, letting the loop run as often.
- ``burst``: the same client sends three messages per loop iteration, as a
  server answering each read with three messages does: the second schedules
  the gathering's tick for the next iteration and the third is gathered
  (what a tick costs, per message).
- ``echo``: a server connection is fed a masked 16-byte frame as uvloop
  feeds it (``data_received``, or ``get_buffer`` and ``buffer_updated`` for
  a connection that is only a buffered protocol), and its handler
  (``async for message in ws: await ws.send(message)``) echoes it; the driver
  waits for the echo's write (the library's share of "server echo 16 B").
- ``floor``: the same driver and a bare coroutine that waits for one future
  per message and writes what it got, no WebSocket work at all: what the
  ``await`` model itself costs, below which ``echo`` cannot go.
- ``listener``: the same frames fed to a server connection of
  :func:`tether.listen`, whose :class:`tether.Listener` echoes each message
  from ``on_message`` with ``send_nowait``: no future and no task, so the
  driver needs no loop iteration either.

No kernel and no peer: what is left is the library and the event loop.
``python -m bench.send_core`` prints CPU microseconds per operation;
``--callgrind`` counts instructions, from two callgrind runs of different
sizes, so that start-up cancels out (exact on a busy machine).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.callgrind import per_operation
from tether.asyncio.connection import Connection
from tether.asyncio.listener import Listener, ListenerServerConnection
from tether.asyncio.server import Server, ServerConnection
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import State
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.server import ServerProtocol

CASES = ("send", "send-text", "nowait", "nowait-text", "burst", "echo", "floor", "listener")
SENDS = ("send", "send-text", "nowait", "nowait-text")


class NullTransport(asyncio.Transport):
    """A transport that drops what is written and says when something was."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote: asyncio.Future[None] | None = None

    def write(self, data: Any) -> None:
        wrote = self.wrote
        if wrote is not None:
            self.wrote = None
            wrote.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"")

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _open(protocol: ClientProtocol | ServerProtocol) -> tuple[Connection, NullTransport]:
    protocol.state = State.OPEN
    connection = Connection(protocol, ping_interval=None)
    transport = NullTransport()
    connection.connection_made(transport)
    return connection, transport


class _Floor(asyncio.Protocol):
    """A protocol that hands each read to one waiting future: no framing, no queue."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(65536))
        self.reader: asyncio.Future[bytes] | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self.buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is not None:
            self.reader = None
            reader.set_result(data)


async def _run(case: str, count: int) -> float:
    """Run ``count`` operations of ``case``; return CPU seconds for each."""
    loop = asyncio.get_running_loop()
    if case in SENDS:
        ws, _ = _open(ClientProtocol("ws://localhost/"))
        messages: tuple[str | bytes, str | bytes] = (
            ("a" * 64, "b" * 64)
            if case.endswith("text")
            else (b"\x00" + bytes(63), b"\x01" + bytes(63))
        )
        start = time.process_time()
        if case.startswith("nowait"):
            send_nowait = ws.send_nowait
            for index in range(count):
                send_nowait(messages[index & 1])
                if not index & 255:
                    await asyncio.sleep(0)
        else:
            send = ws.send
            for index in range(count):
                await send(messages[index & 1])
                if not index & 255:
                    # Let the gathered frames go, as a real loop would.
                    await asyncio.sleep(0)
        return (time.process_time() - start) / count

    if case == "burst":
        ws, _ = _open(ClientProtocol("ws://localhost/"))
        message = bytes(64)
        send = ws.send
        rounds = count // 3
        start = time.process_time()
        for _ in range(rounds):
            await send(message)
            await send(message)
            await send(message)
            # The next iteration: the tick writes the gathered frame.
            await asyncio.sleep(0)
        return (time.process_time() - start) / (rounds * 3)

    if case == "listener":
        return _run_listener(count)

    ws, transport = _open(ServerProtocol())
    floor = _Floor()

    async def echo() -> None:
        async for message in ws:
            await ws.send(message)

    async def bare() -> None:
        while True:
            reader = floor.reader = loop.create_future()
            transport.write(await reader)

    target: Any = floor if case == "floor" else ws
    task = asyncio.create_task(bare() if case == "floor" else echo())
    await asyncio.sleep(0)
    frame = serialize_frame(Opcode.BINARY, bytes(16), mask=True)
    size = len(frame)
    # As uvloop feeds a protocol: in one call (data_received) to a plain
    # protocol, in two (get_buffer, buffer_updated) to a buffered-only one.
    plain = isinstance(target, asyncio.Protocol)
    start = time.process_time()
    for _ in range(count):
        wrote = transport.wrote = loop.create_future()
        if plain:
            target.data_received(frame)
        else:
            target.get_buffer(-1)[:size] = frame
            target.buffer_updated(size)
        await wrote
    elapsed = time.process_time() - start
    task.cancel()
    return elapsed / count


class _Echo(Listener):
    def on_message(self, ws: Connection, message: str | bytes) -> None:
        ws.send_nowait(message)


def _run_listener(count: int) -> float:
    """The ``listener`` case: each read's echo is written before ``buffer_updated`` returns."""
    server = Server(
        _no_handler, process_request=None, process_response=None, open_timeout=None, logger=None
    )
    ws = ListenerServerConnection(ServerProtocol(), server, listener=_Echo, ping_interval=None)
    transport = NullTransport()
    ws.connection_made(transport)
    ws.protocol.state = State.OPEN
    ws._start()
    frame = serialize_frame(Opcode.BINARY, bytes(16), mask=True)
    size = len(frame)
    start = time.process_time()
    for _ in range(count):
        ws.get_buffer(-1)[:size] = frame
        ws.buffer_updated(size)
    return (time.process_time() - start) / count


async def _no_handler(ws: ServerConnection) -> None:
    """The handler a listener server never runs."""


def run_case(case: str, count: int) -> float:
    """Run one case on uvloop, as the bench's tether-uvloop set-up does."""
    import uvloop  # noqa: PLC0415  (bench processes import what they run)

    return uvloop.run(_run(case, count))


def instructions(case: str) -> float:
    """Instructions per operation, from two callgrind runs of different sizes."""
    sizes = (20_000, 60_000) if case in SENDS or case == "burst" else (5_000, 15_000)
    return per_operation("bench.send_core", ["--case", case], sizes)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--case", choices=CASES, help="one case")
    parser.add_argument("--count", type=int, help="operations (default: 100000 or 20000)")
    args = parser.parse_args()
    if args.count is not None and args.case is not None and not args.callgrind:
        # One run, as callgrind starts it: no output needed.
        run_case(args.case, args.count)
        return
    for case in [args.case] if args.case else list(CASES):
        if args.callgrind:
            print(f"{case:<11} {instructions(case):>10,.0f} instructions", flush=True)
        else:
            value = run_case(case, args.count or (100_000 if case in SENDS else 20_000))
            print(f"{case:<11} {value * 1e6:>10.2f} CPU us", flush=True)


if __name__ == "__main__":
    main()
