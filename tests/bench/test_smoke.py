"""The benchmark suite still runs: one tiny workload, tether against itself.

No timing is asserted; this only keeps the runner, the child processes and
the adapters from rotting.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from bench.asgi import WS_IMPLEMENTATIONS
from bench.callgrind import seeded
from bench.run import Plan, measure, render, rows, run
from bench.workloads import Workload

from bench import asgi_core, asgi_socket, echo_cpu, fanout, memory, send_core, sendpath


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


def test_asgi_socket_runs() -> None:
    # tether's class under a real uvicorn, driven over loopback by the row's client.
    for case in asgi_socket.CASES:
        user, system = asgi_socket.cpu_split("uvicorn-tether", case, 20)
        assert user >= 0
        assert system >= 0


def test_send_core_runs() -> None:
    # The pipelined send, the echo and the coroutine floor, in memory.
    for case in send_core.CASES:
        assert send_core.run_case(case, 300) > 0


def test_listener_server_row_runs() -> None:
    # tether's callback server against the fixed client: the echo, and the
    # one-way stream into its sink, whose summary checks every message.
    workloads = [
        Workload("echo 16 B", "echo", size=16, count=200, seconds=5),
        Workload("stream 64 B", "stream", size=64, count=2000, seconds=5),
    ]
    with open(os.devnull, "w") as log:
        measurements = measure("picows", "tether-listener", workloads, reps=1, log=log)
    for measurement in measurements:
        assert measurement.error == ""
        assert measurement.reps[0]["count"] == measurement.workload.count
        assert measurement.reps[0]["server_cpu"] > 0


def test_sendpath_cells_run() -> None:
    # The side under test against picows' real processes, each way; run_once
    # raises if a message was lost or the sink saw one out of order.
    for case, count in (("send64", 2000), ("echo16", 100), ("client16", 100)):
        assert sendpath.run_once(case, "tether-uvloop", count, callgrind=False) >= 0


def test_nowait_client_row_runs() -> None:
    # The client sending with send_nowait: the stream (every message checked
    # by picows' sink) and the echo.
    for case, count in (("send64", 2000), ("client16", 100)):
        assert sendpath.run_once(case, "tether-nowait", count, callgrind=False) >= 0


def test_echo_cpu_runs() -> None:
    # Two servers taking turns, each echoing every message (the client
    # checks each echo); a CPU time per echo for each round.
    results = echo_cpu.measure(["tether-uvloop", "tether-listener"], 1, (20, 120))
    assert set(results) == {"tether-uvloop", "tether-listener"}
    assert all(len(figures) == 1 for figures in results.values())


def test_unknown_workload_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown workloads: no such"):
        run(False, tmp_path / "out.json", {"tether"}, {"no such"})


def test_trio_adapters_run(tmp_path: Path) -> None:
    # tether.trio and websockets.trio, each against itself, through the runner.
    workload = Workload("echo 16 B", "echo", size=16, count=50, seconds=5)
    with open(tmp_path / "peers.log", "w") as log:
        for library in ("tether-trio", "websockets-trio"):
            (measurement,) = measure(library, library, [workload], reps=1, log=log)
            assert measurement.error == "", library
            assert measurement.reps[0]["count"] == 50


def test_counted_processes_hash_strings_alike_run_after_run() -> None:
    # bench.callgrind.seeded fixes the hash seed of the processes counted
    # under callgrind, so that dict and set layouts, and the counts, repeat.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONHASHSEED"}
    hashes = {
        subprocess.run(
            [sys.executable, "-c", "print(hash('tether'))"],
            env=seeded(env),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(3)
    }
    assert len(hashes) == 1
    # A seed chosen on purpose is kept.
    assert seeded({"PYTHONHASHSEED": "7"})["PYTHONHASHSEED"] == "7"
