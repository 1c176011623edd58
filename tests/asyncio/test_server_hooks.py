"""What only the asyncio server's handshake does: a coroutine hook bounded by open_timeout.

The hooks and options every server shares are tested once for every API in
``tests/behaviour/test_hooks.py``.
"""

from __future__ import annotations

import asyncio

import pytest

import tether
from tether.asyncio.server import ServerConnection
from tether.protocol.http11 import Request

from .conftest import ServerFactory, uri_of

TIMEOUT = 5


async def hello(ws: ServerConnection) -> None:
    await ws.send(f"hello {ws.subprotocol} {ws.username}")


async def test_open_timeout_covers_slow_hooks(start_server: ServerFactory) -> None:
    # The threading server cannot stop a hook that is a plain function.
    async def stall(connection: ServerConnection, request: Request) -> None:
        await asyncio.sleep(TIMEOUT * 2)

    server = await start_server(hello, open_timeout=0.05, process_request=stall)
    with pytest.raises(tether.InvalidMessage):
        async with asyncio.timeout(TIMEOUT):
            await tether.connect(uri_of(server))


async def test_unsupported_compression() -> None:
    with pytest.raises(ValueError, match="unsupported compression"):
        tether.serve(hello, "127.0.0.1", 0, compression="gzip")  # type: ignore[arg-type]
