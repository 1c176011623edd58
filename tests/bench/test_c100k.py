"""The c100k benchmark at 5,000 connections: every connection gets every message.

``make bench-c100k`` runs it at the descriptor limit and at 100,000
connections; here the same runs, smaller, keep it working. The benchmark
itself fails a run in which a connection missed a message, received one
twice, or the server held fewer connections than were opened. The
one-process run uses tether's asyncio client, the machine-wide one the lean
client (``--lean-clients``). No timing is asserted.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from bench.fanout import redis_server

from bench import c100k

CONNECTIONS = 5000


def arguments(workers: int, lean_clients: bool = False) -> argparse.Namespace:
    return argparse.Namespace(
        lean_clients=lean_clients,
        connections=CONNECTIONS,
        machine=CONNECTIONS,
        workers=workers,
        client_processes=2,
        idle=0.5,
        messages=2,
        floor=1,
    )


def check(result: c100k.Result) -> None:
    assert result.connections == CONNECTIONS
    assert 0 < result.rss_per_connection < 1 << 20
    assert result.handshakes_per_s > 0
    assert result.idle_cpu >= 0
    assert result.loop_ms > 0
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert math.isfinite(result.max_ms)
    assert result.server_cpu_us is not None
    assert result.server_cpu_us > 0
    assert result.client_cpu_us is not None
    assert result.client_cpu_us > 0


def test_one_process_plain_and_compressed() -> None:
    assert c100k.connections_allowed() >= CONNECTIONS
    deadline = time.monotonic() + 120
    for deflate in (False, True):
        result = c100k.run_process(arguments(1), deflate, deadline)
        assert (result.mode, result.deflate, result.processes) == ("process", deflate, 1)
        check(result)
        # The floor's three ways of writing the frame, each checked delivered.
        assert result.floor is not None
        assert set(result.floor) == set(c100k.FLOOR_METHODS)
        assert all(figure["wall_us"] > 0 for figure in result.floor.values())
    assert "| process deflate | 5,000 | socket.send loop |" in c100k.render_floor([result])


def test_workers_through_topics() -> None:
    deadline = time.monotonic() + 120
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as redis:
        result = c100k.run_machine(arguments(2, lean_clients=True), False, redis, deadline)
    assert (result.mode, result.processes, result.clients) == ("machine", 2, "lean")
    check(result)
    assert "| machine, lean clients | no | 5,000 | 2 |" in c100k.render([result])
