"""Server CPU per echoed message, several servers measured in the same run, interleaved.

``python -m bench.echo_cpu [--lib tether-uvloop picows ...] [--rounds 5]``
starts each library's echo server (``python -m bench.child server LIB
CORE``, the servers of ``make bench``) once per run length, drives it with
one asyncio client in this process that sends a 16-byte message and waits
for its echo, ``N`` times, and reads the CPU time (user and system) of the
server process from its resource usage when it exits. The difference
between two run lengths, over the difference of ``N``, is the server's CPU
per echo, without start-up, the handshake and the closing.

The libraries take turns within each round, so a change of the machine's
load during the run weighs on each of them alike; the median over the
rounds is printed, and each library's ratio to the first one's. On a
shared machine this compares servers more steadily than ``bench.run``,
which measures one library after the other; it is still a time, so compare
only figures of the same run (``bench.echo_callgrind`` counts instructions,
which do not depend on the load).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics

from bench.child import start_server
from bench.echo_callgrind import client


def server_cpu(library: str, count: int, size: int, core: int) -> float:
    """CPU seconds of one ``library`` server process that echoed ``count`` (+ 20) messages."""
    server, port = start_server(library, core)
    assert server.stdin is not None
    try:
        asyncio.run(client(port, count, size))
        server.stdin.write("quit\n")
        server.stdin.flush()
    except BaseException:
        server.kill()
        raise
    _, status, usage = os.wait4(server.pid, 0)
    server.returncode = os.waitstatus_to_exitcode(status)
    if server.returncode != 0:
        raise RuntimeError(f"the {library} server exited with {server.returncode}")
    return usage.ru_utime + usage.ru_stime


def measure(
    libraries: list[str], rounds: int, counts: tuple[int, int], size: int = 16, core: int = 1
) -> dict[str, list[float]]:
    """Each library's server CPU per echo, in seconds, once per round."""
    low, high = counts
    results: dict[str, list[float]] = {library: [] for library in libraries}
    for _ in range(rounds):
        for library in libraries:
            short = server_cpu(library, low, size, core)
            long = server_cpu(library, high, size, core)
            results[library].append((long - short) / (high - low))
    return results


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", nargs="+", default=["tether-uvloop", "picows"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--counts", type=int, nargs=2, default=(2000, 22000))
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--core", type=int, default=1, help="the CPU the servers are pinned to")
    args = parser.parse_args()
    results = measure(args.lib, args.rounds, tuple(args.counts), args.size, args.core)
    first = statistics.median(results[args.lib[0]])
    print(f"server CPU per {args.size} B echo, median of {args.rounds} rounds (each round's)")
    for library, figures in results.items():
        median = statistics.median(figures)
        each = " ".join(f"{figure * 1e6:.1f}" for figure in figures)
        print(f"  {library:<20} {median * 1e6:6.2f} us  ({median / first:.2f}x)  [{each}]")


if __name__ == "__main__":
    main()
