"""Fan-out through Redis: tether's topics against Django Channels' group_send.

``python -m bench.fanout`` starts its own redis-server on a free loopback
port, then for each system:

* the servers: tether (``tether.workers`` with ``--workers`` processes, a
  :class:`~tether.Topics` on a :class:`~tether.topics.redis.RedisBroker`
  each), or Django Channels with channels_redis under uvicorn with as many
  workers;
* ``--subscribers`` WebSocket clients (tether's asyncio client on uvloop),
  spread over ``--client-processes`` processes, all subscribed to one topic
  or group;
* a publisher in a process of its own, with no WebSocket connection:
  tether's :class:`~tether.topics.publisher.RedisPublisher`, or channels'
  ``group_send``. It publishes 100-byte messages, each carrying the time it
  was published: first ``--rate`` messages a second for ``--seconds``
  seconds (latency), then ``--burst`` messages as fast as it can
  (throughput).

Each client process measures publish-to-receipt latency (one clock for all
processes: ``CLOCK_MONOTONIC``) into a histogram. The table gives delivered
messages per second during the burst (deliveries over the time from its
first publish to its last receipt), the latency percentiles of the paced
phase, and what was lost. Every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZE = 100
TOPIC = "bench"
PACED, BURST = "L", "B"
# Connections a client process opens at once.
BATCH = 25
# Latency histogram: bucket i holds latencies in [1.02**i, 1.02**(i+1)) microseconds.
RATIO = 1.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_port(port: int, process: subprocess.Popen[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not listen in time") from None
            time.sleep(0.05)


def payload(phase: str, seq: int) -> str:
    head = f"{phase}:{seq}:{time.monotonic_ns()}:"
    return head + "x" * (SIZE - len(head))


# Servers


def tether_server(port: int, redis: str, **kwargs: Any) -> Any:
    """One tether worker: every connection subscribes to the topic and waits."""
    import tether  # noqa: PLC0415
    from tether.topics.redis import RedisBroker  # noqa: PLC0415

    topics = tether.Topics(broker=RedisBroker(redis))

    async def handler(ws: tether.ServerConnection) -> None:
        topics.subscribe(ws, TOPIC)
        await ws.wait_closed()

    return tether.serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        backlog=4096,
        **kwargs,
    )


def serve_tether(port: int, redis: str, workers: int) -> int:
    from tether.workers import Supervisor  # noqa: PLC0415

    raise_file_limit()
    return Supervisor(functools.partial(tether_server, port, redis), workers).run()


@contextlib.contextmanager
def server(system: str, port: int, redis: str, workers: int, timeout: float) -> Iterator[None]:
    env = dict(os.environ, BENCH_REDIS_URL=redis, PYTHONPATH=str(ROOT))
    if system == "tether":
        command = [sys.executable, "-m", "bench.fanout", "serve-tether", str(port), redis]
        command.append(str(workers))
    else:
        command = [
            sys.executable, "-m", "uvicorn", "bench.fanout_channels:application",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--backlog", "4096", "--ws-ping-interval", "0",
            "--ws-per-message-deflate", "false",
        ]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
    try:
        wait_port(port, process, timeout)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# Clients


@dataclass
class Tally:
    """What one client process saw."""

    received: dict[str, int] = field(default_factory=lambda: {PACED: 0, BURST: 0})
    last: dict[str, int] = field(default_factory=lambda: {PACED: 0, BURST: 0})
    histogram: dict[int, int] = field(default_factory=dict)
    closed: int = 0


async def run_clients(uri: str, count: int) -> None:
    import tether  # noqa: PLC0415

    tally = Tally()
    histogram = tally.histogram
    received = tally.received
    last = tally.last
    log_ratio = math.log(RATIO)

    async def listen(ws: tether.ClientConnection) -> None:
        try:
            async for message in ws:
                now = time.monotonic_ns()
                phase, _, sent, _ = str(message).split(":", 3)
                received[phase] += 1
                last[phase] = now
                if phase == PACED:
                    micros = max((now - int(sent)) / 1000, 1.0)
                    bucket = int(math.log(micros) / log_ratio)
                    histogram[bucket] = histogram.get(bucket, 0) + 1
        except Exception:
            pass
        tally.closed += 1

    async def connect() -> tether.ClientConnection:
        # The connection storm is not what is measured: retry what the
        # server refused for want of a Redis connection or of time.
        for attempt in range(5):
            try:
                return await tether.connect(
                    uri, compression=None, ping_interval=None, open_timeout=30
                )
            except (OSError, TimeoutError, tether.InvalidStatus):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    connections = []
    for start in range(0, count, BATCH):
        batch = await asyncio.gather(*(connect() for _ in range(min(BATCH, count - start))))
        connections.extend(batch)
    tasks = [asyncio.create_task(listen(ws)) for ws in connections]
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    # Report whenever the runner asks, until it says stop.
    while True:
        command = await loop.run_in_executor(None, sys.stdin.readline)
        print(json.dumps({"received": received, "last": last, "histogram": histogram}), flush=True)
        if command.strip() != "report":
            break
    for ws in connections:
        ws.transport.abort()  # type: ignore[union-attr]
    for task in tasks:
        task.cancel()


def client_main(uri: str, count: int) -> None:
    import uvloop  # noqa: PLC0415

    raise_file_limit()
    uvloop.run(run_clients(uri, count))


# Publishers


def publish_main(system: str, redis: str, rate: float, seconds: float, burst: int) -> None:
    """Publish the paced phase, then the burst; print when each began."""
    if system == "tether":
        from tether.topics import RedisPublisher  # noqa: PLC0415

        publisher = RedisPublisher(redis)

        async def send(text: str) -> None:
            publisher.publish(TOPIC, text)

        async def close() -> None:
            publisher.close()
    else:
        from channels_redis.core import RedisChannelLayer  # noqa: PLC0415

        layer = RedisChannelLayer(hosts=[{"address": redis, "max_connections": 10_000}])

        async def send(text: str) -> None:
            await layer.group_send(TOPIC, {"type": "bench.message", "text": text})

        async def close() -> None:
            await layer.close_pools()

    async def run() -> dict[str, Any]:
        paced = int(rate * seconds)
        start = time.monotonic()
        for seq in range(paced):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send(payload(PACED, seq))
        await asyncio.sleep(1.0)
        burst_start = time.monotonic_ns()
        for seq in range(burst):
            await send(payload(BURST, seq))
        burst_end = time.monotonic_ns()
        await close()
        return {"paced": paced, "burst": burst, "burst_start": burst_start, "burst_end": burst_end}

    print(json.dumps(asyncio.run(run())), flush=True)


# The runner


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    port = free_port()
    config = directory / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\ndir {directory}\nsave ""\nappendonly no\n'
        "loglevel warning\nmaxclients 20000\n"
    )
    binary = shutil.which("redis-server") or "/usr/sbin/redis-server"
    process = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL)
    try:
        wait_port(port, process, 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def subscribed(system: str, redis: str, workers: int, subscribers: int) -> bool:
    import redis as redis_py  # noqa: PLC0415

    with redis_py.Redis.from_url(redis) as client:
        if system == "tether":
            ((_, count),) = client.pubsub_numsub(f"tether:{TOPIC}")
            return int(count) >= workers
        return int(client.zcard(f"asgi:group:{TOPIC}")) >= subscribers


def client_process(port: int, count: int, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.fanout", "client", f"ws://127.0.0.1:{port}/ws/"]
    return subprocess.Popen(
        [*command, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def measure(system: str, redis: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    deadline = time.monotonic() + args.timeout
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    per_process = [
        args.subscribers // args.client_processes
        + (1 if i < args.subscribers % args.client_processes else 0)
        for i in range(args.client_processes)
    ]
    with server(system, port, redis, args.workers, args.timeout):
        clients = [client_process(port, count, env) for count in per_process]
        try:
            for process in clients:
                assert process.stdout is not None
                line = process.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"{system}: a client process failed to connect")
            while not subscribed(system, redis, args.workers, args.subscribers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{system}: subscriptions not in place in time")
                time.sleep(0.1)
            publisher = subprocess.run(
                [sys.executable, "-m", "bench.fanout", "publish", system, redis,
                 str(args.rate), str(args.seconds), str(args.burst)],
                capture_output=True, text=True, cwd=ROOT, env=env,
                timeout=max(1.0, deadline - time.monotonic()), check=True,
            )  # fmt: skip
            published = json.loads(publisher.stdout)
            expected = args.subscribers * (published["paced"] + published["burst"])
            # Let deliveries finish: until nothing more arrives for 2 s, or the deadline.
            reports = drain(clients, expected, deadline)
        finally:
            for process in clients:
                if process.poll() is None:
                    process.kill()
                process.wait()
    return summarize(system, args, published, reports)


def ask(clients: list[subprocess.Popen[str]], command: str) -> list[Any]:
    for process in clients:
        assert process.stdin is not None
        process.stdin.write(command + "\n")
        process.stdin.flush()
    reports = []
    for process in clients:
        assert process.stdout is not None
        reports.append(json.loads(process.stdout.readline()))
    return reports


def drain(clients: list[subprocess.Popen[str]], expected: int, deadline: float) -> list[Any]:
    """Wait until every message arrived, nothing arrived for 3 s, or the deadline; report."""
    seen, still = -1, time.monotonic()
    while time.monotonic() < deadline:
        reports = ask(clients, "report")
        total = sum(sum(r["received"].values()) for r in reports)
        if total >= expected:
            break
        if total != seen:
            seen, still = total, time.monotonic()
        elif time.monotonic() - still > 3.0:
            break
        time.sleep(0.5)
    return ask(clients, "stop")


def percentile(histogram: dict[int, int], fraction: float) -> float:
    total = sum(histogram.values())
    if not total:
        return float("nan")
    target = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= target:
            return float(RATIO ** (bucket + 0.5) / 1000)  # milliseconds
    return float("nan")


def summarize(
    system: str, args: argparse.Namespace, published: dict[str, Any], reports: list[Any]
) -> dict[str, Any]:
    histogram: dict[int, int] = {}
    paced = burst = 0
    last_burst = 0
    for report in reports:
        paced += report["received"][PACED]
        burst += report["received"][BURST]
        last_burst = max(last_burst, report["last"][BURST])
        for bucket, count in report["histogram"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
    elapsed = (last_burst - published["burst_start"]) / 1e9 if burst else float("nan")
    return {
        "system": system,
        "subscribers": args.subscribers,
        "workers": args.workers,
        "paced_messages": published["paced"],
        "burst_messages": published["burst"],
        "delivered_per_s": burst / elapsed if burst else 0.0,
        "p50_ms": percentile(histogram, 0.50),
        "p99_ms": percentile(histogram, 0.99),
        "lost": args.subscribers * (published["paced"] + published["burst"]) - paced - burst,
    }


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| system | subscribers | workers | delivered msg/s (burst) | p50 ms | p99 ms | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['system']} | {r['subscribers']} | {r['workers']} | "
            f"{r['delivered_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['lost']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve-tether":
        return serve_tether(int(argv[1]), argv[2], int(argv[3]))
    if argv and argv[0] == "client":
        client_main(argv[1], int(argv[2]))
        return 0
    if argv and argv[0] == "publish":
        publish_main(argv[1], argv[2], float(argv[3]), float(argv[4]), int(argv[5]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=10.0, help="paced messages per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the paced phase")
    parser.add_argument("--burst", type=int, default=200, help="messages of the burst")
    parser.add_argument("--timeout", type=float, default=120.0, help="bound per system")
    parser.add_argument("--systems", default="tether,channels")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    raise_file_limit()
    results = []
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as redis:
        for system in args.systems.split(","):
            print(f"fan-out: {system}, {args.subscribers} subscribers ...", file=sys.stderr)
            results.append(measure(system, redis, args))
    print(render(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
