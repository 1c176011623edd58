"""Where a server's time goes: one echo workload with the server under cProfile.

``python -m bench.profile tether-uvloop`` runs 16-byte echo round trips from
the fixed picows client (``--deflate --size 1024 --client tether-uvloop``:
compressed JSON-like text instead) and prints the server's functions with the most
time of their own, then with the most cumulative time.
"""

from __future__ import annotations

import argparse
import pstats
import tempfile
from pathlib import Path

from bench.run import FIXED, RESULTS, Client, Server, stop_all
from bench.workloads import Workload


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("server", help="library whose server is profiled, e.g. tether-uvloop")
    parser.add_argument("--client", default=FIXED)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--deflate", action="store_true", help="JSON-like text, compressed")
    args = parser.parse_args()
    workload = Workload(
        "profile",
        "echo",
        size=args.size,
        count=args.count,
        seconds=30,
        json=args.deflate,
        compress=args.deflate,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, open(RESULTS / "profile.log", "w") as log:
        path = Path(tmp) / "server.prof"
        try:
            server = Server(args.server, log, {"BENCH_PROFILE": str(path)})
            client = Client(args.client, log)
            result = client.run(workload, server)
            client.stop()
            server.send("quit")
            server.proc.wait(30)
        finally:
            stop_all()
        n = result["count"]
        print(f"{n} round trips, server CPU {result['server_cpu'] / n * 1e6:.1f} us each")
        stats = pstats.Stats(str(path))
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
