"""The asyncio clients of the load tests, and the checks that nothing outlives them.

Clients run in the test's own event loop, beside the asyncio server or
against the threading server in another thread. Opening is done in bounded
batches so that the listen backlog never overflows; every phase runs in a
task group, so that one failing client cancels the others instead of leaving
them behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.connection import Connection as AsyncioConnection
from tether.exceptions import ConnectionClosed, ConnectionClosedOK
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.sync.connection import Connection as SyncConnection

from .traffic import Ledger, message, pieces

HANDSHAKES = 128
"""How many opening handshakes may be under way at once."""

BACKLOG = 1024
"""The listen backlog of the servers: room for every handshake under way, and more."""

KEEPALIVE: dict[str, Any] = {"ping_timeout": None}
"""Keepalive options of every server and client here: pings every 20 seconds
(the default), and no deadline for the pong. One process runs both ends of
thousands of connections, and under tracemalloc or coverage a busy round
can delay a pong past any deadline fit for a real network; a connection
failed for that would test the machine, not tether."""

SERVER_OPTIONS: dict[str, Any] = {"backlog": BACKLOG, **KEEPALIVE}
"""Options of both servers here."""

MIB = 1024 * 1024

logger = logging.getLogger("tests.load")


def compressed(client: int) -> bool:
    """Whether the client negotiates permessage-deflate: every other one does."""
    return client % 2 == 1


def client_options(client: int) -> dict[str, Any]:
    """Connection options for a client: no compression, the default one, or a tight one."""
    if client % 4 == 1:
        return {"compression": "deflate"}
    if client % 4 == 3:
        # Small windows and no context takeover: the other code path of the extension.
        tight = ClientPerMessageDeflateFactory(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            server_max_window_bits=10,
            client_max_window_bits=10,
        )
        return {"compression": None, "extensions": [tight]}
    return {"compression": None}


async def open_clients(
    uri: str, clients: Iterable[int], **options: Any
) -> dict[int, ClientConnection]:
    """Open a connection per client to ``uri`` + its number, ``HANDSHAKES`` at a time.

    ``options`` go to :func:`tether.connect`, such as ``ssl``.
    """
    gate = asyncio.Semaphore(HANDSHAKES)
    opened: dict[int, ClientConnection] = {}

    async def open_one(client: int) -> None:
        async with gate:
            ws = await tether.connect(
                f"{uri}{client}", **client_options(client), **KEEPALIVE, **options
            )
        opened[client] = ws
        negotiated = bool(ws.protocol.extensions)
        assert negotiated == compressed(client), f"client {client}: compression {negotiated}"

    try:
        async with asyncio.TaskGroup() as group:
            for client in clients:
                group.create_task(open_one(client))
    except BaseException:
        # Leave no connection open behind a failure.
        for ws in opened.values():
            if ws.transport is not None:
                ws.transport.abort()
        raise
    return opened


WINDOW = 4
"""Messages a client may have sent and not seen echoed yet.

A ping waits in TCP behind the messages sent before it, and the server
reads them no faster than its handler takes them: with every message of a
soak round sent at once, a pong would come back only once the round is
nearly over. A few in flight keep the streams full and the pings prompt.
"""


async def exchange(ws: ClientConnection, client: int, count: int) -> None:
    """Send ``count`` messages, and check that each echo is the message sent."""
    window = asyncio.Semaphore(WINDOW)

    async def receive() -> None:
        for seq in range(count):
            echo = await ws.recv()
            expected = message(client, seq)
            assert echo == expected, f"client {client}: echo {seq} is not the message sent"
            window.release()

    async with asyncio.TaskGroup() as group:
        group.create_task(receive())
        for seq in range(count):
            await window.acquire()
            await ws.send(pieces(client, seq))


async def exchange_all(connections: dict[int, ClientConnection], count: int) -> None:
    """Every client exchanges its messages at the same time."""
    async with asyncio.TaskGroup() as group:
        for client, ws in connections.items():
            group.create_task(exchange(ws, client, count))


def dropped(client: int) -> bool:
    """Whether the client leaves by dropping TCP instead of closing: one in eight does."""
    return client % 8 == 7


async def close_all(connections: dict[int, ClientConnection]) -> None:
    """Close every connection, or drop it; check that each ended as it should.

    Dropped connections leave the server to clean up after a peer that
    vanished, which is where leaks hide.
    """
    async with asyncio.TaskGroup() as group:
        for client, ws in connections.items():
            if dropped(client):
                assert ws.transport is not None
                ws.transport.abort()
                group.create_task(ws.wait_closed())
            else:
                group.create_task(ws.close())
    for client, ws in connections.items():
        expected = 1006 if dropped(client) else 1000
        assert ws.close_code == expected, f"client {client}: close code {ws.close_code}"


async def exchange_and_close(
    connections: dict[int, ClientConnection], ledger: Ledger, count: int
) -> float:
    """Exchange ``count`` messages on every connection, then close them all.

    Check that the handlers received each message once, in order; forget
    these clients in the ledger. Return the longest keepalive round trip the
    clients measured last (0 when no ping was sent: rounds shorter than the
    ping interval).
    """
    try:
        await exchange_all(connections, count)
    finally:
        # A message the handler found wrong explains what the clients saw next.
        assert not ledger.errors, ledger.errors[:5]
    latency = max(ws.latency for ws in connections.values())
    await close_all(connections)
    # Every message was echoed, so it went through the handler's check first.
    for client in connections:
        assert ledger.delivered.pop(client) == count, client
    return latency


async def settle(condition: Callable[[], bool], timeout: float) -> bool:
    """Wait, bounded, until ``condition()`` holds; return whether it does."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return condition()


