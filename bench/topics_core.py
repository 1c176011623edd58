"""What one copy of a published message costs the asyncio :class:`tether.Topics`, in process.

A topic of 100 server connections whose transports keep nothing (the
``send_core`` harness's), on uvloop: each operation is one
``publish_local`` of a 64-byte message, and the figure is per subscriber
written to. No socket means no direct write (``write_shared``): this is the
path of the subscribers that path leaves to Python (compressed, TLS, or
with a write buffer in use).

``python -m bench.topics_core`` prints CPU microseconds per copy;
``--callgrind`` counts instructions, from two callgrind runs of different
sizes, so that start-up cancels out (exact on a busy machine).
"""

from __future__ import annotations

import argparse
import time

from bench.callgrind import per_operation
from bench.send_core import _open
from tether.asyncio.topics import Topics
from tether.protocol.server import ServerProtocol

SUBSCRIBERS = 100


async def _run(count: int) -> float:
    """Publish ``count`` messages; return CPU seconds for each copy written."""
    topics = Topics()
    for _ in range(SUBSCRIBERS):
        ws, _ = _open(ServerProtocol())
        topics.subscribe(ws, "room")
    message = bytes(64)
    start = time.process_time()
    for _ in range(count):
        sent = topics.publish_local("room", message)
    elapsed = time.process_time() - start
    assert sent == SUBSCRIBERS
    return elapsed / (count * SUBSCRIBERS)


def run(count: int) -> float:
    """Run on uvloop, as the bench's tether-uvloop set-up does."""
    import uvloop  # noqa: PLC0415  (bench processes import what they run)

    return uvloop.run(_run(count))


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--count", type=int, help="messages published (default: 2000)")
    args = parser.parse_args()
    if args.callgrind:
        copies = per_operation("bench.topics_core", [], (200, 600)) / SUBSCRIBERS
        print(f"copy {copies:>10,.0f} instructions", flush=True)
    elif args.count is not None:
        # One run, as callgrind starts it: no output needed.
        run(args.count)
    else:
        print(f"copy {run(2000) * 1e6:>10.2f} CPU us", flush=True)


if __name__ == "__main__":
    main()
