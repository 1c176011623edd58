"""Many idle connections on one machine, and one message to all of them.

``python -m bench.c100k`` measures, on loopback only:

* **process**: one tether asyncio server on uvloop holding as many
  connections as its file descriptor limit allows (the soft limit is raised
  to the hard one first, and the count printed), each sent one
  :func:`~tether.asyncio.broadcast.broadcast` of 100 bytes;
* **machine**: ``--machine`` connections over ``--workers`` worker processes
  of :mod:`tether.workers` sharing the port, each worker with a
  :class:`~tether.Topics` on a :class:`~tether.topics.redis.RedisBroker`
  (its own redis-server on a free loopback port), and one message published
  to all of them with :class:`~tether.topics.publisher.RedisPublisher`.

Both run without and with permessage-deflate. Clients are tether's asyncio
client on uvloop, or with ``--lean-clients`` the lean client of
:mod:`bench.c100k_lean` (a handshake through tether's engine, then frames
read by hand: it costs less per message received, so that on one machine
the clients take less of the cores the servers need), in processes that
bind to source addresses 127.0.0.2 to 127.0.0.9 in turn, so that no address
runs out of ephemeral ports. Each figure:

* RSS per connection: the growth of the server's resident memory (``/proc``)
  from listening to holding every connection, divided by their number;
* idle CPU: the server's CPU time over ``--idle`` seconds of nothing but
  keepalive, at the default ping interval (clients send no pings of their
  own, and answer the server's), as a share of one core;
* handshakes per second while connections pile up: connections over the
  time from the first client's start to the last connection open;
* loop ms: how long one broadcast (or one delivery of a published message)
  held the server's event loop;
* p50, p99, max: from the broadcast's (or publish's) start to a client
  reading the message, over every connection (one clock for all processes:
  ``CLOCK_MONOTONIC``). Every connection must receive every message once:
  the run fails otherwise;
* server CPU per message sent: the thread CPU time (``time.thread_time``) of
  the broadcast or delivery, over the connections written to; on loopback it
  includes the receiver's TCP processing, done inside ``send``;
* client CPU per message received: each client process's CPU time from its
  first arrival to the last, over the arrivals in between.

With ``--floor N``, each one-process run also measures the floor: the same
100-byte frame written to every connection by the server with no tether code
in the loop (``socket.send`` on each raw socket, then ``transport.write`` on
each transport), and by :func:`tether.broadcast` given the same list, N
rounds of each, interleaved. The second table gives the loop's wall and CPU
time (``time.thread_time``) per connection, median of the rounds. On
loopback the receiver's TCP processing runs inside the sender's ``send``:
the floor is mostly the kernel's. Those messages are checked like the
others, and left out of the p50, p99 and max.

Every wait is bounded; the whole run ends within ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.fanout import free_port, redis_server, wait_port

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
SIZE = 100
TOPIC = "all"
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
# Connections a client process opens at once.
BATCH = 64
# Descriptors a server process keeps for itself: listening sockets, pipes, files.
RESERVE = 1000

if os.environ.get("C100K_UVLOOP") == "1":
    # Worker processes of tether.workers run asyncio.run(): make it build a
    # uvloop loop. Set on import, which the spawned worker does before its
    # loop starts, when it unpickles its factory.
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def raise_file_limit() -> int:
    """Raise the soft limit on descriptors to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connections_allowed() -> int:
    """How many connections one process may hold at this descriptor limit."""
    return max(raise_file_limit() - RESERVE, 1)


