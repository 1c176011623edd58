"""websockets 17's connect parameters: create_connection, reconnect_delays, pairs, limits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import tether
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConnectionClosedError, HeaderLineTooLong, InvalidStatus
from tether.protocol.http11 import Limits, Request, Response
from tether.reconnecting import backoff

from .conftest import ServerFactory, uri_of


class Recording(ClientConnection):
    """A connection class of the application's, as websockets users subclass theirs."""

    made: ClassVar[list[Recording]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Recording.made.append(self)


async def test_create_connection(start_server: ServerFactory) -> None:
    server = await start_server()
    async with tether.connect(uri_of(server), create_connection=Recording) as ws:
        assert isinstance(ws, Recording)
        await ws.send("mine")
        assert await ws.recv() == "mine"
    assert Recording.made[-1] is ws


async def test_reconnect_delays(start_server: ServerFactory) -> None:
    refusals = 2

    def hook(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            return connection.respond(503, "Later.")
        return None

    server = await start_server(process_request=hook)
    given: list[float] = []

    def delays() -> Iterator[float]:
        for delay in itertools.count(1):
            given.append(delay / 1000)
            yield delay / 1000

    async for ws in tether.connect(uri_of(server), reconnect_delays=delays):
        await ws.send("back")
        assert await ws.recv() == "back"
        break
    # One delay per failure, from one generator.
    assert given == [0.001, 0.002]


def test_backoff_is_websockets_default() -> None:
    delays = backoff(initial_delay=5, min_delay=3.1, max_delay=90, factor=1.618)
    first = next(delays)
    assert 0 <= first <= 5
    series = [next(delays) for _ in range(12)]
    assert series[0] == 3.1
    assert series[1] == pytest.approx(3.1 * 1.618)
    assert series[-1] == 90
    assert all(a <= b for a, b in itertools.pairwise(series))


async def test_max_size_pair(start_server: ServerFactory) -> None:
    async def fragments(ws: ServerConnection) -> None:
        await ws.send(["abcd", "efgh"])
        await ws.send("x" * 10)

    server = await start_server(fragments)
    async with tether.connect(uri_of(server), max_size=(100, 8)) as ws:
        assert await ws.recv() == "abcdefgh"
        with pytest.raises(ConnectionClosedError) as caught:
            await ws.recv()
    assert caught.value.sent is not None
    assert caught.value.sent.code == 1009


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


async def test_limits_of_the_http_parsers(start_server: ServerFactory) -> None:
    loud = await start_server(server_header="x" * 200)
    with pytest.raises(HeaderLineTooLong):
        await tether.connect(uri_of(loud), limits=Limits(max_line=100))
    strict = await start_server(limits=Limits(max_headers=8))
    many = {f"X-Header-{index}": "1" for index in range(10)}
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri_of(strict), additional_headers=many)
    assert caught.value.response.status_code == 431
