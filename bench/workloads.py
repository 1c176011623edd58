"""What the client side of each benchmark does, written once over a small connection interface.

Every library's client adapter (in :mod:`bench.peers`) hands the workloads a
:class:`AsyncConn` or :class:`SyncConn` whose callables are, where the library
allows, its own bound methods, so the loops below add no wrapper per message.

A workload runs in three phases: set-up (connect, warm up), the measured phase,
and tear-down. ``checkpoint()`` is called right before and right after the
measured phase; the runner samples the server's CPU time and memory there, so
the server's figures cover the same phase as the client's. Every loop stops at
``count`` or when ``seconds`` have passed, whichever comes first. Every echoed
message is compared with what was sent and the one-way sink checks each
message it gets, so no library is timed while losing or corrupting data.
"""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

Data = bytes | str
Result = dict[str, float]

# Large enough for the 1 MiB messages in every library (several default to 1 MiB).
MAX_SIZE = 16 * 1024 * 1024
# Connections opened at once when a workload opens many: beyond the listen
# backlog, SYNs are dropped and retried a second later, which would time the
# kernel rather than the library.
OPEN_BATCH = 50


@dataclass(frozen=True)
class Workload:
    """One benchmark case, as the runner sends it to a client process."""

    name: str
    kind: str  # echo | stream | concurrent | handshake | memory
    size: int = 0
    text: bool = False
    json: bool = False
    compress: bool = False
    count: int = 1000
    seconds: float = 1.0
    conns: int = 1
    parallel: int = 1

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON object."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Workload:
        """Rebuild a workload sent by :meth:`to_json`."""
        return cls(**data)


class BenchError(Exception):
    """A peer lost, corrupted or refused data: the figure is not valid."""


def cpu_seconds() -> float:
    """User plus system CPU time of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def binary_payloads(size: int) -> tuple[bytes, bytes]:
    """Two messages of ``size`` bytes that differ in their first byte.

    Messages alternate between the two, so a dropped, repeated or stale
    message shows up as a mismatch without building a new payload each time.
    """
    body = bytes(i % 251 for i in range(size))
    return b"\x00" + body[1:], b"\x01" + body[1:]


def text_payloads(size: int, json_like: bool) -> tuple[str, str]:
    """Two text messages of about ``size`` characters, plain or JSON-like."""
    if not json_like:
        body = "".join(chr(0x20 + i % 95) for i in range(size))
        return "a" + body[1:], "b" + body[1:]
    messages = []
    for seq in (0, 1):
        rows: list[dict[str, Any]] = []
        text = ""
        while len(text) < size:
            n = len(rows)
            rows.append({"id": n, "symbol": "TTHR", "bid": 101.25 + n, "ask": 101.5 + n})
            text = json.dumps({"seq": seq, "rows": rows})
        messages.append(text)
    return messages[0], messages[1]


def payloads(workload: Workload) -> tuple[Data, Data]:
    """The two alternating messages of ``workload``."""
    if workload.text or workload.json:
        return text_payloads(workload.size, workload.json)
    return binary_payloads(workload.size)


class Sink:
    """The receiving end of the one-way throughput workload, run by every server.

    The client announces ``sink:<size>``, streams binary messages and ends with
    the text ``end``; the server answers with :meth:`summary`.
    """

    def __init__(self, announce: str) -> None:
        self.expected = binary_payloads(int(announce[5:]))
        self.count = 0
        self.error = ""

    def feed(self, message: Data | memoryview) -> None:
        """Check one received message."""
        if message != self.expected[self.count & 1] and not self.error:
            self.error = f"message {self.count} differs"
        self.count += 1

    def summary(self) -> str:
        """The text to answer ``end`` with."""
        return f"error {self.error}" if self.error else f"ok {self.count}"


def is_sink(message: Data) -> bool:
    """Whether a connection's first message asks for the sink."""
    return isinstance(message, str) and message.startswith("sink:")


def check_summary(summary: Data, sent: int) -> None:
    """Raise unless the sink got exactly the ``sent`` messages, intact."""
    if summary != f"ok {sent}":
        raise BenchError(f"sink answered {summary!r} after {sent} messages")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted values lie."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def latency_result(count: int, wall: float, cpu: float, latencies: list[float]) -> Result:
    """A result with the median and 99th percentile round trip."""
    latencies.sort()
    return {
        "count": count,
        "wall": wall,
        "cpu": cpu,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
    }


T = TypeVar("T")

# asyncio clients (and trio ones: see gather)


@dataclass
class AsyncConn:
    """One client connection of an asyncio library."""

    send_bytes: Callable[[bytes], Awaitable[object]]
    send_text: Callable[[str], Awaitable[object]]
    recv: Callable[[], Awaitable[Data]]
    close: Callable[[], Awaitable[object]]

    def sender(self, workload: Workload) -> Callable[[Any], Awaitable[object]]:
        """The send method for the workload's message type."""
        return self.send_text if workload.text or workload.json else self.send_bytes


