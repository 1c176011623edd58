"""Hundreds of connections to one threading server: every message once, in order, unchanged.

The same exchange as against the asyncio server, with fewer connections:
the threading server spends a thread per connection, and one more to read
each. Then the same shutdown under load: every message a client saw echoed
reached the handler once and in order, and every client sees 1001. The
clients are asyncio clients in the test's loop; the server runs in threads
beside it. Afterwards no thread, no socket and no connection object may
remain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import tether.sync
from tether.sync.server import Server

from ..soak_results import record
from .clients import (
    SERVER_OPTIONS,
    Streams,
    check_released,
    exchange_and_close,
    open_clients,
    settle,
    usage,
)
from .conftest import Scale
from .traffic import Ledger

# The clients' loop matters little to a threading server: the default one only.
pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

logger = logging.getLogger("tests.load")

TIMEOUT = 30.0
"""The bound on the shutdown and on threads ending."""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@asynccontextmanager
async def threading_server(ledger: Ledger) -> AsyncIterator[tuple[Server, str]]:
    """Run an echo server that checks every message; yield it and its URI.

    On exit, shut it down (bounded) and check that its threads, sockets and
    connections are gone.
    """
    baseline = await usage()
    threads = threading.active_count()
    fds = open_fds()
    server = tether.sync.serve(ledger.sync_echo, "127.0.0.1", 0, **SERVER_OPTIONS)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        host, port = server.socket.getsockname()[:2]
        yield server, f"ws://{host}:{port}/"
    finally:
        # Not asyncio.to_thread: its worker thread would outlive the test.
        stopping = threading.Thread(target=server.shutdown, daemon=True)
        stopping.start()
        await settle(lambda: not stopping.is_alive() and not serving.is_alive(), TIMEOUT)
    assert not stopping.is_alive(), "shutdown did not return"
    assert not serving.is_alive(), "serve_forever did not return"
    # Each handler thread ends a moment after its client saw the close.
    await settle(lambda: threading.active_count() <= threads, TIMEOUT)
    assert threading.active_count() <= threads
    assert not server.connections
    del server
    after = await usage()
    logger.info(
        "threading server gone: %d threads, %d file descriptors left (%d, %d before); %s",
        threading.active_count(),
        open_fds(),
        threads,
        fds,
        after,
    )
    check_released(ledger, baseline, after)
    assert open_fds() <= fds


async def test_threading_server_exactly_once_and_nothing_left(
    scale: Scale, request: pytest.FixtureRequest
) -> None:
    ledger = Ledger()
    clients = range(scale.sync_connections)
    started = time.monotonic()
    async with threading_server(ledger) as (server, uri):
        async with asyncio.timeout(scale.round_timeout):
            connections = await open_clients(uri, clients)
            # A handler thread registers its connection just after the 101 goes out.
            all_open = await settle(lambda: len(server.connections) == len(clients), TIMEOUT)
            assert all_open, f"{len(server.connections)} open of {len(clients)}"
            await exchange_and_close(connections, ledger, scale.messages)
        del connections
    logger.info(
        "threading server: %d connections, %d messages each way, %.1f s",
        len(clients),
        len(clients) * scale.messages,
        time.monotonic() - started,
    )
    record(
        request,
        "load",
        f"{len(clients):,} connections at once to the threading server",
        f"{len(clients) * scale.messages:,} messages each way in "
        f"{time.monotonic() - started:.0f} s, each once and in order; no thread, socket or "
        "connection left afterwards",
        0,
        connections=len(clients),
    )


async def test_threading_server_shutdown_under_load(
    scale: Scale, request: pytest.FixtureRequest
) -> None:
    ledger = Ledger()
    clients = range(scale.sync_connections)
    async with threading_server(ledger) as (server, uri):
        async with asyncio.timeout(scale.round_timeout):
            connections = await open_clients(uri, clients)
            streams = Streams(connections, echoes=3)
            async with asyncio.TaskGroup() as group:
                group.create_task(streams.run())
                await streams.streaming.wait()
                closing = time.monotonic()
                stopping = threading.Thread(target=server.shutdown, daemon=True)
                stopping.start()
                # shutdown returns once every connection is closed; the
                # streams end as their connections close.
                await settle(lambda: not stopping.is_alive(), TIMEOUT)
                assert not stopping.is_alive(), "shutdown did not return"
                closed = time.monotonic() - closing
        streams.check(ledger, 1001)
        streams.report("threading", closed, ledger)
        record(
            request,
            "load",
            f"threading server shut down under {len(clients):,} streaming clients",
            f"closed in {closed:.2f} s, every client saw 1001; {streams}; every echoed message "
            "reached the handler once; no thread, socket or connection left",
            0,
            clients=len(clients),
            seconds=round(closed, 2),
        )
        # The server's checks on exit count the connections left: none of ours.
        del connections, streams