@dataclass(frozen=True)
class Usage:
    """What the process holds at one moment, after a full garbage collection."""

    connections: int
    """Live tether connections, asyncio or threading, client or server."""
    tasks: int
    """Tasks of the running event loop that are not done."""
    futures: int
    """Live futures, tasks included."""
    traced: int
    """Bytes allocated by Python code and still held, as tracemalloc counts them."""

    def __str__(self) -> str:
        return (
            f"{self.connections} connections, {self.tasks} tasks, {self.futures} futures, "
            f"{self.traced / MIB:.2f} MiB traced"
        )


async def usage() -> Usage:
    """Collect garbage, then count what is left."""
    # The loop holds the handle that resumed this task while it runs, and
    # with it the future that handle woke the task for: resume from a bare
    # sleep, which holds none.
    await asyncio.sleep(0)
    gc.collect()
    objects = gc.get_objects()
    connections = sum(isinstance(o, (AsyncioConnection, SyncConnection)) for o in objects)
    futures = sum(isinstance(o, asyncio.Future) for o in objects)
    del objects
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return Usage(connections, len(asyncio.all_tasks()), futures, traced)


def check_released(ledger: Ledger, baseline: Usage, after: Usage) -> None:
    """Check that no server connection is alive and the counts are back at ``baseline``."""
    assert not ledger.connections, f"{len(ledger.connections)} server connections alive"
    assert after.connections == baseline.connections, f"{baseline} -> {after}"
    assert after.tasks == baseline.tasks, f"{baseline} -> {after}"
    assert after.futures == baseline.futures, f"{baseline} -> {after}"


class Streams:
    """Clients that stream messages without end, a few in flight each, checking every echo.

    ``streaming`` is set once every client has had ``echoes`` echoes: the
    moment to shut the server down. Each client stops when its connection
    closes; :meth:`check` then compares what each client sent and saw echoed
    with what the server's handlers received.
    """

    MAX_MESSAGES = 1_000_000
    """A bound on what one client sends, far beyond what it sends before a shutdown."""

    def __init__(self, connections: dict[int, ClientConnection], echoes: int) -> None:
        self.connections = connections
        self.echoes = echoes
        self.sent = dict.fromkeys(connections, 0)
        """Messages each client sent or began to send."""
        self.acked = dict.fromkeys(connections, 0)
        """Messages each client saw echoed, each checked."""
        # How each client's recv ended: whether it was ConnectionClosedOK, and
        # the code received. Not the exception: its traceback holds the connection.
        self.closings: dict[int, tuple[bool, int | None]] = {}
        self.streaming = asyncio.Event()
        self._waiting = len(connections)

    async def run(self) -> None:
        """Stream on every connection until each one closes."""
        async with asyncio.TaskGroup() as group:
            for client, ws in self.connections.items():
                group.create_task(self._stream(client, ws))

    async def _stream(self, client: int, ws: ClientConnection) -> None:
        window = asyncio.Semaphore(WINDOW)
        done = False

        async def receive() -> None:
            nonlocal done
            try:
                while True:
                    echo = await ws.recv()
                    seq = self.acked[client]
                    assert echo == message(client, seq), f"client {client}: echo {seq} is wrong"
                    self.acked[client] = seq + 1
                    window.release()
                    if seq + 1 == self.echoes:
                        self._waiting -= 1
                        if not self._waiting:
                            self.streaming.set()
            except ConnectionClosed as exc:
                self.closings[client] = (
                    isinstance(exc, ConnectionClosedOK),
                    None if exc.rcvd is None else exc.rcvd.code,
                )
            finally:
                # Let the sender see that it is over.
                done = True
                window.release()

        async with asyncio.TaskGroup() as group:
            group.create_task(receive())
            for seq in range(self.MAX_MESSAGES):
                await window.acquire()
                if done:
                    break
                # Counted before sending: the handler may get it even if send raises.
                self.sent[client] = seq + 1
                try:
                    await ws.send(pieces(client, seq))
                except ConnectionClosed:
                    break

    def check(self, ledger: Ledger, code: int) -> None:
        """Every echoed message reached the handler once, in order; every client saw ``code``."""
        assert not ledger.errors, ledger.errors[:5]
        for client, ws in self.connections.items():
            delivered = ledger.delivered.get(client, 0)
            # The ledger checked each message at its place: no repeat, no gap.
            assert delivered >= self.acked[client] >= self.echoes, client
            assert self.sent[client] >= delivered, client
            assert ws.close_code == code, f"client {client}: close code {ws.close_code}"
            assert self.closings[client] == (True, code), f"client {client}"
        # The server closed while messages were on their way, not between them.
        assert sum(self.sent.values()) > sum(self.acked.values())

    def report(self, server: str, seconds: float, ledger: Ledger, more: str = "") -> None:
        """Log how the shutdown of the ``server`` server went, ``more`` at the end."""
        logger.info(
            "%s server shut down under %d streaming clients in %.2f s: %s, "
            "%d delivered to handlers%s",
            server,
            len(self.connections),
            seconds,
            str(self),  # Not self: the record would keep the connections alive.
            sum(ledger.delivered.values()),
            more,
        )

    def __str__(self) -> str:
        return f"{sum(self.sent.values())} messages sent, {sum(self.acked.values())} echoed back"