AsyncConnect = Callable[[bool], Awaitable[AsyncConn]]
Checkpoint = Callable[[], None]


async def gather(awaitables: list[Awaitable[T]]) -> list[T]:
    """:func:`asyncio.gather`, or its trio twin when a trio run is current."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return await _trio_gather(awaitables)
    return list(await asyncio.gather(*awaitables))


async def _trio_gather(awaitables: list[Awaitable[T]]) -> list[T]:
    import trio  # noqa: PLC0415 - only the trio set-ups have it

    results: list[Any] = [None] * len(awaitables)

    async def run(index: int, awaitable: Awaitable[T]) -> None:
        results[index] = await awaitable

    async with trio.open_nursery() as nursery:
        for index, awaitable in enumerate(awaitables):
            nursery.start_soon(run, index, awaitable)
    return results


async def open_many(connect: AsyncConnect, n: int, compress: bool) -> list[AsyncConn]:
    """Open ``n`` connections, at most :data:`OPEN_BATCH` handshakes at a time."""
    conns: list[AsyncConn] = []
    while len(conns) < n:
        batch = min(OPEN_BATCH, n - len(conns))
        conns += await gather([connect(compress) for _ in range(batch)])
    return conns


async def close_many(conns: list[AsyncConn]) -> None:
    """Close connections, a batch at a time."""
    for start in range(0, len(conns), OPEN_BATCH * 4):
        await gather([c.close() for c in conns[start : start + OPEN_BATCH * 4]])


async def async_echo(w: Workload, connect: AsyncConnect, checkpoint: Checkpoint) -> Result:
    """Round trips on one connection, one message in flight."""
    messages = payloads(w)
    conn = await connect(w.compress)
    send, recv = conn.sender(w), conn.recv
    for message in messages:
        await send(message)
        if await recv() != message:
            raise BenchError("echo differs during warm-up")
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    while n < w.count:
        message = messages[n & 1]
        await send(message)
        if await recv() != message:
            raise BenchError(f"echo {n} differs")
        n += 1
        if not n & 31 and time.perf_counter() > deadline:
            break
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    await conn.close()
    return {"count": n, "wall": wall, "cpu": cpu}


async def async_stream(w: Workload, connect: AsyncConnect, checkpoint: Checkpoint) -> Result:
    """Pipelined one-way messages; each send waits while the buffer is full."""
    messages = binary_payloads(w.size)
    conn = await connect(w.compress)
    send = conn.send_bytes
    await conn.send_text(f"sink:{w.size}")
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    while n < w.count:
        await send(messages[n & 1])
        n += 1
        if not n & 31 and time.perf_counter() > deadline:
            break
    await conn.send_text("end")
    check_summary(await conn.recv(), n)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    await conn.close()
    return {"count": n, "wall": wall, "cpu": cpu}


async def async_concurrent(w: Workload, connect: AsyncConnect, checkpoint: Checkpoint) -> Result:
    """Round trips on ``conns`` connections at once; latency of each round trip."""
    messages = payloads(w)
    conns = await open_many(connect, w.conns, w.compress)
    for conn in conns:
        await conn.sender(w)(messages[0])
        if await conn.recv() != messages[0]:
            raise BenchError("echo differs during warm-up")
    latencies: list[float] = []
    per_conn = max(1, w.count // w.conns)
    clock = time.perf_counter

    async def loop(conn: AsyncConn) -> int:
        send, recv, record = conn.sender(w), conn.recv, latencies.append
        n = 0
        while n < per_conn:
            message = messages[n & 1]
            start = clock()
            await send(message)
            if await recv() != message:
                raise BenchError(f"echo {n} differs")
            end = clock()
            record(end - start)
            n += 1
            if end > deadline:
                break
        return n

    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    counts = await gather([loop(conn) for conn in conns])
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    await close_many(conns)
    return latency_result(sum(counts), wall, cpu, latencies)


async def async_handshake(w: Workload, connect: AsyncConnect, checkpoint: Checkpoint) -> Result:
    """Open and close connections, one at a time or ``parallel`` at once."""
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    while n < w.count:
        if w.parallel == 1:
            conn = await connect(w.compress)
            await conn.close()
        else:
            conns = await gather([connect(w.compress) for _ in range(w.parallel)])
            await gather([c.close() for c in conns])
        n += w.parallel
        if time.perf_counter() > deadline:
            break
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    return {"count": n, "wall": wall, "cpu": cpu}


async def async_memory(w: Workload, connect: AsyncConnect, checkpoint: Checkpoint) -> Result:
    """Hold ``conns`` idle connections while the runner reads the server's memory."""
    warm = await connect(w.compress)
    await warm.close()
    checkpoint()
    t0 = time.perf_counter()
    conns = await open_many(connect, w.conns, w.compress)
    wall = time.perf_counter() - t0
    checkpoint()
    await close_many(conns)
    return {"count": len(conns), "wall": wall, "cpu": 0.0}


