"""``tether serve --workers N [--redis URL]``: processes sharing a port, supervised."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

import tether
from tests.cli.conftest import WAIT, DemoServer, start_demo_server, stop_demo_server
from tests.topics.servers import RedisServer
from tether.asyncio.client import ClientConnection


def workers_of(server: DemoServer) -> set[int]:
    """The pids of the worker processes of a supervisor."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        # Workers are started by multiprocessing's spawn; its resource tracker is not one.
        if b"spawn_main" in command:
            found.add(int(child))
    return found


def kill_all(server: DemoServer) -> None:
    """Kill the supervisor and its workers, if the test left them running."""
    if server.process.poll() is None:
        for pid in workers_of(server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.process.kill()
        server.process.wait(WAIT)


async def wait_until(predicate: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await asyncio.to_thread(predicate):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_rooms_across_three_workers_then_drain(redis_server: RedisServer) -> None:
    server = start_demo_server("--workers", "3", "--redis", redis_server.url)
    clients: list[ClientConnection] = []
    try:
        assert "with 3 workers" in server.banner
        assert len(workers_of(server)) == 3
        # Connect until all three workers have someone in the room: each
        # worker subscribes to the room in Redis once.
        for _ in range(60):
            clients.append(await tether.connect(server.uri("/chat/lobby"), open_timeout=WAIT))
            await asyncio.sleep(0.02)
            if await asyncio.to_thread(redis_server.numsub, "tether:chat:lobby") == 3:
                break
        await wait_until(lambda: redis_server.numsub("tether:chat:lobby") == 3, "3 workers")
        await clients[0].send("hello from one worker")
        for client in clients:
            assert await client.recv(timeout=WAIT) == "hello from one worker"
        # SIGTERM drains every worker: 1001 to every client, then exit 0.
        status, rest = await asyncio.to_thread(stop_demo_server, server, signal.SIGTERM)
        assert status == 0
        assert rest.endswith("Server stopped.\n")
        for client in clients:
            await asyncio.wait_for(client.wait_closed(), WAIT)
            assert client.close_code == 1001
    finally:
        kill_all(server)


async def test_restart_with_1012_and_crashed_worker_replaced() -> None:
    server = start_demo_server("--workers", "2")
    try:
        first = workers_of(server)
        assert len(first) == 2
        client = await tether.connect(server.uri("/echo"), open_timeout=WAIT)
        # SIGHUP: new workers listen before the old ones close with 1012.
        server.process.send_signal(signal.SIGHUP)
        await asyncio.wait_for(client.wait_closed(), WAIT)
        assert client.close_code == 1012
        await wait_until(
            lambda: not workers_of(server) & first and len(workers_of(server)) == 2,
            "two new workers in place of the old",
        )
        second = workers_of(server)
        async with tether.connect(server.uri("/echo"), open_timeout=WAIT) as again:
            await again.send("still here")
            assert await again.recv(timeout=WAIT) == "still here"
        # A worker killed outright is replaced.
        victim = min(second)
        os.kill(victim, signal.SIGKILL)
        await wait_until(
            lambda: victim not in workers_of(server) and len(workers_of(server)) == 2,
            "the crashed worker's replacement",
        )
        async with tether.connect(server.uri("/echo"), open_timeout=WAIT) as after:
            await after.send("after the crash")
            assert await after.recv(timeout=WAIT) == "after the crash"
        status, rest = await asyncio.to_thread(stop_demo_server, server, signal.SIGINT)
        assert status == 0
        assert "exited with -9; starting it again" in rest
    finally:
        kill_all(server)


def test_at_least_one_worker() -> None:
    from tether.workers import Supervisor  # noqa: PLC0415

    with pytest.raises(ValueError, match="at least 1"):
        Supervisor(print, 0)
