"""The mixed soak: both APIs, plain and TLS, compressed or not, messages of mixed sizes.

Four servers run side by side: the asyncio server and the threading server,
each plain and over TLS. In every round each server gets
``Scale.mixed_clients`` clients: three in four are asyncio clients, opened all
at once, the others threading clients, each in a thread of its own; half of
them negotiate permessage-deflate, some with small windows and no context
takeover (see :func:`~tests.load.clients.client_options`). Each client
exchanges ``Scale.mixed_messages`` messages, from empty to 70 KiB, text and
binary, some sent in fragments; the server's handler checks each message
against the one expected at its place and the client checks each echo, so a
message lost, repeated, reordered or altered fails the round. Then the
clients close, one asyncio client in eight by dropping TCP instead.

After every round the process's resident memory (RSS) is read, after a full
garbage collection. The first round warms up (lazily built tables, TLS
state, thread stacks, the allocator's arenas) and is not measured. The soak
passes only when memory stopped growing, by :func:`stopped_growing`: the
largest RSS of the second half of the measured rounds is at most
:data:`GROWTH` above the largest of the first half, plus :data:`SLACK`.
A leak of a few hundred bytes per connection fails it once the rounds add
up: at the default soak size, some 3,000 connections a round.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import ssl
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import pytest

import tether
import tether.sync
from tether.sync.client import ClientConnection as SyncClientConnection

from ..soak_results import record
from .clients import (
    KEEPALIVE,
    MIB,
    SERVER_OPTIONS,
    client_options,
    compressed,
    exchange_and_close,
    open_clients,
    settle,
)
from .conftest import Scale
from .traffic import Ledger, message, pieces

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

logger = logging.getLogger("tests.load")

GROWTH = 0.05
"""How much larger, as a fraction, the second half's largest RSS may be."""

SLACK = 4 * MIB
"""And how many bytes more: the allocator takes memory from the system in
chunks of a few MiB, so a short run may end one chunk higher by chance."""

THREADING_SHARE = 4
"""One client in this many is a threading client."""

TIMEOUT = 60.0
"""The bound on a server's shutdown and on a threading client's exchange."""