ASYNC_WORKLOADS = {
    "echo": async_echo,
    "stream": async_stream,
    "concurrent": async_concurrent,
    "handshake": async_handshake,
    "memory": async_memory,
}


# threading clients


@dataclass
class SyncConn:
    """One client connection of a blocking library."""

    send_bytes: Callable[[bytes], object]
    send_text: Callable[[str], object]
    recv: Callable[[], Data]
    close: Callable[[], object]

    def sender(self, workload: Workload) -> Callable[[Any], object]:
        """The send method for the workload's message type."""
        return self.send_text if workload.text or workload.json else self.send_bytes


SyncConnect = Callable[[bool], SyncConn]


def sync_echo(w: Workload, connect: SyncConnect, checkpoint: Checkpoint) -> Result:
    """Round trips on one connection, one message in flight."""
    messages = payloads(w)
    conn = connect(w.compress)
    send, recv = conn.sender(w), conn.recv
    for message in messages:
        send(message)
        if recv() != message:
            raise BenchError("echo differs during warm-up")
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    while n < w.count:
        message = messages[n & 1]
        send(message)
        if recv() != message:
            raise BenchError(f"echo {n} differs")
        n += 1
        if not n & 31 and time.perf_counter() > deadline:
            break
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    conn.close()
    return {"count": n, "wall": wall, "cpu": cpu}


def sync_stream(w: Workload, connect: SyncConnect, checkpoint: Checkpoint) -> Result:
    """Pipelined one-way messages; each send blocks while the buffer is full."""
    messages = binary_payloads(w.size)
    conn = connect(w.compress)
    send = conn.send_bytes
    conn.send_text(f"sink:{w.size}")
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    n = 0
    while n < w.count:
        send(messages[n & 1])
        n += 1
        if not n & 31 and time.perf_counter() > deadline:
            break
    conn.send_text("end")
    check_summary(conn.recv(), n)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    conn.close()
    return {"count": n, "wall": wall, "cpu": cpu}


def sync_concurrent(w: Workload, connect: SyncConnect, checkpoint: Checkpoint) -> Result:
    """Round trips on ``conns`` connections at once, a thread each."""
    messages = payloads(w)
    with ThreadPoolExecutor(OPEN_BATCH) as pool:
        conns = list(pool.map(connect, [w.compress] * w.conns))
    for conn in conns:
        conn.sender(w)(messages[0])
        if conn.recv() != messages[0]:
            raise BenchError("echo differs during warm-up")
    latencies: list[float] = []
    counts: list[int] = []
    errors: list[BaseException] = []
    per_conn = max(1, w.count // w.conns)
    clock = time.perf_counter
    deadline = 0.0

    def loop(conn: SyncConn) -> None:
        send, recv = conn.sender(w), conn.recv
        mine: list[float] = []
        n = 0
        try:
            while n < per_conn:
                message = messages[n & 1]
                start = clock()
                send(message)
                if recv() != message:
                    raise BenchError(f"echo {n} differs")
                end = clock()
                mine.append(end - start)
                n += 1
                if end > deadline:
                    break
        except BaseException as exc:
            errors.append(exc)
        latencies.extend(mine)
        counts.append(n)

    threads = [threading.Thread(target=loop, args=(conn,)) for conn in conns]
    checkpoint()
    deadline = time.perf_counter() + w.seconds
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    checkpoint()
    with ThreadPoolExecutor(OPEN_BATCH) as pool:
        list(pool.map(lambda c: c.close(), conns))
    if errors:
        raise errors[0]
    return latency_result(sum(counts), wall, cpu, latencies)


def sync_handshake(w: Workload, connect: SyncConnect, checkpoint: Checkpoint) -> Result:
    """Open and close connections, one at a time or ``parallel`` threads at once."""
    with ThreadPoolExecutor(w.parallel) as pool:
        checkpoint()
        deadline = time.perf_counter() + w.seconds
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        n = 0
        while n < w.count:
            if w.parallel == 1:
                connect(w.compress).close()
            else:
                conns = list(pool.map(connect, [w.compress] * w.parallel))
                list(pool.map(lambda c: c.close(), conns))
            n += w.parallel
            if time.perf_counter() > deadline:
                break
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        checkpoint()
    return {"count": n, "wall": wall, "cpu": cpu}


SYNC_WORKLOADS = {
    "echo": sync_echo,
    "stream": sync_stream,
    "concurrent": sync_concurrent,
    "handshake": sync_handshake,
}