def rss(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpu(pid: int) -> float:
    """The CPU time process ``pid`` used so far (user and system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message(seq: int) -> str:
    head = f"{seq}:{time.monotonic_ns()}:"
    return head + "x" * (SIZE - len(head))


def timed_broadcast(
    broadcast: Callable[[Any, str], int], connections: Any, seq: int
) -> dict[str, float]:
    """Broadcast message ``seq``: to how many, and how long (wall, CPU ms) it held the thread."""
    text = message(seq)
    start, cpu_start = time.perf_counter(), time.thread_time()
    sent = broadcast(connections, text)
    held, cpu_held = time.perf_counter() - start, time.thread_time() - cpu_start
    return {"sent": sent, "loop_ms": held * 1000, "cpu_ms": cpu_held * 1000}


def options(deflate: bool) -> dict[str, Any]:
    return {"compression": "deflate" if deflate else None}


# The floor: one frame written to every connection by the server with no
# tether code in the loop, against tether.broadcast on the same connections.

FLOOR_METHODS = ("send", "write", "broadcast-list")


class Floor:
    """The same 100-byte frame written to every connection three ways, each timed.

    * ``send``: ``socket.send`` on each connection's raw socket;
    * ``write``: ``transport.write`` on each transport;
    * ``broadcast-list``: :func:`tether.broadcast`, given the same list.

    The frame is a real WebSocket text frame, so clients check it like any
    other message. The sockets and the list are made before any timing.
    """

    def __init__(self, connections: list[Any]) -> None:
        import socket  # noqa: PLC0415

        self.connections = connections
        self.transports = [ws.transport for ws in connections]
        # Socket objects over the transports' descriptors, detached (never
        # closed) in release(): the transports keep owning them.
        self.sockets = [
            socket.socket(fileno=t.get_extra_info("socket").fileno()) for t in self.transports
        ]

    def measure(self, method: str, seq: int) -> dict[str, float]:
        """Write message ``seq`` by ``method``; the loop's wall and CPU time, and the count."""
        import tether  # noqa: PLC0415
        from tether.protocol.frames import serialize_frame  # noqa: PLC0415

        text = message(seq)
        frame = serialize_frame(1, text.encode(), mask=False)
        start, cpu_start = time.perf_counter(), time.thread_time()
        if method == "send":
            for sock in self.sockets:
                sock.send(frame)
            sent = len(self.sockets)
        elif method == "write":
            for transport in self.transports:
                transport.write(frame)
            sent = len(self.transports)
        else:
            sent = tether.broadcast(self.connections, text)
        held, cpu_held = time.perf_counter() - start, time.thread_time() - cpu_start
        return {"sent": sent, "loop_ms": held * 1000, "cpu_ms": cpu_held * 1000}

    def release(self) -> None:
        for sock in self.sockets:
            sock.detach()


# The single server process: commands on stdin, answers on stdout.


async def serve_process(deflate: bool) -> None:
    import tether  # noqa: PLC0415

    raise_file_limit()

    async def handler(ws: tether.ServerConnection) -> None:
        await ws.wait_closed()

    loop = asyncio.get_running_loop()
    floor: Floor | None = None
    async with tether.serve(handler, "127.0.0.1", 0, backlog=4096, **options(deflate)) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            command = line.split()
            if not command or command[0] == "stop":
                break
            if command[0] == "broadcast":
                answer = timed_broadcast(tether.broadcast, server.connections, int(command[1]))
                print(json.dumps(answer), flush=True)
            elif command[0] in FLOOR_METHODS:
                if floor is None:
                    floor = Floor(list(server.connections))
                print(json.dumps(floor.measure(command[0], int(command[1]))), flush=True)
            else:
                print(json.dumps({"connections": len(server.connections)}), flush=True)
        if floor is not None:
            floor.release()
        for ws in list(server.connections):
            if ws.transport is not None:
                ws.transport.abort()


def serve_threads(deflate: bool) -> None:
    """The threading server, a thread per connection, with the same commands."""
    import threading  # noqa: PLC0415

    import tether.sync  # noqa: PLC0415

    raise_file_limit()
    # Each connection's thread needs little stack: keep the address space small.
    threading.stack_size(256 * 1024)

    def handler(ws: tether.sync.ServerConnection) -> None:
        for _ in ws:
            pass

    with tether.sync.serve(handler, "127.0.0.1", 0, backlog=4096, **options(deflate)) as server:
        print(json.dumps({"port": server.socket.getsockname()[1]}), flush=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        for line in sys.stdin:
            command = line.split()
            if not command or command[0] == "stop":
                break
            if command[0] == "broadcast":
                answer = timed_broadcast(tether.sync.broadcast, server.connections, int(command[1]))
                print(json.dumps(answer), flush=True)
            else:
                print(json.dumps({"connections": len(server.connections)}), flush=True)
        os._exit(0)  # Thousands of handler threads: no orderly shutdown to wait for.


# The workers of the machine-wide run.


def worker_server(redis: str, deflate: bool, results: str, port: int, **kwargs: Any) -> Any:
    """One worker: every connection subscribes to the topic and waits."""
    import tether  # noqa: PLC0415
    from tether.asyncio.connection import Data  # noqa: PLC0415
    from tether.topics import Prepared  # noqa: PLC0415
    from tether.topics.redis import RedisBroker  # noqa: PLC0415

    topics = tether.Topics(broker=RedisBroker(redis))
    deliver = topics.publish_local
    log = Path(results) / f"worker-{os.getpid()}.jsonl"

    def timed(topic: str, data: Data | Prepared) -> int:
        start, cpu_start = time.perf_counter(), time.thread_time()
        sent = deliver(topic, data)
        held, cpu_held = time.perf_counter() - start, time.thread_time() - cpu_start
        with log.open("a") as file:
            line = {"sent": sent, "loop_ms": held * 1000, "cpu_ms": cpu_held * 1000}
            file.write(json.dumps(line) + "\n")
        return sent

    topics.publish_local = timed  # type: ignore[method-assign,assignment]

    async def handler(ws: tether.ServerConnection) -> None:
        topics.subscribe(ws, TOPIC)
        await ws.wait_closed()

    return tether.serve(handler, "127.0.0.1", port, backlog=4096, **options(deflate), **kwargs)


def serve_workers(port: int, workers: int, redis: str, deflate: bool, results: str) -> int:
    from tether.workers import Supervisor  # noqa: PLC0415

    raise_file_limit()
    factory = functools.partial(worker_server, redis, deflate, results, port)
    return Supervisor(factory, workers).run()


# Clients


class Tally:
    """What one client process received: latencies per message, duplicates, CPU spent."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self.latencies: dict[int, list[int]] = {}
        self.duplicates = 0
        # This process's CPU time at the first arrival of any message, and at
        # the last arrival of the latest message to reach every connection,
        # with the count of arrivals then: the CPU spent receiving.
        self.first_cpu = 0.0
        self.last_cpu = 0.0
        self.arrivals = 0
        self.counted = 0

    def received(self, seen: set[int], text: str) -> None:
        now = time.monotonic_ns()
        head, sent, _ = text.split(":", 2)
        seq = int(head)
        if seq in seen:
            self.duplicates += 1
        seen.add(seq)
        values = self.latencies.get(seq)
        if values is None:
            values = self.latencies[seq] = []
        values.append(now - int(sent))
        self.arrivals += 1
        if self.arrivals == 1:
            self.first_cpu = time.process_time()
        elif len(values) == self.connections:
            self.last_cpu = time.process_time()
            self.counted = self.arrivals - 1

    def report(self, failures: int) -> dict[str, Any]:
        return {
            "latencies": self.latencies,
            "duplicates": self.duplicates,
            "failures": failures,
            "cpu_s": self.last_cpu - self.first_cpu if self.counted else 0.0,
            "cpu_messages": self.counted,
        }


async def retried(connect: Callable[[], Awaitable[T]]) -> T:
    """The storm is measured, but a refusal under it is retried, and counted."""
    for attempt in range(5):
        try:
            return await connect()
        except (OSError, TimeoutError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def run_clients(uri: str, count: int, source: str, deflate: bool, lean: bool) -> None:
    import tether  # noqa: PLC0415
    from bench.c100k_lean import LeanClient  # noqa: PLC0415

    tally = Tally(count)
    loop = asyncio.get_running_loop()

    async def listen(ws: tether.ClientConnection) -> None:
        seen: set[int] = set()
        with contextlib.suppress(Exception):
            async for data in ws:
                tally.received(seen, str(data))

    def connect() -> Awaitable[tether.ClientConnection]:
        return tether.connect(
            uri, ping_interval=None, open_timeout=60, local_addr=(source, 0), **options(deflate)
        )

    lean_clients: list[LeanClient] = []

    async def connect_lean() -> asyncio.Transport:
        opened = loop.create_future()
        receive = functools.partial(tally.received, set())
        transport, client = await loop.create_connection(
            lambda: LeanClient(uri, deflate, receive, opened),
            "127.0.0.1",
            int(uri.rsplit(":", 1)[1].strip("/")),
            local_addr=(source, 0),
        )
        async with asyncio.timeout(60):
            await opened
        lean_clients.append(client)
        return transport

    start = time.monotonic_ns()
    transports: list[asyncio.Transport | None] = []
    tasks = []
    for first in range(0, count, BATCH):
        size = min(BATCH, count - first)
        if lean:
            transports += await asyncio.gather(*(retried(connect_lean) for _ in range(size)))
        else:
            batch = await asyncio.gather(*(retried(connect) for _ in range(size)))
            transports += [ws.transport for ws in batch]
            tasks += [asyncio.create_task(listen(ws)) for ws in batch]
    print(json.dumps({"start": start, "ready": time.monotonic_ns()}), flush=True)
    while True:
        command = await loop.run_in_executor(None, sys.stdin.readline)
        if command.strip() != "report":
            break
        failures = sum(client.failed is not None for client in lean_clients)
        print(json.dumps(tally.report(failures)), flush=True)
    for transport in transports:
        if transport is not None:
            transport.abort()
    for task in tasks:
        task.cancel()


def client_main(uri: str, count: int, source: str, deflate: bool, lean: bool) -> None:
    import uvloop  # noqa: PLC0415

    raise_file_limit()
    uvloop.run(run_clients(uri, count, source, deflate, lean))


# The runner


@dataclass
class Result:
    """The figures of one run."""

    mode: str
    deflate: bool
    connections: int
    processes: int
    rss_per_connection: float
    idle_cpu: float
    handshakes_per_s: float
    loop_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    floor: dict[str, dict[str, float]] | None = None
    """Per method of :data:`FLOOR_METHODS`: microseconds per connection, median of the rounds."""
    clients: str = "tether"
    """The clients: tether's asyncio client, or the lean one (``--lean-clients``)."""
    server_cpu_us: float | None = None
    """CPU microseconds of the server's loop per message written (the thread's time)."""
    client_cpu_us: float | None = None
    """CPU microseconds of the clients per message received."""


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def send(process: subprocess.Popen[str], line: str) -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def answer(process: subprocess.Popen[str], deadline: float) -> Any:
    """The next line ``process`` prints, as JSON; waiting until ``deadline`` at most."""
    assert process.stdout is not None
    # Each process prints one line per command, flushed at once: none is
    # ever read ahead into the pipe's buffer, so the pipe tells when it comes.
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not select.select([process.stdout], [], [], remaining)[0]:
        raise TimeoutError("c100k: out of time")
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"c100k: a process exited with {process.wait()}")
    return json.loads(line)


def percentile(values: list[int], fraction: float) -> float:
    index = min(len(values) - 1, int(fraction * len(values)))
    return values[index] / 1e6


class Clients:
    """The client processes of one run, spread over the source addresses."""

    def __init__(
        self,
        stack: contextlib.ExitStack,
        port: int,
        total: int,
        args: argparse.Namespace,
        *,
        deflate: bool,
        env: dict[str, str],
    ) -> None:
        """Start ``args.client_processes`` processes (lean ones with ``args.lean_clients``)."""
        processes = args.client_processes
        lean = getattr(args, "lean_clients", False)
        self.total = total
        self.kind = "lean" if lean else "tether"
        self.client_cpu_us: float | None = None
        """CPU microseconds the clients spent per message received, once checked."""
        self.processes = [
            stack.enter_context(
                started(
                    [
                        sys.executable,
                        "-m",
                        "bench.c100k",
                        "client",
                        f"ws://127.0.0.1:{port}/",
                        str(count),
                        SOURCES[i % len(SOURCES)],
                        str(int(deflate)),
                        str(int(lean)),
                    ],
                    env,
                )
            )
            for i, count in enumerate(split(total, processes))
        ]

    def ready(self, deadline: float) -> float:
        """Wait for every connection; return handshakes per second."""
        times = [answer(process, deadline) for process in self.processes]
        elapsed = (max(t["ready"] for t in times) - min(t["start"] for t in times)) / 1e9
        return float(self.total / elapsed)

    def check(self, messages: int, deadline: float, timed: int | None = None) -> list[int]:
        """Every connection got every message once: return the latencies (ns).

        Only those of the first ``timed`` messages, if given.
        """
        while True:
            reports = []
            for process in self.processes:
                send(process, "report")
            reports = [answer(process, deadline) for process in self.processes]
            received = [
                sum(len(report["latencies"].get(str(seq), [])) for report in reports)
                for seq in range(messages)
            ]
            if all(count == self.total for count in received):
                break
            if time.monotonic() > deadline - 5:
                raise RuntimeError(f"c100k: {received} of {self.total} received each message")
            time.sleep(0.2)
        if any(report["duplicates"] for report in reports):
            raise RuntimeError("c100k: a connection received a message twice")
        if any(report["failures"] for report in reports):
            raise RuntimeError("c100k: a lean client met a frame it does not read")
        counted = sum(report["cpu_messages"] for report in reports)
        if counted:
            self.client_cpu_us = sum(report["cpu_s"] for report in reports) / counted * 1e6
        seqs = {str(seq) for seq in range(messages if timed is None else timed)}
        return sorted(
            ns
            for r in reports
            for seq, values in r["latencies"].items()
            if seq in seqs
            for ns in values
        )


def figures(latencies: list[int]) -> tuple[float, float, float]:
    """p50, p99 and max, in milliseconds."""
    return percentile(latencies, 0.50), percentile(latencies, 0.99), latencies[-1] / 1e6


def idle(pids: list[int], seconds: float) -> float:
    """The share of one core that ``pids`` used together over ``seconds``."""
    before = sum(cpu(pid) for pid in pids)
    start = time.monotonic()
    time.sleep(seconds)
    return (sum(cpu(pid) for pid in pids) - before) / (time.monotonic() - start)


def run_process(
    args: argparse.Namespace, deflate: bool, deadline: float, *, threads: bool = False
) -> Result:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    total = args.threads if threads else args.connections
    command = "serve-threads" if threads else "serve"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            started([sys.executable, "-m", "bench.c100k", command, str(int(deflate))], env)
        )
        port = answer(server, deadline)["port"]
        empty = rss(server.pid)
        clients = Clients(stack, port, total, args, deflate=deflate, env=env)
        rate = clients.ready(deadline)
        send(server, "count")
        held = answer(server, deadline)["connections"]
        if held != total:
            raise RuntimeError(f"c100k: the server holds {held} of {total} connections")
        idle_cpu = idle([server.pid], args.idle)
        per_connection = (rss(server.pid) - empty) / total
        loop_ms = []
        cpu_ms = []
        for seq in range(args.messages):
            send(server, f"broadcast {seq}")
            result = answer(server, deadline)
            if result["sent"] != total:
                raise RuntimeError(f"c100k: broadcast written to {result['sent']} of {total}")
            loop_ms.append(result["loop_ms"])
            cpu_ms.append(result["cpu_ms"])
            time.sleep(0.5)
        rounds: dict[str, list[dict[str, float]]] = {method: [] for method in FLOOR_METHODS}
        seq = args.messages
        for _ in range(0 if threads else getattr(args, "floor", 0)):
            for method in FLOOR_METHODS:
                send(server, f"{method} {seq}")
                result = answer(server, deadline)
                if result["sent"] != total:
                    raise RuntimeError(f"c100k: {method} written to {result['sent']} of {total}")
                rounds[method].append(result)
                seq += 1
                time.sleep(0.2)
        latencies = clients.check(seq, deadline, timed=args.messages)
        send(server, "stop")
    return Result(
        "threads" if threads else "process",
        deflate,
        total,
        1,
        per_connection,
        idle_cpu,
        rate,
        max(loop_ms),
        *figures(latencies),
        floor=floor_figures(rounds, total) if rounds["send"] else None,
        clients=clients.kind,
        server_cpu_us=sum(cpu_ms) * 1000 / (total * len(cpu_ms)),
        client_cpu_us=clients.client_cpu_us,
    )


