"""Hundreds of connections to one threading server: every message once, in order, unchanged.

The same exchange as against the asyncio server, with fewer connections:
the threading server spends a thread per connection, and one more to read
each. The clients are asyncio clients in the test's loop; the server runs in
threads beside it. Afterwards no thread, no socket and no connection object
may remain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time

import pytest

import tether.sync
from tether.sync.server import ServerConnection

from .clients import BACKLOG, close_all, exchange_all, open_clients, settle, usage
from .conftest import Scale
from .traffic import Ledger, client_of

logger = logging.getLogger("tests.load")

TIMEOUT = 30.0
"""The bound on the shutdown and on threads ending."""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# The clients' loop matters little to a threading server: the default one only.
@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_threading_server_exactly_once_and_nothing_left(scale: Scale) -> None:
    ledger = Ledger()

    def handler(ws: ServerConnection) -> None:
        ledger.connections.add(ws)
        assert ws.request is not None
        client = client_of(ws.request.path)
        for data in ws:
            if not ledger.check(client, data):
                return
            ws.send(data)

    started = time.monotonic()
    baseline = await usage()
    threads = threading.active_count()
    fds = open_fds()
    server = tether.sync.serve(handler, "127.0.0.1", 0, backlog=BACKLOG)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    clients = range(scale.sync_connections)
    try:
        host, port = server.socket.getsockname()[:2]
        async with asyncio.timeout(scale.round_timeout):
            connections = await open_clients(f"ws://{host}:{port}/", clients)
            # A handler thread registers its connection just after the 101 goes out.
            all_open = await settle(lambda: len(server.connections) == len(clients), TIMEOUT)
            assert all_open, f"{len(server.connections)} open of {len(clients)}"
            try:
                await exchange_all(connections, scale.messages)
            finally:
                assert not ledger.errors, ledger.errors[:5]
            await close_all(connections)
        del connections
        for client in clients:
            assert ledger.delivered[client] == scale.messages, client
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
    after = await usage()
    logger.info(
        "threading server: %d connections, %d messages each way, %.1f s; %d threads, "
        "%d file descriptors left (%d, %d before); %s",
        len(clients),
        len(clients) * scale.messages,
        time.monotonic() - started,
        threading.active_count(),
        open_fds(),
        threads,
        fds,
        after,
    )
    assert not ledger.connections, f"{len(ledger.connections)} server connections alive"
    assert after.connections == baseline.connections, f"{baseline} -> {after}"
    assert after.tasks == baseline.tasks, f"{baseline} -> {after}"
    assert after.futures == baseline.futures, f"{baseline} -> {after}"
    assert open_fds() <= fds
