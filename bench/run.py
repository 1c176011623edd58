"""The benchmark suite: tether against its peers, as a table and as JSON.

``python -m bench.run`` runs the quick subset, ``--full`` everything. Each
server and each client is a process of its own (:mod:`bench.child`), the
server pinned to CPU 0 and the client to CPU 1, talking over loopback.

Three matrices: each library against itself (``self``), every client against
one fixed server (``clients``) and every server against one fixed client
(``servers``); a fourth, ``asgi``, runs one Starlette echo app under uvicorn
with each WebSocket implementation (``--ws``) against the fixed client, and
compares them with uvicorn's default, ``websockets-sansio``. The fixed peer
is picows on uvloop, whose C parser costs the least CPU, so the library under
test is what the figures measure; picows has no permessage-deflate, so for
compressed workloads the fixed peer is tether on uvloop.

Single-connection echo rates on a small VM are bounded by the wake-ups
crossing CPUs, so CPU time per message of each process is reported next to
the rates: it is what a library costs. Every figure is the median over the
repetitions; ratios compare medians measured in the same run, with the
``websockets`` set-up of the same kind (default loop, uvloop or threading)
and with picows, and read "times better": above 1 the library beats the
reference (more messages per second, fewer CPU microseconds, less memory).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.peers import LIBRARIES, Library
from bench.workloads import Workload

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

FIXED = "picows"
FIXED_DEFLATE = "tether-uvloop"
PICOWS = "picows"
WEBSOCKETS = {
    "asyncio": "websockets",
    "uvloop": "websockets-uvloop",
    "sync": "websockets-sync",
    # uvicorn's default WebSocket implementation is built on websockets.
    "asgi": "uvicorn-sansio",
    "trio": "websockets-trio",
}
MATRICES = ("self", "clients", "servers")
ASGI = ("asgi",)
SERVER_CORE, CLIENT_CORE = 0, 1
# Time for a server to settle (buffers freed, lazy allocations done) before
# its memory is read with the idle connections open.
MEMORY_SETTLE = 0.5


@dataclass(frozen=True)
class Plan:
    """A workload and the matrices it runs in."""

    workload: Workload
    matrices: tuple[str, ...] = MATRICES
    title: str = ""
    baseline: str = ""
    """The workload this one is compared with: each row also gives its cost over that one's."""


