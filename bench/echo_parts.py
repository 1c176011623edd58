"""What each step of the asyncio server's 16-byte echo costs, one call at a time.

``bench.send_core``'s ``echo`` case measures the whole per-message path of a
server connection; this harness takes it apart. Each part runs one step of
that path in a loop of ``await step()`` that never waits (so the event loop
plays no part), on an open
server connection whose transport keeps nothing
(:class:`bench.send_core.NullTransport`):

- ``loop``: the loop and an ``await`` of a step doing nothing (subtracted
  from every other part);
- ``receive``: ``buffer_updated`` for one masked 16-byte frame, then
  ``MessageQueue.get`` to take the message out again;
- ``get``: a message put in the queue and taken out (``extend_whole``
  + ``get``), to subtract from ``receive``;
- ``engine``: the engine alone, ``receive_data`` and ``events`` on the frame;
- ``parse``: the C or Python ``read_messages`` alone;
- ``anext``: ``__anext__`` run to its end with a message waiting, no wait;
- ``send``: ``send`` run to its end (the write goes to the null transport);
- ``engine_send``: ``send_message`` and ``data_to_send`` alone;
- ``frame``: ``build_frame`` alone.

``python -m bench.echo_parts`` prints instructions per call for every part,
from two callgrind runs of different sizes (exact on a busy machine);
``--part NAME`` measures one. ``TETHER_NO_SPEEDUPS=1`` measures the
pure-Python fallback.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from bench.callgrind import per_operation
from bench.send_core import _open
from tether.protocol.events import Event
from tether.protocol.frames import Opcode, read_messages, serialize_frame
from tether.protocol.server import ServerProtocol

PARTS = (
    "loop",
    "receive",
    "get",
    "engine",
    "parse",
    "anext",
    "send",
    "engine_send",
    "frame",
)


def _step(part: str) -> Callable[[], Awaitable[object]]:
    """The body of one iteration of ``part``, on a fresh open server connection."""
    ws, _ = _open(ServerProtocol())
    protocol = ws.protocol
    messages = ws._messages
    frame = serialize_frame(Opcode.BINARY, bytes(16), mask=True)
    size = len(frame)
    buffer = ws.get_buffer(-1)
    buffer[:size] = frame
    payload = bytes(16)
    events: list[Event] = []
    batch = [protocol.events, messages]  # anything, for the loop part
    if part == "loop":

        async def loop() -> object:
            return batch

        return loop
    if part == "receive":

        async def receive() -> object:
            ws.buffer_updated(size)
            return messages.get()

        return receive
    if part == "get":
        protocol.receive_data(frame)
        held = protocol.events()

        async def get() -> object:
            messages.extend_whole(held)
            return messages.get()

        return get
    if part == "engine":

        async def engine() -> object:
            protocol.receive_data(frame)
            return protocol.events()

        return engine
    if part == "parse":

        async def parse() -> object:
            read_messages(frame, 0, True, 1 << 20, None, events, None)
            events.clear()
            return events

        return parse
    if part == "anext":
        protocol.receive_data(frame)
        held = protocol.events()

        async def anext() -> object:
            messages.extend_whole(held)
            return await ws.__anext__()

        return anext
    if part == "send":

        async def send() -> object:
            await ws.send(payload)
            # Sends between two waits gather: reset as a wait would.
            ws._sent_since_wait = False
            return None

        return send
    if part == "engine_send":

        async def engine_send() -> object:
            protocol.send_message(payload)
            return protocol.data_to_send()

        return engine_send
    if part == "frame":
        from tether.protocol.frames import build_frame  # noqa: PLC0415

        async def frame_only() -> object:
            return build_frame(0x82, payload, None)

        return frame_only
    raise ValueError(part)


async def _run(part: str, count: int) -> None:
    step = _step(part)
    for _ in range(count):
        await step()


def run_part(part: str, count: int) -> None:
    """Run ``count`` iterations of ``part`` inside a running loop, as a connection needs one."""
    asyncio.run(_run(part, count))


def instructions(part: str) -> float:
    """Instructions per iteration of ``part``, from two callgrind runs."""
    return per_operation("bench.echo_parts", ["--part", part], (20_000, 60_000))


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=PARTS, action="append", help="one part (repeatable)")
    parser.add_argument("--count", type=int, help="iterations of one part, as callgrind runs it")
    args = parser.parse_args()
    if args.count is not None and args.part:
        run_part(args.part[0], args.count)
        return
    parts = args.part or list(PARTS)
    base = instructions("loop")
    print(f"{'loop':<12} {base:>8,.0f} instructions per iteration (subtracted below)")
    for part in parts:
        if part != "loop":
            print(f"{part:<12} {instructions(part) - base:>8,.0f} instructions", flush=True)


if __name__ == "__main__":
    main()