def floor_figures(
    rounds: dict[str, list[dict[str, float]]], total: int
) -> dict[str, dict[str, float]]:
    """Microseconds per connection of each method, wall and CPU: the median round."""

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2] * 1000 / total

    return {
        method: {
            "wall_us": median([r["loop_ms"] for r in results]),
            "cpu_us": median([r["cpu_ms"] for r in results]),
        }
        for method, results in rounds.items()
    }


def render_floor(results: list[Result]) -> str:
    """The floor table: microseconds per connection of the loop writing one frame to all."""
    lines = [
        "| run | connections | method | wall µs per connection | CPU µs per connection |",
        "|---|---:|---|---:|---:|",
    ]
    names = {
        "send": "socket.send loop",
        "write": "transport.write loop",
        "broadcast-list": "tether.broadcast",
    }
    for r in results:
        for method, figure in (r.floor or {}).items():
            lines.append(
                f"| {r.mode}{' deflate' if r.deflate else ''} | {r.connections:,} | "
                f"{names[method]} | {figure['wall_us']:.2f} | {figure['cpu_us']:.2f} |"
            )
    return "\n".join(lines)


def worker_pids(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def run_machine(args: argparse.Namespace, deflate: bool, redis: str, deadline: float) -> Result:
    import redis as redis_py  # noqa: PLC0415

    from tether.topics.publisher import RedisPublisher  # noqa: PLC0415

    env = dict(os.environ, PYTHONPATH=str(ROOT), C100K_UVLOOP="1")
    total = args.machine
    port = free_port()
    with contextlib.ExitStack() as stack:
        results = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        supervisor = stack.enter_context(
            started(
                [
                    sys.executable,
                    "-m",
                    "bench.c100k",
                    "serve-workers",
                    str(port),
                    str(args.workers),
                    redis,
                    str(int(deflate)),
                    str(results),
                ],
                env,
            )
        )
        wait_port(port, supervisor, 30)
        # The probe connection of wait_port closed at once: the workers are empty again.
        time.sleep(0.5)
        workers = worker_pids(supervisor.pid)
        if len(workers) != args.workers:
            raise RuntimeError(f"c100k: {len(workers)} of {args.workers} workers found")
        empty = {pid: rss(pid) for pid in workers}
        clients = Clients(stack, port, total, args, deflate=deflate, env=env)
        rate = clients.ready(deadline)
        with redis_py.Redis.from_url(redis) as client:
            while True:
                ((_, count),) = client.pubsub_numsub(f"tether:{TOPIC}")
                if int(count) >= args.workers:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("c100k: subscriptions not in place in time")
                time.sleep(0.1)
        idle_cpu = idle(workers, args.idle)
        growth = sum(rss(pid) - empty[pid] for pid in workers)
        publisher = RedisPublisher(redis)
        try:
            for seq in range(args.messages):
                publisher.publish(TOPIC, message(seq))
                time.sleep(0.5)
        finally:
            publisher.close()
        latencies = clients.check(args.messages, deadline)
        deliveries = [
            json.loads(line)
            for log in results.glob("worker-*.jsonl")
            for line in log.read_text().splitlines()
        ]
        if sum(d["sent"] for d in deliveries) != total * args.messages:
            raise RuntimeError("c100k: the workers wrote fewer messages than connections")
    return Result(
        "machine",
        deflate,
        total,
        args.workers,
        growth / total,
        idle_cpu,
        rate,
        max(d["loop_ms"] for d in deliveries),
        *figures(latencies),
        clients=clients.kind,
        server_cpu_us=sum(d["cpu_ms"] for d in deliveries) * 1000 / (total * args.messages),
        client_cpu_us=clients.client_cpu_us,
    )


class Results(list[Result]):
    """The rows so far: each printed as soon as measured, and saved, so a failed run keeps them."""

    def __init__(self, path: Path | None) -> None:
        super().__init__()
        self.path = path

    def append(self, result: Result) -> None:
        super().append(result)
        print(render([result]).splitlines()[-1], file=sys.stderr, flush=True)
        if self.path is not None:
            self.path.write_text(json.dumps([r.__dict__ for r in self], indent=2) + "\n")


def render(results: list[Result]) -> str:
    lines = [
        "| run | deflate | connections | server processes | RSS per connection | "
        "idle CPU (one core) | handshakes/s | loop ms | p50 ms | p99 ms | max ms | "
        "server CPU µs per message sent | client CPU µs per message received |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        mode = r.mode if r.clients == "tether" else f"{r.mode}, {r.clients} clients"
        server_cpu = "" if r.server_cpu_us is None else f"{r.server_cpu_us:.1f}"
        client_cpu = "" if r.client_cpu_us is None else f"{r.client_cpu_us:.1f}"
        lines.append(
            f"| {mode} | {'yes' if r.deflate else 'no'} | {r.connections:,} | {r.processes} | "
            f"{r.rss_per_connection / 1024:.1f} KiB | {r.idle_cpu * 100:.1f}% | "
            f"{r.handshakes_per_s:,.0f} | {r.loop_ms:.1f} | {r.p50_ms:.1f} | "
            f"{r.p99_ms:.1f} | {r.max_ms:.1f} | {server_cpu} | {client_cpu} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve":
        import uvloop  # noqa: PLC0415

        uvloop.run(serve_process(argv[1] == "1"))
        return 0
    if argv and argv[0] == "serve-threads":
        serve_threads(argv[1] == "1")
        return 0
    if argv and argv[0] == "serve-workers":
        return serve_workers(int(argv[1]), int(argv[2]), argv[3], argv[4] == "1", argv[5])
    if argv and argv[0] == "client":
        client_main(argv[1], int(argv[2]), argv[3], argv[4] == "1", argv[5] == "1")
        return 0
    allowed = connections_allowed()
    parser = argparse.ArgumentParser(prog="python -m bench.c100k", description=__doc__)
    parser.add_argument(
        "--connections", type=int, default=allowed, help="per process; 0: no one-process run"
    )
    parser.add_argument("--machine", type=int, default=100_000, help="0: no machine-wide run")
    parser.add_argument("--threads", type=int, default=0, help="the threading server too")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--client-processes", type=int, default=8)
    parser.add_argument("--idle", type=float, default=25.0, help="seconds of idle CPU")
    parser.add_argument("--messages", type=int, default=3, help="broadcasts per run")
    parser.add_argument(
        "--lean-clients",
        action="store_true",
        help="clients that read frames by hand after a handshake through tether's engine "
        "(bench.c100k_lean), rather than tether's asyncio client",
    )
    parser.add_argument(
        "--floor",
        type=int,
        default=0,
        help="rounds of the floor (one process): the frame written by socket.send, "
        "by transport.write and by tether.broadcast, each timed per connection",
    )
    parser.add_argument("--deflate", default="no,yes", help="no, yes or both (no,yes)")
    parser.add_argument("--timeout", type=float, default=570.0, help="bound on the whole run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"c100k: file descriptors: soft limit {soft}, hard limit {hard}: "
        f"{allowed:,} connections per process ({RESERVE} descriptors kept back)",
        file=sys.stderr,
    )
    if args.connections > allowed:
        parser.error(f"--connections: at most {allowed} at this descriptor limit")
    per_client = -(-max(args.connections, args.machine) // args.client_processes)
    if per_client > allowed:
        parser.error(f"--client-processes: {per_client} connections each is over {allowed}")
    if -(-args.machine // args.workers) > allowed:
        parser.error(f"--workers: {args.machine} connections need more than {args.workers}")
    deadline = time.monotonic() + args.timeout
    # Killed (by timeout(1), say): clean up the processes started, as on an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    modes = [mode == "yes" for mode in args.deflate.split(",")]
    results = Results(args.json)
    for deflate in modes if args.connections else ():
        print(f"c100k: one process, {args.connections:,} connections ...", file=sys.stderr)
        results.append(run_process(args, deflate, deadline))
    if args.threads:
        for deflate in modes:
            print(f"c100k: threading server, {args.threads:,} connections ...", file=sys.stderr)
            results.append(run_process(args, deflate, deadline, threads=True))
    if args.machine:
        with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as redis:
            for deflate in modes:
                print(f"c100k: {args.machine:,} connections ...", file=sys.stderr)
                results.append(run_machine(args, deflate, redis, deadline))
    print(render(results))
    if any(r.floor for r in results):
        print()
        print(render_floor(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
