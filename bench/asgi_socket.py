"""The ASGI row's server over real sockets: system calls and instructions per operation.

:mod:`bench.asgi_core` counts what each ``--ws`` class costs in process;
the ASGI row of ``make bench`` measures the whole uvicorn server over
loopback, with uvicorn's HTTP protocol, the event loop and the kernel in the
count. This harness runs that same server (:func:`bench.asgi.serve_uvicorn`:
httptools, uvloop) in a child process, drives it with the row's picows
client for a fixed number of operations (16-byte echoes, or handshakes with
their close), and counts the server's work in one of two ways:

- ``--strace``: system calls of the server, by name, under ``strace -f -c``;
- ``--callgrind``: the server's instructions in user space, under
  ``valgrind --tool=callgrind``;
- ``--cpu``: the server's user and system CPU time per operation, from
  ``/proc``, the servers in turn in the same run (a CPU time, so only a
  ratio within one run means something on a shared machine).

``--only`` also takes the benchmark's plain asyncio servers, ``picows`` (in C
on uvloop, no ASGI) and ``tether-uvloop``: the same counts for them are the
floors under the uvicorn rows, what the event loop and the kernel cost.

Each count (but ``--cpu``) is taken at two sizes and the difference is divided
by the extra operations, so start-up and shutdown cancel out. Counts do not depend on the
machine's load. ``python -m bench.asgi_socket --strace`` prints one table
per case (``--only`` and ``--case`` pick one); a run takes a minute or two.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import uvloop

from bench.callgrind import VALGRIND, collected, seeded
from bench.peers import LIBRARIES

CASES = ("message", "handshake")
SERVERS = sorted(
    name
    for name, library in LIBRARIES.items()
    if library.server and library.flavor in ("asgi", "asyncio", "uvloop")
)
"""The servers this harness runs: uvicorn's ``--ws`` classes, and for the floors under
them the asyncio servers of the benchmark (``picows``, in C on uvloop; ``tether-uvloop``)."""
SIZES = {"message": (200, 1200), "handshake": (50, 250)}


def serve(name: str) -> None:
    """The server process: ``name``'s echo server, its port on standard output."""
    from bench.peers import serve as serve_library  # noqa: PLC0415

    def ready(port: int) -> None:
        print(port, flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        # uvicorn stops on SIGINT, then raises it again; the others just raise it.
        serve_library(name, ready)


async def drive(port: int, case: str, count: int) -> None:
    """``count`` echoes of 16 bytes on one connection, or ``count`` handshakes, in sequence."""
    from bench.peers import picows_client  # noqa: PLC0415

    async with picows_client(f"ws://127.0.0.1:{port}/") as connect:
        if case == "handshake":
            for _ in range(count):
                conn = await connect(False)
                await conn.close()
            return
        conn = await connect(False)
        payload = bytes(16)
        for _ in range(count):
            await conn.send_bytes(payload)
            await conn.recv()
        await conn.close()


@contextlib.contextmanager
def _server(wrapper: list[str], name: str, report: IO[str] | None) -> Iterator[tuple[int, int]]:
    """Run the server under ``wrapper`` (its standard error to ``report``), with a fixed hash seed.

    Yield its port and the process id of the wrapper (of the server without one).
    """
    command = [*wrapper, sys.executable, "-m", "bench.asgi_socket", "--serve", name]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=report,
        text=True,
        start_new_session=True,
        env=seeded(),
    )
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline()), server.pid
    finally:
        # To the whole group: the wrapper and the server under it.
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=120)


def _warm_up(port: int, case: str) -> None:
    """One operation, so that lazy imports and caches fall before the count starts.

    Under valgrind the server may take a while to start serving: the
    client's handshake timeout is tried again.
    """
    for attempt in range(20):
        try:
            uvloop.run(drive(port, case, 1))
            return
        except TimeoutError:
            if attempt == 19:
                raise


