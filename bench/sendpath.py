"""The small-message cells of ``make bench``, one side at a time: what sending and echoing cost.

Four cases, each over loopback with the real processes of :mod:`bench.peers`
and the loops of :mod:`bench.workloads`, the side under test against picows
(whose C framing costs the least):

- ``send64``: the client under test streams pipelined 64-byte binary messages
  to picows' server (the cell "client sending pipelined 64 B messages");
  figures per message. ``tether-nowait`` is tether's client sending with
  ``send_nowait`` (the callback API's send) rather than ``await send``.
- ``echo16``: the server under test echoes 16-byte binary messages for
  picows' client (the cell "server echo 16 B"); figures per round trip.
- ``client16``: the client under test makes 16-byte round trips against
  picows' server; figures per round trip.
- ``deflate``: the 1 KiB JSON-like text echo with permessage-deflate, the
  client under test against tether's uvloop server (picows has no
  compression); figures per round trip of the client.

``python -m bench.sendpath --callgrind`` counts the user-space instructions of
the side under test with ``valgrind --tool=callgrind``: it runs the case at
two sizes and divides the difference by the extra operations, so start-up,
handshake and closing cancel out. The count is exact and, with the hash seed
fixed (:func:`bench.callgrind.seeded`), repeats from run to run whatever else
the machine does; the kernel (a system call per write, for
instance) is not in it. Without ``--callgrind`` it reports CPU microseconds
(user + system, from ``getrusage``) per operation of the side under test, the
libraries taking turns in the same run: on a shared machine only the ratios
within one run mean something. ``--lib`` and ``--case`` pick some.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from typing import Any

from bench.callgrind import VALGRIND, collected, seeded
from bench.child import run_job, server_stats, start_server
from bench.peers import LIBRARIES
from bench.workloads import Result, Workload

# case: (side under test, workload, fixed peer, sizes for callgrind, size for CPU)
CASES: dict[str, tuple[str, Workload, str, tuple[int, int], int]] = {
    "send64": (
        "client",
        Workload("stream 64 B", "stream", size=64, count=0, seconds=1e9),
        "picows",
        (2_000, 6_000),
        100_000,
    ),
    "echo16": (
        "server",
        Workload("echo 16 B", "echo", size=16, count=0, seconds=1e9),
        "picows",
        (500, 1_500),
        10_000,
    ),
    "client16": (
        "client",
        Workload("echo 16 B", "echo", size=16, count=0, seconds=1e9),
        "picows",
        (500, 1_500),
        10_000,
    ),
    "deflate": (
        "client",
        Workload(
            "echo 1 KiB JSON deflate",
            "echo",
            size=1024,
            json=True,
            compress=True,
            count=0,
            seconds=1e9,
        ),
        "tether-uvloop",
        (300, 900),
        5_000,
    ),
}
DEFAULT_LIBS = ("tether-uvloop", "tether-nowait", "picows")


def _workload(case: str, count: int) -> Workload:
    w = CASES[case][1]
    return Workload.from_json({**w.to_json(), "count": count})


def run_client(name: str, url: str, workload: Workload) -> Result:
    """Run ``workload`` with client library ``name`` (no checkpoints)."""
    return run_job(name, url, workload, lambda: None)


def _client_main(name: str, case: str, count: int, port: int) -> None:
    result = run_client(name, f"ws://127.0.0.1:{port}/", _workload(case, count))
    if result["count"] != count:
        raise SystemExit(f"{name} did {result['count']} of {count}")
    print(result["cpu"], flush=True)


def _client_command(name: str, *args: str, callgrind: bool = False) -> list[str]:
    command = [sys.executable, "-m", "bench.sendpath", "--side", "client", name, *args]
    return [*VALGRIND, *command] if callgrind else command


def run_once(case: str, lib: str, count: int, callgrind: bool) -> float:
    """Run ``case`` once with ``lib`` on the side under test.

    Return the callgrind total of that side's process, or its CPU seconds
    over the measured loop.
    """
    side, _, peer, _, _ = CASES[case]
    server_name, client_name = (lib, peer) if side == "server" else (peer, lib)
    env = seeded()
    server, port = start_server(
        server_name,
        wrapper=VALGRIND if callgrind and side == "server" else (),
        stderr=subprocess.PIPE,
        env=env,
    )
    assert server.stdin is not None
    try:
        cpu_before = float(server_stats(server)["cpu"])
        client = subprocess.run(
            _client_command(
                client_name,
                case,
                str(count),
                str(port),
                callgrind=callgrind and side == "client",
            ),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
            env=env,
        )
        if client.returncode:
            raise RuntimeError(f"client failed: {client.stderr[-800:]}")
        cpu_after = float(server_stats(server)["cpu"])
        _, server_err = server.communicate("quit\n", timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    if not callgrind:
        return float(client.stdout.split()[-1]) if side == "client" else cpu_after - cpu_before
    return float(collected(server_err if side == "server" else client.stderr))


def instructions(case: str, lib: str, sizes: tuple[int, int] | None = None) -> float:
    """Instructions per operation of the side under test, from two run lengths.

    ``sizes`` replaces the case's two lengths: longer runs spread a garbage
    collection that falls in one of them over more operations.
    """
    small, large = CASES[case][3] if sizes is None else sizes
    a = run_once(case, lib, small, callgrind=True)
    b = run_once(case, lib, large, callgrind=True)
    return (b - a) / (large - small)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--case", nargs="*", choices=sorted(CASES), help="some cases")
    parser.add_argument("--lib", nargs="*", help=f"libraries (default: {' '.join(DEFAULT_LIBS)})")
    parser.add_argument("--reps", type=int, default=3, help="CPU runs per cell (median)")
    parser.add_argument(
        "--sizes", type=int, nargs=2, help="two run lengths for --callgrind (default: the case's)"
    )
    parser.add_argument("--side", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        _, name, *rest = args.side
        _client_main(name, rest[0], int(rest[1]), int(rest[2]))
        return
    cases = args.case or list(CASES)
    libs = args.lib or list(DEFAULT_LIBS)
    unit = "instructions" if args.callgrind else "CPU us"
    for case in cases:
        side = CASES[case][0]
        print(f"{case} ({side} under test, {unit} per operation)", flush=True)
        runnable = [
            lib
            for lib in libs
            if (LIBRARIES[lib].deflate or not CASES[case][1].compress)
            and (LIBRARIES[lib].client if side == "client" else LIBRARIES[lib].server)
        ]
        figures: dict[str, Any] = {}
        if args.callgrind:
            for lib in runnable:
                figures[lib] = instructions(case, lib, args.sizes)
        else:
            count = CASES[case][4]
            runs: dict[str, list[float]] = {lib: [] for lib in runnable}
            # Round after round, each library in turn: load changes hit them all.
            for _ in range(args.reps):
                for lib in runnable:
                    runs[lib].append(run_once(case, lib, count, False) / count * 1e6)
            figures = {lib: statistics.median(values) for lib, values in runs.items()}
        reference = figures.get(libs[0])
        for lib, value in figures.items():
            ratio = f"  ({value / reference:.2f}x {libs[0]})" if reference else ""
            print(f"  {lib:<18} {value:>12,.{0 if args.callgrind else 2}f}{ratio}", flush=True)


if __name__ == "__main__":
    main()
