"""Thousands of connections to one asyncio server: every message once, in order, unchanged.

Every client is open at the same time, then all of them exchange messages of
mixed sizes, text and binary, with and without compression; the server
echoes them. The handler checks each message against the one expected at its
place and the client checks each echo, so a message lost, repeated,
reordered or altered fails the test.

After the clients close, nothing of the connections may remain: no
connection object (the test holds the server's weakly), no task, no future,
the server's bookkeeping empty, and on the default loop the memory traced by
tracemalloc back near where it was before. With ``--soak`` the rounds repeat
for minutes, checked after each one, so that a slow leak adds up until it
shows.
"""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc

import pytest
import uvloop

import tether
from tether.asyncio.server import Server

from ..soak_results import record
from .clients import (
    MIB,
    SERVER_OPTIONS,
    check_released,
    exchange_and_close,
    open_clients,
    settle,
    usage,
)
from .conftest import Scale
from .traffic import Ledger

logger = logging.getLogger("tests.load")

TOLERANCE = 2 * MIB
"""How much more memory may stay traced after a round than before it: allocator
slack and caches. A leaked connection holds tens of KiB."""

HIGH_WATER = 1024
"""Bytes per connection that the first round may leave behind for good. Tables
of the loop and of the server (the selector's map, the transports, the set of
all tasks, the server's connections) grow to the most connections they held
and do not shrink: about 600 bytes per connection, measured. Later rounds of
the same size must not grow them further."""


async def test_many_connections_exactly_once_and_nothing_left(
    scale: Scale, request: pytest.FixtureRequest
) -> None:
    ledger = Ledger()
    # Tracing doubles the time of a round. uvloop's own memory is C that
    # tracemalloc does not see anyway: there, the object counts stand alone.
    traced = not isinstance(asyncio.get_running_loop(), uvloop.Loop)
    if traced:
        tracemalloc.start()
    try:
        async with tether.serve(ledger.echo, "127.0.0.1", 0, **SERVER_OPTIONS) as server:
            host, port = next(iter(server.sockets)).getsockname()[:2]
            uri = f"ws://{host}:{port}/"
            # One client of each kind first: what stays after it (caches,
            # lazily built tables) is part of the baseline, not a leak.
            await run_round(server, uri, ledger, range(4), scale)
            baseline = await usage()
            limit = baseline.traced + TOLERANCE + HIGH_WATER * scale.connections
            logger.info("baseline: %s", baseline)
            started = time.monotonic()
            rounds = 0
            while True:
                round_started = time.monotonic()
                # Client numbers are never reused: a stray message from an
                # earlier round could not pass for one of this round.
                first = 4 + rounds * scale.connections
                latency = await run_round(
                    server, uri, ledger, range(first, first + scale.connections), scale
                )
                rounds += 1
                after = await usage()
                logger.info(
                    "round %d: %d connections, %d messages each way, %.1f s, "
                    "slowest keepalive pong %.2f s; %s",
                    rounds,
                    scale.connections,
                    scale.connections * scale.messages,
                    time.monotonic() - round_started,
                    latency,
                    after,
                )
                check_released(ledger, baseline, after)
                assert after.traced <= limit, f"{baseline} -> {after}"
                if rounds == 1:
                    # From now on the tables are as large as they get.
                    limit = after.traced + TOLERANCE
                if rounds >= scale.max_rounds or time.monotonic() - started >= scale.seconds:
                    break
    finally:
        tracemalloc.stop()
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    record(
        request,
        "load",
        f"{scale.connections:,} connections at once to the asyncio server ({loop} loop), "
        "rounds of open, exchange and close",
        f"{rounds} rounds, {rounds * scale.connections * scale.messages:,} messages each way in "
        f"{time.monotonic() - started:.0f} s; every object, task and future released after "
        "each round" + (f"; traced memory {after.traced / MIB:.1f} MiB" if traced else ""),
        0,
        connections=scale.connections,
        rounds=rounds,
    )


async def run_round(
    server: Server, uri: str, ledger: Ledger, clients: range, scale: Scale
) -> float:
    """Open every client at once, exchange, close; check the handler saw every message.

    Return the slowest keepalive round trip: see :func:`exchange_and_close`.
    """
    async with asyncio.timeout(scale.round_timeout):
        connections = await open_clients(uri, clients)
        assert len(server.connections) == len(clients)
        latency = await exchange_and_close(connections, ledger, scale.messages)
    del connections
    # The server learns that TCP closed a moment after the client does.
    drained = await settle(lambda: not server._connections and not server._handlers, 10)
    assert drained, f"{len(server._connections)} connections, {len(server._handlers)} handlers"
    return latency