def run_server(wrapper: list[str], name: str, case: str, count: int) -> str:
    """Run the server under ``wrapper`` for ``count`` operations; return the wrapper's report."""
    with tempfile.TemporaryFile("w+") as report:
        with _server(wrapper, name, report) as (port, _):
            _warm_up(port, case)
            uvloop.run(drive(port, case, count))
        report.seek(0)
        return report.read()


def cpu_split(name: str, case: str, count: int) -> tuple[float, float]:
    """User and system CPU microseconds per operation of the server, without a wrapper."""
    with _server([], name, None) as (port, pid):
        _warm_up(port, case)
        user0, system0 = _times(pid)
        uvloop.run(drive(port, case, count))
        user1, system1 = _times(pid)
    scale = 1e6 / os.sysconf("SC_CLK_TCK") / count
    return (user1 - user0) * scale, (system1 - system0) * scale


def _times(pid: int) -> tuple[int, int]:
    """User and system clock ticks of process ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def syscalls(output: str) -> Counter[str]:
    """System call counts by name, from the table ``strace -c`` printed."""
    counts: Counter[str] = Counter()
    for line in output.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] name
        if len(fields) in (5, 6) and re.fullmatch(r"[\d.]+", fields[0]) and fields[-1] != "total":
            counts[fields[-1]] += int(fields[3])
    return counts


def strace_per_operation(name: str, case: str) -> dict[str, float]:
    """System calls per operation of the server, by name."""
    small, large = SIZES[case]
    runs = []
    for count in (small, large):
        with tempfile.NamedTemporaryFile() as out:
            # -f: uvicorn may start threads; -o: keep the server's own stderr apart.
            run_server(["strace", "-f", "-c", "-o", out.name], name, case, count)
            runs.append(syscalls(Path(out.name).read_text()))
    names = set(runs[0]) | set(runs[1])
    per = {n: (runs[1][n] - runs[0][n]) / (large - small) for n in names}
    return {n: v for n, v in sorted(per.items()) if abs(v) >= 0.01}


def callgrind_per_operation(name: str, case: str) -> float:
    """Instructions per operation of the server, user space."""
    small, large = SIZES[case]
    counts = [collected(run_server(VALGRIND, name, case, n)) for n in (small, large)]
    return (counts[1] - counts[0]) / (large - small)


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--strace", action="store_true", help="count system calls")
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--cpu", action="store_true", help="user and system CPU time")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --cpu")
    parser.add_argument("--only", choices=SERVERS, nargs="*")
    parser.add_argument("--case", choices=CASES)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    names = args.only or ["uvicorn-sansio", "uvicorn-tether"]
    cases = [args.case] if args.case else list(CASES)
    for case in cases:
        if args.strace:
            table = {name: strace_per_operation(name, case) for name in names}
            calls = sorted(set().union(*table.values()))
            print(f"system calls per {case}:")
            print(f"  {'call':<16} " + " ".join(f"{n:>16}" for n in names))
            for call in calls:
                print(f"  {call:<16} " + " ".join(f"{table[n].get(call, 0):>16.2f}" for n in names))
            totals = " ".join(f"{sum(table[n].values()):>16.2f}" for n in names)
            print(f"  {'total':<16} {totals}", flush=True)
        if args.cpu:
            count = 20_000 if case == "message" else 2_000
            split: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
            for _ in range(args.rounds):
                for name in names:
                    split[name].append(cpu_split(name, case, count))
            print(f"server CPU us per {case} (user + system), {args.rounds} rounds, medians:")
            for name in names:
                user = statistics.median(u for u, _ in split[name])
                system = statistics.median(s for _, s in split[name])
                total = user + system
                print(f"  {name:<16} {user:8.1f} + {system:8.1f} = {total:8.1f}", flush=True)
        if args.callgrind:
            for name in names:
                value = callgrind_per_operation(name, case)
                print(f"{name:<16} {case:<10} {value:>12,.0f} instructions", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
