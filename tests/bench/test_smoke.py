"""The benchmark suite still runs: one tiny workload, tether against itself.

No timing is asserted; this only keeps the runner, the child processes and
the adapters from rotting.
"""

from __future__ import annotations

import asyncio
import io
import os
from contextlib import redirect_stdout
from pathlib import Path

from bench.asgi import WS_IMPLEMENTATIONS
from bench.run import Plan, measure, render, rows
from bench.workloads import Workload

from bench import asgi_core, fanout, memory


def test_echo_runs_and_reports(tmp_path: Path) -> None:
    workload = Workload("echo 16 B", "echo", size=16, count=200, seconds=5)
    with open(tmp_path / "peers.log", "w") as log:
        (measurement,) = measure("tether", "tether", [workload], reps=1, log=log)
    assert measurement.error == ""
    (rep,) = measurement.reps
    assert rep["count"] == 200
    assert rep["server_cpu"] > 0
    figures = measurement.figures()
    assert figures["rate"] > 0
    assert figures["client_us"] > 0
    table = list(
        rows([Plan(workload, ("self",))], {("echo 16 B", "tether", "tether"): measurement})
    )
    assert [row["library"] for row in table] == ["tether"]
    assert "tether" in render([Plan(workload, ("self",))], table)


def test_memory_per_connection_is_measured() -> None:
    # Fifty connections to a real server process; the figure is RSS growth
    # per connection, which must be positive and far below a megabyte.
    per_connection = asyncio.run(memory.measure("asyncio", False, 50, exchange=True))
    assert 0 < per_connection < 1 << 20


def test_asgi_row_runs() -> None:
    # tether behind uvicorn, serving the Starlette echo app, against the fixed client.
    workloads = [
        Workload("ASGI echo 16 B", "echo", size=16, count=200, seconds=5),
        Workload("ASGI handshakes", "handshake", count=20, seconds=5),
    ]
    with open(os.devnull, "w") as log:
        measurements = measure("picows", "uvicorn-tether", workloads, reps=1, log=log)
    for measurement in measurements:
        assert measurement.error == ""
        (rep,) = measurement.reps
        assert rep["count"] == measurement.workload.count
        assert rep["server_cpu"] > 0
    plans = [Plan(workload, ("asgi",)) for workload in workloads]
    results = {(m.workload.name, "picows", "uvicorn-tether"): m for m in measurements}
    table = list(rows(plans, results))
    assert [row["library"] for row in table] == ["uvicorn-tether"] * 2


def test_fanout_through_redis_runs_and_reports() -> None:
    # Twenty subscribers on two tether workers, a paced phase and a burst
    # through a redis-server of the benchmark's own; Django Channels, the
    # other system of `make bench`, needs the bench extra.
    args = [
        "--systems", "tether", "--subscribers", "20", "--workers", "2",
        "--client-processes", "1", "--rate", "20", "--seconds", "0.5", "--burst", "20",
        "--timeout", "60",
    ]  # fmt: skip
    with redirect_stdout(io.StringIO()) as output:
        assert fanout.main(args) == 0
    (row,) = [line for line in output.getvalue().splitlines() if line.startswith("| tether")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:3] == ["20", "2"]
    # Every message reached every subscriber.
    assert cells[-1] == "0"


def test_asgi_core_runs() -> None:
    # Every implementation, in memory: a few messages and handshakes each.
    for name in WS_IMPLEMENTATIONS:
        assert asgi_core.run_case(name, "message", 20) > 0
        assert asgi_core.run_case(name, "handshake", 5) > 0


def test_trio_adapters_run(tmp_path: Path) -> None:
    # tether.trio and websockets.trio, each against itself, through the runner.
    workload = Workload("echo 16 B", "echo", size=16, count=50, seconds=5)
    with open(tmp_path / "peers.log", "w") as log:
        for library in ("tether-trio", "websockets-trio"):
            (measurement,) = measure(library, library, [workload], reps=1, log=log)
            assert measurement.error == "", library
            assert measurement.reps[0]["count"] == 50