def plans(full: bool) -> list[Plan]:
    """The workloads of the quick or the full suite."""
    s = 1.0 if full else 0.25

    def echo(name: str, size: int, count: int, **kw: Any) -> Workload:
        return Workload(name, "echo", size=size, count=count, seconds=s, **kw)

    everything = [
        Plan(echo("echo 16 B", 16, 200_000), title="echo, one connection, binary"),
        Plan(echo("echo 1 KiB", 1024, 200_000)),
        Plan(echo("echo 64 KiB", 65536, 20_000)),
        Plan(echo("echo 1 MiB", 1 << 20, 2_000)),
        Plan(echo("echo 1 KiB text", 1024, 200_000, text=True), title="echo, text"),
        Plan(echo("echo 1 KiB JSON", 1024, 200_000, json=True), ("self",)),
        Plan(
            echo("echo 1 KiB JSON deflate", 1024, 200_000, json=True, compress=True),
            title="echo, JSON-like text with permessage-deflate (x plain: CPU over plain JSON)",
            baseline="echo 1 KiB JSON",
        ),
        Plan(
            Workload("stream 64 B", "stream", size=64, count=2_000_000, seconds=s),
            title="one-way pipelined throughput (sender respects backpressure)",
        ),
        Plan(Workload("stream 1 MiB", "stream", size=1 << 20, count=5_000, seconds=s)),
        Plan(
            Workload("100 conns 1 KiB", "concurrent", 1024, count=1_000_000, seconds=s, conns=100),
            title="concurrent connections doing echo round trips (p50/p99 in ms)",
        ),
        Plan(
            Workload("1000 conns 1 KiB", "concurrent", 1024, count=1_000_000, seconds=s, conns=1000)
        ),
        Plan(
            Workload("handshakes, sequential", "handshake", count=100_000, seconds=s),
            title="handshakes (open + close) per second",
        ),
        Plan(
            Workload("handshakes, 50 at once", "handshake", count=100_000, seconds=s, parallel=50)
        ),
        Plan(
            Workload("memory 1000 idle", "memory", count=1, conns=1000, seconds=60),
            ("servers",),
            title="server memory per idle connection (KiB)",
        ),
        Plan(
            Workload("memory 1000 idle deflate", "memory", compress=True, conns=1000, seconds=60),
            ("servers",),
        ),
        Plan(
            Workload("memory 5000 idle", "memory", count=1, conns=5000, seconds=120), ("servers",)
        ),
        Plan(
            Workload("memory 5000 idle deflate", "memory", compress=True, conns=5000, seconds=120),
            ("servers",),
        ),
        Plan(
            echo("ASGI echo 16 B", 16, 200_000),
            ASGI,
            title="ASGI: a Starlette echo app under uvicorn, each --ws (x ws: websockets-sansio)",
        ),
        Plan(Workload("ASGI handshakes", "handshake", count=100_000, seconds=s), ASGI),
    ]
    if full:
        return everything
    quick = {
        "echo 16 B": MATRICES,
        "echo 1 KiB": ("self",),
        "echo 1 MiB": ("self",),
        "echo 1 KiB JSON": ("self",),
        "echo 1 KiB JSON deflate": ("self",),
        "stream 64 B": ("self", "clients"),
        "100 conns 1 KiB": ("self",),
        "handshakes, sequential": ("self",),
        "memory 1000 idle": ("servers",),
        "ASGI echo 16 B": ASGI,
        "ASGI handshakes": ASGI,
    }
    return [
        Plan(p.workload, quick[p.workload.name], p.title, p.baseline)
        for p in everything
        if p.workload.name in quick
    ]


def fixed_peer(workload: Workload) -> str:
    """The fixed server or client of the ``clients`` and ``servers`` matrices."""
    return FIXED_DEFLATE if workload.compress else FIXED


def members(matrix: str, workload: Workload) -> list[Library]:
    """The libraries measured in one matrix for one workload."""
    libs = []
    for lib in LIBRARIES.values():
        if (matrix == "asgi") != (lib.flavor == "asgi"):
            continue
        if workload.compress and not lib.deflate:
            continue
        if matrix == "self" and not (lib.server and lib.client):
            continue
        if matrix == "servers" and not lib.server:
            continue
        if matrix == "clients" and (not lib.client or workload.kind == "memory"):
            continue
        libs.append(lib)
    return libs


def pair(matrix: str, lib: str, workload: Workload) -> tuple[str, str]:
    """(client, server) of ``lib``'s row in ``matrix``."""
    if matrix == "self":
        return lib, lib
    if matrix == "clients":
        return lib, fixed_peer(workload)
    # servers and asgi: the library's server, the fixed client.
    return fixed_peer(workload), lib


# processes


class ChildError(Exception):
    """A benchmark process failed, timed out or went away."""


_children: list[Child] = []


