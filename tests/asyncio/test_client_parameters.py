"""websockets 17's connect parameters checked on the asyncio client alone: the backoff's defaults,
write_limit as a pair (the others: tests/behaviour/test_client_parameters.py)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import tether
from tether.asyncio.server import ServerConnection
from tether.reconnecting import backoff

from .conftest import ServerFactory, uri_of


def test_backoff_is_websockets_default() -> None:
    delays = backoff(initial_delay=5, min_delay=3.1, max_delay=90, factor=1.618)
    first = next(delays)
    assert 0 <= first <= 5
    series = [next(delays) for _ in range(12)]
    assert series[0] == 3.1
    assert series[1] == pytest.approx(3.1 * 1.618)
    assert series[-1] == 90
    assert all(a <= b for a, b in itertools.pairwise(series))


async def test_max_queue_and_write_limit_pairs(start_server: ServerFactory) -> None:
    async def limits(ws: ServerConnection) -> None:
        assert ws.transport is not None
        await ws.send(str(ws.transport.get_write_buffer_limits()))
        await ws.send(str((ws._messages.full_at, ws._messages.low_at)))

    server = await start_server(limits, max_queue=(8, 2), write_limit=(4096, 1024))
    # A pair for write_limit used to make the transport refuse it and the
    # handshake wait until open_timeout.
    async with asyncio.timeout(5):
        ws = await tether.connect(uri_of(server), max_queue=(10, 3), write_limit=(2000, 500))
    assert ws.transport is not None
    assert ws.transport.get_write_buffer_limits() == (500, 2000)
    assert (ws._messages.full_at, ws._messages.low_at) == (10, 3)
    assert await ws.recv() == "(1024, 4096)"
    assert await ws.recv() == "(8, 2)"
    await ws.close()
