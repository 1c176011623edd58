"""The asyncio server shuts down gracefully while hundreds of clients stream to it.

Each client keeps a few messages in flight, without end, and checks each
echo. Once every client has had a few echoes, the server closes. Every
message a client saw echoed must have reached the handler exactly once and
in order (the handler checks each message against the one expected at its
place, so a repeat or a gap fails there), every client must see the close
code 1001 (going away), and nothing may hang: every wait is bounded. Nothing
of the connections may remain afterwards.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import tether
from tether.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidMessage, InvalidStatus

from ..soak_results import record
from .clients import SERVER_OPTIONS, Streams, check_released, open_clients, usage
from .conftest import Scale
from .traffic import Ledger

ECHOES_BEFORE_SHUTDOWN = 3
"""Echoes every client must have had before the server shuts down."""

LATE_CLIENTS = 50
"""Clients that start connecting just before the server closes."""

LATE_TIMEOUT = 10.0
"""The bound on a late client's handshake, and on its wait for the close."""

LATE_OUTCOMES = (
    "refused with HTTP 503",
    "closed during the handshake",
    "refused by TCP",
    "opened, then closed with 1001",
)
"""How a client that arrives during the shutdown may end: never hanging, never
left open, never with an abnormal closure."""


async def test_shutdown_under_load_closes_with_1001_and_loses_no_acknowledged_message(
    scale: Scale, request: pytest.FixtureRequest
) -> None:
    ledger = Ledger()
    clients = range(scale.shutdown_clients)

    # How each late client ended; the keys are the allowed outcomes.
    late: dict[str, int] = dict.fromkeys(LATE_OUTCOMES, 0)

    async def connect_late(client: int) -> None:
        """Connect as the server shuts down; count how it ended."""
        outcome = await try_late(uri, client)
        late[outcome] = late.get(outcome, 0) + 1

    baseline = await usage()
    server = await tether.serve(ledger.echo, "127.0.0.1", 0, **SERVER_OPTIONS)
    try:
        host, port = next(iter(server.sockets)).getsockname()[:2]
        uri = f"ws://{host}:{port}/"
        async with asyncio.timeout(scale.round_timeout):
            connections = await open_clients(uri, clients)
            assert len(server.connections) == len(clients)
            streams = Streams(connections, ECHOES_BEFORE_SHUTDOWN)
            async with asyncio.TaskGroup() as group:
                group.create_task(streams.run())
                await streams.streaming.wait()
                # Clients still arriving: some reach the server before it
                # closes, some in the middle of their handshake, some after.
                for client in range(len(clients), len(clients) + LATE_CLIENTS):
                    group.create_task(connect_late(client))
                for _ in range(3):
                    await asyncio.sleep(0)
                closing = time.monotonic()
                server.close()
                await server.wait_closed()
                closed = time.monotonic() - closing
                # wait_closed waits for every connection and every handler.
                assert not server._connections, f"{len(server._connections)} connections"
                assert not server._handlers, f"{len(server._handlers)} handlers"
    finally:
        # Whatever failed above, the server must not outlive the test.
        server.close()
        async with asyncio.timeout(30):
            await server.wait_closed()

    streams.check(ledger, 1001)
    streams.report("asyncio", closed, ledger, f"; late clients: {late}")
    record(
        request,
        "load",
        f"asyncio server shut down under {len(clients):,} streaming clients and "
        f"{LATE_CLIENTS} arriving",
        f"closed in {closed:.2f} s, every client saw 1001; {streams}; every echoed message "
        "reached the handler once",
        0,
        clients=len(clients),
        seconds=round(closed, 2),
    )
    assert set(late) == set(LATE_OUTCOMES), late
    assert sum(late.values()) == LATE_CLIENTS

    # The server's own futures (closing, closed) go with it.
    del connections, streams, server
    check_released(ledger, baseline, await usage())


async def try_late(uri: str, client: int) -> str:
    """Connect and wait for the end; tell how it went, in the words of LATE_OUTCOMES."""
    try:
        ws = await tether.connect(f"{uri}{client}", open_timeout=LATE_TIMEOUT)
    except TimeoutError:
        # Before OSError, which it is a kind of.
        return "the handshake timed out"
    except InvalidStatus as exc:
        return f"refused with HTTP {exc.response.status_code}"
    except InvalidMessage:
        return "closed during the handshake"
    except OSError:
        return "refused by TCP"
    try:
        async with asyncio.timeout(LATE_TIMEOUT):
            await ws.recv()
    except TimeoutError:
        await ws.close()
        return "left open"
    except ConnectionClosedOK as exc:
        return f"opened, then closed with {exc.code}"
    except ConnectionClosed as exc:
        return f"opened, then failed with {exc.code}"
    await ws.close()
    return "received a message"
