"""uvicorn's WebSocket implementations in one process, without sockets: what each costs.

The Starlette echo app of :mod:`bench.asgi` runs under each ``--ws`` class of
:data:`bench.asgi.WS_IMPLEMENTATIONS`, built as uvicorn's HTTP protocol builds
it and fed through an in-memory transport: small messages echoed (a 16-byte
binary message in, its echo out) and handshakes (request, 101, close frame,
close). The client offers no compression, as picows, the client of the ASGI
row, does not. No kernel, no second process: what is left is the implementation,
the app and the event loop, the part of the ASGI row of ``make bench`` that
the implementations do not share.

``python -m bench.asgi_core`` prints CPU microseconds per operation.
``python -m bench.asgi_core --callgrind`` counts instructions instead, exact
on a busy machine: each case runs under ``valgrind --tool=callgrind`` at two
sizes and the difference is divided by the extra operations, so start-up
costs cancel out (a few minutes: ``--only`` and ``--case`` pick one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from typing import Any

from bench.asgi import WS_IMPLEMENTATIONS, echo_app
from bench.callgrind import per_operation
from tether.protocol.frames import Opcode, serialize_frame

CASES = ("message", "handshake")


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written and says when something was."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False
        self.wrote: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] | None = None
        self.protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        # None until the protocol is set: no HTTP protocol hands over here.
        return self.protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        if self.wrote is not None and not self.wrote.done():
            self.wrote.set_result(None)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)

    def abort(self) -> None:
        self.close()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )


def _request() -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        "host: 127.0.0.1:8000",
        "upgrade: websocket",
        "connection: Upgrade",
        f"sec-websocket-key: {key}",
        "sec-websocket-version: 13",
        "user-agent: bench",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _run(name: str, case: str, count: int) -> float:
    """Run ``count`` operations of ``case`` on ``name``'s class; return CPU seconds for each."""
    from uvicorn.config import Config  # noqa: PLC0415  (bench processes import what they run)
    from uvicorn.server import ServerState  # noqa: PLC0415

    config = Config(echo_app(), ws=WS_IMPLEMENTATIONS[name], lifespan="off", log_level="warning")
    config.load()
    protocol_class: Any = config.ws_protocol_class
    state = ServerState()
    loop = asyncio.get_running_loop()
    request = _request()

    async def open_one() -> tuple[Any, MemoryTransport]:
        transport = MemoryTransport()
        transport.wrote = loop.create_future()
        protocol = protocol_class(config=config, server_state=state, app_state={})
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        protocol.data_received(request)
        await transport.wrote
        return protocol, transport

    close = serialize_frame(Opcode.CLOSE, (1000).to_bytes(2, "big"), mask=True)

    async def close_one(protocol: Any, transport: MemoryTransport) -> None:
        transport.closed = loop.create_future()
        protocol.data_received(close)
        await transport.closed
        protocol.connection_lost(None)
        while state.tasks:
            # The app sees the disconnect and returns.
            await asyncio.sleep(0)

    if case == "message":
        protocol, transport = await open_one()
        frame = serialize_frame(Opcode.BINARY, bytes(16), mask=True)
        start = time.process_time()
        for _ in range(count):
            transport.wrote = loop.create_future()
            protocol.data_received(frame)
            await transport.wrote
        elapsed = time.process_time() - start
        await close_one(protocol, transport)
        return elapsed / count
    start = time.process_time()
    for _ in range(count):
        await close_one(*await open_one())
    return (time.process_time() - start) / count


def run_case(name: str, case: str, count: int) -> float:
    """Run one case on uvloop, as the ASGI row of ``make bench`` does."""
    import uvloop  # noqa: PLC0415

    return uvloop.run(_run(name, case, count))


def instructions(name: str, case: str) -> float:
    """Instructions per operation, from two callgrind runs of different sizes.

    The sizes are large enough, and the hash seed fixed, for a count to
    repeat within 0.1%: with 60 and 180 handshakes, garbage collections
    falling in one run and not the other moved it by 5%.
    """
    sizes = (1000, 4000) if case == "message" else (200, 800)
    return per_operation("bench.asgi_core", ["--only", name, "--case", case], sizes)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--only", choices=sorted(WS_IMPLEMENTATIONS), help="one implementation")
    parser.add_argument("--case", choices=CASES, help="one case")
    parser.add_argument("--count", type=int, help="operations (default: 20000 or 2000)")
    args = parser.parse_args()
    names = [args.only] if args.only else list(WS_IMPLEMENTATIONS)
    cases = [args.case] if args.case else list(CASES)
    unit = "instructions" if args.callgrind else "CPU us"
    print(f"{'implementation':<18} " + " ".join(f"{f'{c} ({unit})':>26}" for c in cases))
    reference: dict[str, float] = {}
    for name in names:
        cells = []
        for case in cases:
            if args.callgrind:
                value = instructions(name, case)
            else:
                count = args.count or (20_000 if case == "message" else 2_000)
                value = run_case(name, case, count) * 1e6
            reference.setdefault(case, value)
            cells.append(f"{value:>14,.1f} ({reference[case] / value:4.2f}x)")
        print(f"{name:<18} " + " ".join(f"{cell:>26}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
