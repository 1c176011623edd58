"""Sending one message to many connections: what only tether.asyncio's broadcast does.

It builds one frame for all the connections it can write to directly; a
failed write is reported. What every API's broadcast shares (closed, slow
and fragmenting connections skipped) is tested once in
tests/behaviour/test_broadcast.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import websockets

import tether
import tether.broadcasting as broadcast_module
from tether.asyncio import _direct as direct
from tether.asyncio.broadcast import broadcast
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection
from tether.protocol.frames import serialize_frame

from .conftest import ServerFactory, echo, uri_of

TIMEOUT = 5


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def open_clients(server: Server, count: int, **kwargs: Any) -> list[ClientConnection]:
    clients = await asyncio.gather(
        *(tether.connect(uri_of(server), **kwargs) for _ in range(count))
    )
    async with asyncio.timeout(TIMEOUT):
        while len(server.connections) < count:
            await asyncio.sleep(0.01)
    return list(clients)


async def close_all(clients: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in clients))


@pytest.fixture
def encodings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the frames broadcast builds for sharing."""
    built: list[int] = []

    def counting(opcode: int, data: Any, **kwargs: Any) -> bytes:
        built.append(opcode)
        return serialize_frame(opcode, data, **kwargs)

    monkeypatch.setattr(broadcast_module, "serialize_frame", counting)
    return built


async def test_hundred_connections_share_one_frame(
    start_server: ServerFactory, encodings: list[int]
) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 100)
    try:
        # Every connection negotiated permessage-deflate, and still shares the frame.
        assert all(conn.protocol.extensions for conn in server.connections)
        assert broadcast(server.connections, "news for all") == 100
        assert broadcast(server.connections, b"\x00\x01") == 100
        async with asyncio.timeout(TIMEOUT):
            for ws in clients:
                assert await ws.recv() == "news for all"
                assert await ws.recv() == b"\x00\x01"
        assert len(encodings) == 2
    finally:
        await close_all(clients)


async def test_mixed_compression(start_server: ServerFactory, encodings: list[int]) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 2) + await open_clients(server, 4, compression=None)
    try:
        assert broadcast(server.connections, bytearray(b"mixed")) == 6
        async with asyncio.timeout(TIMEOUT):
            for ws in clients:
                assert await ws.recv() == b"mixed"
        assert len(encodings) == 1
    finally:
        await close_all(clients)


async def test_client_connections_mask_their_own_frames(
    start_server: ServerFactory, encodings: list[int]
) -> None:
    server = await start_server(echo)
    clients = await open_clients(server, 3)
    try:
        assert broadcast(clients, "from clients") == 3
        assert broadcast(clients, b"binary too") == 3
        async with asyncio.timeout(TIMEOUT):
            for ws in clients:
                assert await ws.recv() == "from clients"
                assert await ws.recv() == b"binary too"
        assert encodings == []  # Each client built its own masked frame.
    finally:
        await close_all(clients)


async def test_write_error_is_reported(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 2)
    broken, working = sorted(server.connections, key=lambda conn: conn.id)

    def fail() -> None:
        raise OSError("write failed")

    monkeypatch.setattr(broken, "_flush_nowait", fail)
    # The path through the engine and the transport, which TLS connections
    # and others that cannot take a direct write follow.
    monkeypatch.setattr(direct, "_write_shared", None)
    caplog.set_level(logging.WARNING, logger="tether.server")
    try:
        assert broadcast([broken, working], "one") == 1
        assert any("write failed" in r.getMessage() for r in caplog.records)
        with pytest.raises(ExceptionGroup) as caught:
            broadcast([broken, working], "two", raise_exceptions=True)
        (error,) = caught.value.exceptions
        assert isinstance(error, OSError)
        assert error.__notes__ == [f"connection {broken.id}"]
    finally:
        monkeypatch.undo()
        await close_all(clients)


async def test_websockets_client_reads_uncompressed_broadcast(start_server: ServerFactory) -> None:
    server = await start_server(hold)
    async with websockets.connect(uri_of(server)) as ws:
        async with asyncio.timeout(TIMEOUT):
            while not server.connections:
                await asyncio.sleep(0.01)
        (conn,) = server.connections
        assert conn.protocol.extensions  # permessage-deflate was negotiated.
        assert broadcast(server.connections, "plain frame") == 1
        async with asyncio.timeout(TIMEOUT):
            assert await ws.recv() == "plain frame"