class Child:
    """A running :mod:`bench.child` process and its line-by-line replies."""

    def __init__(self, role: str, name: str, core: int, log: IO[str], env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", role, name, str(core)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
            start_new_session=True,
            env={**os.environ, **env},
        )
        _children.append(self)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, line: str) -> None:
        """Write one line to the process."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except OSError as exc:
            raise ChildError(f"{self.name} went away") from exc

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON reply, within ``timeout`` seconds."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise ChildError(f"{self.name} did not answer within {timeout:.0f} s") from None
        if line is None:
            raise ChildError(f"{self.name} exited with {self.proc.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stop(self) -> None:
        """Ask the process to quit, then kill its whole group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ChildError):
                self.send("quit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self in _children:
            _children.remove(self)


def stop_all() -> None:
    """Kill every process still running."""
    for child in list(_children):
        child.stop()


class Server(Child):
    """A server process, pinned to :data:`SERVER_CORE`."""

    def __init__(self, name: str, log: IO[str], env: dict[str, str] | None = None) -> None:
        super().__init__("server", name, SERVER_CORE, log, env or {})
        self.port = int(self.read(30)["port"])
        self.url = f"ws://127.0.0.1:{self.port}/"

    def stats(self) -> dict[str, float]:
        """The server's CPU seconds and resident bytes now."""
        self.send("stats")
        return self.read(10)


class Client(Child):
    """A client process, pinned to :data:`CLIENT_CORE`."""

    def __init__(self, name: str, log: IO[str]) -> None:
        super().__init__("client", name, CLIENT_CORE, log, {})

    def run(self, workload: Workload, server: Server) -> dict[str, float]:
        """Run one repetition of ``workload`` against ``server``; the raw figures."""
        self.send(json.dumps({"job": workload.to_json(), "url": server.url}))
        deadline = time.monotonic() + workload.seconds * 4 + 60
        marks: list[dict[str, float]] = []
        while True:
            reply = self.read(deadline - time.monotonic())
            if "checkpoint" in reply:
                if workload.kind == "memory" and marks:
                    time.sleep(MEMORY_SETTLE)
                marks.append(server.stats())
                self.send("go")
            elif "error" in reply:
                raise ChildError(reply["error"])
            else:
                result: dict[str, float] = reply["result"]
                if len(marks) != 2:
                    raise ChildError(f"{len(marks)} checkpoints instead of 2")
                result["server_cpu"] = marks[1]["cpu"] - marks[0]["cpu"]
                result["server_rss"] = marks[1]["rss"] - marks[0]["rss"]
                return result


# measurements


@dataclass
class Measurement:
    """All repetitions of one workload for one (client, server) pair."""

    workload: Workload
    client: str
    server: str
    reps: list[dict[str, float]] = field(default_factory=list)
    error: str = ""

    def figures(self) -> dict[str, float]:
        """Derived figures of each repetition, then their medians."""
        w = self.workload
        derived: list[dict[str, float]] = []
        for r in self.reps:
            n = max(1, r["count"])
            if w.kind == "memory":
                derived.append({"kib_per_conn": r["server_rss"] / n / 1024, "open_s": r["wall"]})
                continue
            d = {
                "rate": r["count"] / r["wall"],
                "client_us": r["cpu"] / n * 1e6,
                "server_us": r["server_cpu"] / n * 1e6,
            }
            if w.kind == "stream":
                d["mb_s"] = d["rate"] * w.size / 1e6
            if "p50" in r:
                d["p50_ms"], d["p99_ms"] = r["p50"] * 1e3, r["p99"] * 1e3
            derived.append(d)
        if not derived:
            return {}
        return {key: statistics.median(d[key] for d in derived) for key in derived[0]}


def measure(
    client_name: str,
    server_name: str,
    workloads: list[Workload],
    reps: int,
    *,
    log: IO[str],
    progress: bool = False,
) -> list[Measurement]:
    """Run ``workloads`` ``reps`` times each for one pair; one server and client for all."""
    out = [Measurement(w, client_name, server_name) for w in workloads]
    server: Server | None = None
    client: Client | None = None
    try:
        for m in out:
            fresh = m.workload.kind == "memory"
            for _ in range(reps):
                try:
                    if server is None or fresh:
                        if server is not None:
                            server.stop()
                        server = Server(server_name, log)
                    if client is None:
                        client = Client(client_name, log)
                    m.reps.append(client.run(m.workload, server))
                except ChildError as exc:
                    m.error = str(exc)
                    for child in (server, client):
                        if child is not None:
                            child.stop()
                    server = client = None
                    break
            if progress:
                state = f"error: {m.error}" if m.error else "ok"
                print(f"  {m.workload.name}: {client_name} -> {server_name} {state}", flush=True)
    finally:
        for child in (server, client):
            if child is not None:
                child.stop()
    return out


def ratio(value: float | None, reference: float | None, higher_is_better: bool) -> float | None:
    """How many times better ``value`` is than ``reference``."""
    if not value or not reference:
        return None
    return value / reference if higher_is_better else reference / value


def rows(
    all_plans: list[Plan], results: dict[tuple[str, str, str], Measurement]
) -> Iterator[dict[str, Any]]:
    """One row per (workload, matrix, library), with figures and ratios."""
    for plan in all_plans:
        w = plan.workload
        for matrix in plan.matrices:
            libs = members(matrix, w)
            names = {lib.name for lib in libs}

            def figures(name: str, w: Workload = w, matrix: str = matrix) -> dict[str, float]:
                m = results.get((w.name, *pair(matrix, name, w)))
                return m.figures() if m and not m.error else {}

            def cost(f: dict[str, float], matrix: str = matrix) -> float | None:
                if "kib_per_conn" in f:
                    return f["kib_per_conn"]
                if not f:
                    return None
                side = {
                    "self": f["client_us"] + f["server_us"],
                    "clients": f["client_us"],
                    "servers": f["server_us"],
                    "asgi": f["server_us"],
                }
                return side[matrix]

            for lib in libs:
                client, server = pair(matrix, lib.name, w)
                m = results.get((w.name, client, server))
                if m is None:
                    continue
                f = figures(lib.name)
                row: dict[str, Any] = {
                    "workload": w.name,
                    "matrix": matrix,
                    "library": lib.name,
                    "client": client,
                    "server": server,
                    "figures": f,
                    "error": m.error,
                }
                for ref_key, ref in (("websockets", WEBSOCKETS[lib.flavor]), ("picows", PICOWS)):
                    rf = figures(ref) if ref in names else {}
                    row[f"rate_vs_{ref_key}"] = ratio(f.get("rate"), rf.get("rate"), True)
                    row[f"cost_vs_{ref_key}"] = ratio(cost(f), cost(rf), False)
                if plan.baseline:
                    m = results.get((plan.baseline, client, server))
                    base = m.figures() if m and not m.error else {}
                    # Times the cost of the baseline workload: above 1 costs more.
                    row["cost_over_baseline"] = ratio(cost(base), cost(f), False)
                yield row


# output


def fmt(value: float | None, digits: int = 2) -> str:
    """A ratio or a figure, or a dash."""
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def render(all_plans: list[Plan], table: list[dict[str, Any]]) -> str:
    """The table printed at the end of a run."""
    lines = [
        "rate: messages (or handshakes) per second; cli/srv: CPU microseconds per message of",
        "the client/server process; x ws / x pw: times better than websockets (same loop kind)",
        "/ picows in the same run, on rate and on CPU (self: client + server CPU; clients:",
        "client CPU; servers and asgi: server CPU). Medians over the repetitions. ASGI rows",
        "compare with uvicorn's websockets-sansio instead of websockets.",
    ]
    header = (
        f"  {'library':<18} {'rate':>9} {'cli us':>8} {'srv us':>8} {'p50':>6} {'p99':>6}"
        f"  {'rate x ws':>9} {'x pw':>5}  {'cpu x ws':>8} {'x pw':>5}"
    )
    for plan in all_plans:
        w = plan.workload
        if plan.title:
            lines += ["", f"== {plan.title}"]
        for matrix in plan.matrices:
            fixed = fixed_peer(w)
            where = {
                "self": "each library against itself",
                "clients": f"clients against the {fixed} server",
                "servers": f"servers against the {fixed} client",
                "asgi": f"uvicorn's --ws implementations against the {fixed} client",
            }[matrix]
            lines += ["", f"{w.name} -- {where}"]
            memory = w.kind == "memory"
            lines.append(
                f"  {'library':<18} {'KiB/conn':>9}  {'x ws':>6} {'x pw':>6}" if memory else header
            )
            for row in table:
                if row["workload"] != w.name or row["matrix"] != matrix:
                    continue
                f = row["figures"]
                if row["error"] or not f:
                    lines.append(f"  {row['library']:<18} n/a ({row['error'][:70]})")
                elif memory:
                    lines.append(
                        f"  {row['library']:<18} {fmt(f['kib_per_conn'], 1):>9}"
                        f"  {fmt(row['cost_vs_websockets']):>6} {fmt(row['cost_vs_picows']):>6}"
                    )
                else:
                    rate = f["rate"]
                    lines.append(
                        f"  {row['library']:<18} {fmt(rate, 0) if rate >= 100 else fmt(rate, 1):>9}"
                        f" {fmt(f['client_us'], 1):>8} {fmt(f['server_us'], 1):>8}"
                        f" {fmt(f.get('p50_ms'), 1):>6} {fmt(f.get('p99_ms'), 1):>6}"
                        f"  {fmt(row['rate_vs_websockets']):>9} {fmt(row['rate_vs_picows']):>5}"
                        f"  {fmt(row['cost_vs_websockets']):>8} {fmt(row['cost_vs_picows']):>5}"
                        + (f"  x plain {fmt(row['cost_over_baseline'])}" if plan.baseline else "")
                    )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Installed versions of tether and the peers."""
    out = {"python": platform.python_version()}
    packages = ("tether", "websockets", "aiohttp", "picows", "websocket-client", "uvloop")
    for package in (*packages, "uvicorn", "starlette", "wsproto", "httptools", "granian"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "missing"
    return out


def run(
    full: bool, output: Path, only: set[str] | None = None, names: set[str] | None = None
) -> list[dict[str, Any]]:
    """Run the suite, print the table and write the JSON; return the rows.

    ``only`` keeps these libraries' rows (and their references),
    ``names`` these workloads and the baselines they are compared with.
    """
    all_plans = plans(full)
    if names:
        unknown = names - {p.workload.name for p in all_plans}
        if unknown:
            raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
        keep = names | {p.baseline for p in all_plans if p.workload.name in names}
        all_plans = [p for p in all_plans if p.workload.name in keep]
    reps = 5 if full else 3
    if only:
        # Ratios need the references measured too.
        only = only | {PICOWS} | {WEBSOCKETS[LIBRARIES[name].flavor] for name in only}
    # Every distinct (client, server) pair runs once per workload, even when
    # it is a row of several matrices (picows against itself is in all three).
    jobs: dict[tuple[str, str], list[Workload]] = {}
    for plan in all_plans:
        for matrix in plan.matrices:
            for lib in members(matrix, plan.workload):
                if only and lib.name not in only:
                    continue
                workloads = jobs.setdefault(pair(matrix, lib.name, plan.workload), [])
                if plan.workload not in workloads:
                    workloads.append(plan.workload)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[tuple[str, str, str], Measurement] = {}
    with open(RESULTS / "peers.log", "w") as log:
        for (client, server), workloads in jobs.items():
            print(f"{client} -> {server}: {len(workloads)} workloads", flush=True)
            for m in measure(client, server, workloads, reps, log=log, progress=True):
                results[(m.workload.name, client, server)] = m
    all_rows = [r for r in rows(all_plans, results) if not only or r["library"] in only]
    print()
    print(render(all_plans, all_rows))
    elapsed = time.monotonic() - started
    print(f"\n{len(results)} measurements, {reps} repetitions each, in {elapsed:.0f} s")
    report = {
        "mode": "full" if full else "quick",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "versions": versions(),
        "repetitions": reps,
        "fixed_peer": FIXED,
        "fixed_peer_deflate": FIXED_DEFLATE,
        "rows": all_rows,
        "measurements": [
            {
                "workload": m.workload.to_json(),
                "client": m.client,
                "server": m.server,
                "reps": m.reps,
                "median": m.figures(),
                "error": m.error,
            }
            for m in results.values()
        ],
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"JSON: {output}")
    return all_rows


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="every workload, 5 repetitions")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--only", nargs="*", help="restrict to these libraries' rows")
    parser.add_argument(
        "--workloads", nargs="*", help="restrict to these workloads, by name (e.g. 'stream 64 B')"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C so the children are killed either way.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        run(
            args.full,
            args.output,
            set(args.only) if args.only else None,
            set(args.workloads) if args.workloads else None,
        )
    finally:
        stop_all()


if __name__ == "__main__":
    main()