def rss() -> int:
    """The resident memory of this process, in bytes."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def stopped_growing(samples: list[int]) -> bool:
    """Whether memory stopped growing over these RSS samples, one per measured round.

    True when the largest sample of the second half is at most ``GROWTH``
    above the largest of the first half, plus ``SLACK`` bytes. With an odd
    number of samples the middle one belongs to the second half.
    """
    assert len(samples) >= 2, "the criterion needs two rounds at least"
    half = len(samples) // 2
    return max(samples[half:]) <= max(samples[:half]) * (1 + GROWTH) + SLACK


@dataclass
class Endpoint:
    """One of the four servers, as the clients reach it."""

    name: str
    uri: str
    ssl: ssl.SSLContext | None
    served: int = 0
    """Connections its clients opened, over every round."""
    messages: int = 0
    """Messages its clients exchanged, over every round."""


@asynccontextmanager
async def asyncio_server(
    ledger: Ledger, name: str, context: ssl.SSLContext | None, client_context: ssl.SSLContext
) -> AsyncIterator[Endpoint]:
    async with tether.serve(ledger.echo, "127.0.0.1", 0, ssl=context, **SERVER_OPTIONS) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        scheme = "ws" if context is None else "wss"
        yield Endpoint(
            name, f"{scheme}://127.0.0.1:{port}/", None if context is None else client_context
        )


@asynccontextmanager
async def threading_server(
    ledger: Ledger, name: str, context: ssl.SSLContext | None, client_context: ssl.SSLContext
) -> AsyncIterator[Endpoint]:
    server = tether.sync.serve(ledger.sync_echo, "127.0.0.1", 0, ssl=context, **SERVER_OPTIONS)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        port = server.socket.getsockname()[1]
        scheme = "ws" if context is None else "wss"
        yield Endpoint(
            name, f"{scheme}://127.0.0.1:{port}/", None if context is None else client_context
        )
    finally:
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        stopping.start()
        await settle(lambda: not stopping.is_alive() and not serving.is_alive(), TIMEOUT)
        assert not serving.is_alive(), "serve_forever did not return"
    assert not server.connections


def sync_exchange(
    uri: str, client: int, count: int, context: ssl.SSLContext | None, errors: list[str]
) -> None:
    """A threading client: open, exchange ``count`` checked messages, close."""
    try:
        ws: SyncClientConnection
        with tether.sync.connect(
            f"{uri}{client}", ssl=context, **client_options(client), **KEEPALIVE
        ) as ws:
            negotiated = bool(ws.protocol.extensions)
            assert negotiated == compressed(client), f"client {client}: compression {negotiated}"
            for seq in range(count):
                ws.send(pieces(client, seq))
                assert ws.recv() == message(client, seq), f"client {client}: echo {seq} is wrong"
        assert ws.close_code == 1000, f"client {client}: close code {ws.close_code}"
    except BaseException as exc:
        errors.append(f"threading client {client}: {exc!r}")


async def server_round(endpoint: Endpoint, ledger: Ledger, clients: range, count: int) -> None:
    """Every client of one server in one round: asyncio and threading clients at once."""
    threaded = [client for client in clients if client % THREADING_SHARE == 0]
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=sync_exchange,
            args=(endpoint.uri, client, count, endpoint.ssl, errors),
            daemon=True,
        )
        for client in threaded
    ]
    for thread in threads:
        thread.start()
    try:
        options = {} if endpoint.ssl is None else {"ssl": endpoint.ssl}
        connections = await open_clients(
            endpoint.uri, [c for c in clients if c % THREADING_SHARE], **options
        )
        await exchange_and_close(connections, ledger, count)
        del connections
    finally:
        ended = await settle(lambda: not any(t.is_alive() for t in threads), TIMEOUT)
    assert ended, f"{endpoint.name}: threading clients still running"
    assert not errors, errors[:5]
    assert not ledger.errors, ledger.errors[:5]
    for client in threaded:
        assert ledger.delivered.pop(client) == count, f"{endpoint.name}: client {client}"
    endpoint.served += len(clients)
    endpoint.messages += len(clients) * count


async def test_mixed_soak_every_message_once_and_memory_stops_growing(
    scale: Scale,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    request: pytest.FixtureRequest,
) -> None:
    ledger = Ledger()
    per_server = scale.mixed_clients
    samples: list[int] = []
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        servers = [
            asyncio_server(ledger, "asyncio", None, client_context),
            asyncio_server(ledger, "asyncio+TLS", server_context, client_context),
            threading_server(ledger, "threading", None, client_context),
            threading_server(ledger, "threading+TLS", server_context, client_context),
        ]
        endpoints = [await stack.enter_async_context(server) for server in servers]
        rounds = 0
        measure_from = time.monotonic()
        while True:
            round_started = time.monotonic()
            # Client numbers are never reused: a stray message could not pass.
            first = rounds * per_server * len(endpoints)
            async with asyncio.timeout(scale.round_timeout), asyncio.TaskGroup() as group:
                for n, endpoint in enumerate(endpoints):
                    start = first + n * per_server
                    clients = range(start, start + per_server)
                    group.create_task(server_round(endpoint, ledger, clients, scale.mixed_messages))
            assert not ledger.delivered, f"{len(ledger.delivered)} clients left unchecked"
            gc.collect()
            resident = rss()
            if rounds == 0:
                measure_from = time.monotonic()
                logger.info("mixed soak warm-up round: RSS %.1f MiB", resident / MIB)
            else:
                samples.append(resident)
                logger.info(
                    "mixed soak round %d: %d connections, %d messages each way, %.1f s, "
                    "RSS %.1f MiB",
                    rounds,
                    per_server * len(endpoints),
                    per_server * len(endpoints) * scale.mixed_messages,
                    time.monotonic() - round_started,
                    resident / MIB,
                )
            rounds += 1
            measured = len(samples)
            if measured >= scale.mixed_rounds and (
                time.monotonic() - measure_from >= scale.mixed_seconds or rounds >= scale.max_rounds
            ):
                break
    elapsed = time.monotonic() - started
    half = len(samples) // 2
    first_max, second_max = max(samples[:half]), max(samples[half:])
    logger.info(
        "mixed soak: %d rounds in %.0f s; largest RSS %.1f MiB in the first half, "
        "%.1f MiB in the second",
        rounds,
        elapsed,
        first_max / MIB,
        second_max / MIB,
    )
    connections = sum(endpoint.served for endpoint in endpoints)
    messages = sum(endpoint.messages for endpoint in endpoints)
    record(
        request,
        "load",
        "mixed soak: asyncio and threading servers, plain and TLS; asyncio and threading "
        "clients, half with permessage-deflate; messages of 0 B to 70 KiB",
        f"{connections} connections in {rounds} rounds of {per_server * len(endpoints)}, "
        f"{messages} messages each way, {elapsed:.0f} s; RSS {first_max / MIB:.1f} MiB -> "
        f"{second_max / MIB:.1f} MiB (largest of each half)",
        0,
        connections=connections,
        messages=messages,
        rounds=rounds,
        seconds=round(elapsed, 1),
        rss_first_half=first_max,
        rss_second_half=second_max,
    )
    assert stopped_growing(samples), [f"{sample / MIB:.1f} MiB" for sample in samples]
