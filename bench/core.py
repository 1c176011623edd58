"""Microbenchmark of the Sans-I/O core: parse, unmask, serialize and compress.

Prints operations and megabytes per second for each case. Figures depend on
the machine; compare runs made on the same machine, side by side.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection, Role
from tether.protocol.frames import Frame, Opcode, serialize_frame

SIZES = [("16 B", 16), ("1 KiB", 1024), ("64 KiB", 64 * 1024), ("1 MiB", 1024 * 1024)]


def measure(run: Callable[[], object], budget: float = 0.5) -> float:
    """Return operations per second of ``run``, timed for about ``budget`` seconds."""
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            return count / elapsed
        count *= 2 if elapsed < budget / 10 else max(2, int(budget / elapsed) + 1)


def row(name: str, size: int, rate: float) -> None:
    """Print one line of the table."""
    print(f"{name:<34} {rate:>14,.0f} ops/s {rate * size / 1e6:>12,.1f} MB/s")


def bench_parse() -> None:
    """A server engine parsing masked binary frames, each delivered whole."""
    server = Connection(Role.SERVER, max_size=None)
    for label, size in SIZES:
        frame = serialize_frame(Opcode.BINARY, os.urandom(size), mask=True)

        def run(frame: bytes = frame) -> None:
            server.receive_data(frame)
            server.events()

        row(f"parse + unmask {label}", size, measure(run))


def bench_serialize() -> None:
    """Client engines (masking) and server engines (not masking) building frames."""
    for role in (Role.CLIENT, Role.SERVER):
        conn = Connection(role)
        verb = "serialize + mask" if role is Role.CLIENT else "serialize"
        for label, size in SIZES:
            payload = os.urandom(size)

            def run(payload: bytes = payload, conn: Connection = conn) -> None:
                conn.send_binary(payload)
                conn.data_to_send()

            row(f"{verb} {label}", size, measure(run))


def bench_deflate() -> None:
    """Compress and decompress a 1 KiB JSON-like text message."""
    record = {"symbol": "TTHR", "bid": 101.25, "ask": 101.5, "depth": list(range(40))}
    payload = json.dumps([record] * 6).encode()[:1024]
    sender = PerMessageDeflate(False, False, 15, 15)
    receiver = PerMessageDeflate(False, False, 15, 15)
    frame = Frame(Opcode.TEXT, payload)

    def run() -> None:
        receiver.decode(sender.encode(frame))

    row("deflate round trip 1 KiB JSON", len(payload), measure(run))


def main() -> None:
    """Run every case and print the table."""
    print(f"{'case':<34} {'rate':>20} {'throughput':>17}")
    bench_parse()
    bench_serialize()
    bench_deflate()


if __name__ == "__main__":
    main()
