"""One frame written straight to the sockets of plain connections (tether.asyncio._direct).

broadcast and Topics hand the shared frame to ``write_direct`` first: with
the C accelerator it sends the frame on the socket of each plain TCP or Unix
connection with empty buffers, and leaves every other connection to the
usual path through its engine and transport. Each test runs twice: with
the direct writes, and without them, as with ``TETHER_NO_SPEEDUPS=1``. The
behaviour clients see is the same; only the split between the two paths
differs.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tether
from tether.asyncio import _direct as direct
from tether.asyncio._direct import write_direct
from tether.asyncio.broadcast import broadcast
from tether.asyncio.client import ClientConnection
from tether.asyncio.server import Server, ServerConnection
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.frames import serialize_frame

from .conftest import ServerFactory

TIMEOUT = 5


@pytest.fixture(autouse=True, params=["direct", "through transports"])
def writes_directly(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Run each test with the direct writes (if the accelerator is in use), and without.

    The value says whether this run writes directly.
    """
    if request.param != "direct":
        monkeypatch.setattr(direct, "_write_shared", None)
    return direct._write_shared is not None


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


def port_of(server: Server) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])


async def open_clients(
    server: Server, count: int, scheme: str = "ws", **kwargs: Any
) -> list[ClientConnection]:
    uri = f"{scheme}://127.0.0.1:{port_of(server)}/"
    clients = [await tether.connect(uri, **kwargs) for _ in range(count)]
    async with asyncio.timeout(TIMEOUT):
        while len(server.connections) < count:
            await asyncio.sleep(0.01)
    return clients


def by_port(server: Server, clients: list[ClientConnection]) -> list[ServerConnection]:
    """The server side of each client, in the clients' order."""
    ports = {conn.remote_address[1]: conn for conn in server.connections}
    return [ports[client.local_address[1]] for client in clients]


def frame_maker(text: str, built: list[bytes]) -> Callable[[], bytes]:
    def make() -> bytes:
        frame = serialize_frame(1, text.encode(), mask=False)
        built.append(frame)
        return frame

    return make


async def close_all(clients: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in clients))


async def test_plain_connections_take_the_frame_directly(
    start_server: ServerFactory, writes_directly: bool
) -> None:
    server = await start_server(hold)
    sharing = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
    clients = (
        await open_clients(server, 3)
        + await open_clients(server, 3, compression=None)
        + await open_clients(server, 2, compression=None, extensions=[sharing])
    )
    conns = by_port(server, clients)
    built: list[bytes] = []
    try:
        sent, rest, frame = write_direct(conns, frame_maker("direct", built), plain_only=False)
        if writes_directly:
            # Compressing or not, every server engine takes the plain frame.
            assert (sent, list(rest), frame) == (8, [], built[0])
            async with asyncio.timeout(TIMEOUT):
                for client in clients:
                    assert await client.recv() == "direct"
        else:
            assert (sent, list(rest), frame, built) == (0, conns, None, [])
        # A topic's plain frame goes to engines without extensions and to
        # those whose compressor keeps its context; topics compress once for
        # those without context takeover, left to them.
        sent, rest, _ = write_direct(conns, frame_maker("plain only", built), plain_only=True)
        if writes_directly:
            assert (sent, list(rest)) == (6, conns[6:])
            async with asyncio.timeout(TIMEOUT):
                for client in clients[:6]:
                    assert await client.recv() == "plain only"
        # Whatever the split, broadcast reaches each connection once.
        assert broadcast(conns, "all of them") == 8
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                assert await client.recv() == "all of them"
    finally:
        await close_all(clients)


async def test_order_with_messages_before_and_after(start_server: ServerFactory) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 3)
    conns = by_port(server, clients)
    try:
        for round_ in range(3):
            for conn in conns:
                await conn.send(f"before {round_}")
            assert broadcast(conns, f"broadcast {round_}") == 3
            for conn in conns:
                await conn.send(f"after {round_}")
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                received = [await client.recv() for _ in range(9)]
                assert received == [
                    f"{what} {round_}"
                    for round_ in range(3)
                    for what in ("before", "broadcast", "after")
                ]
    finally:
        await close_all(clients)


async def test_pending_engine_output_goes_first(start_server: ServerFactory) -> None:
    server = await start_server(hold, compression=None)
    clients = await open_clients(server, 2, compression=None)
    pending, idle = by_port(server, clients)
    try:
        # Bytes the engine holds but nobody flushed yet: the shared frame
        # must not overtake them.
        pending.protocol.send_text(b"queued in the engine")
        assert broadcast([pending, idle], "shared") == 2
        async with asyncio.timeout(TIMEOUT):
            assert await clients[0].recv() == "queued in the engine"
            assert await clients[0].recv() == "shared"
            assert await clients[1].recv() == "shared"
    finally:
        await close_all(clients)


async def test_buffered_transport_keeps_order(start_server: ServerFactory) -> None:
    server = await start_server(hold, compression=None, write_limit=1 << 26)
    (client,) = await open_clients(server, 1, compression=None, max_queue=None)
    (conn,) = by_port(server, [client])
    assert client.transport is not None
    assert conn.transport is not None
    big = b"\xab" * (256 * 1024)
    try:
        client.transport.pause_reading()
        sent = 0
        while conn.transport.get_write_buffer_size() == 0 and sent < 256:
            await conn.send(big)
            sent += 1
        assert conn.transport.get_write_buffer_size() > 0
        assert broadcast([conn], "after the backlog") == 1
        client.transport.resume_reading()
        async with asyncio.timeout(TIMEOUT * 4):
            for _ in range(sent):
                assert await client.recv() == big
            assert await client.recv() == "after the backlog"
    finally:
        await client.close()


async def test_partial_write_sends_the_rest_through_the_transport(
    start_server: ServerFactory,
) -> None:
    server = await start_server(hold, compression=None, write_limit=1 << 24)
    (client,) = await open_clients(server, 1, compression=None)
    (conn,) = by_port(server, [client])
    assert client.transport is not None
    assert conn.transport is not None
    # Small socket buffers and a reader that stopped: the kernel takes only
    # the first part of a large frame.
    conn.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.transport.pause_reading()
    message = bytes(range(256)) * 1024
    try:
        assert broadcast([conn], message) == 1
        waiting = conn.transport.get_write_buffer_size()
        assert 0 < waiting < len(message)
        assert broadcast([conn], "next") == 1
        client.transport.resume_reading()
        async with asyncio.timeout(TIMEOUT):
            assert await client.recv() == message
            assert await client.recv() == "next"
    finally:
        await client.close()


async def test_tls_connections_go_through_their_transport(
    start_server: ServerFactory,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
) -> None:
    server = await start_server(hold, ssl=server_context)
    clients = await open_clients(server, 3, scheme="wss", ssl=client_context)
    conns = by_port(server, clients)
    built: list[bytes] = []
    try:
        sent, rest, frame = write_direct(conns, frame_maker("secret", built), plain_only=False)
        assert (sent, list(rest), frame, built) == (0, conns, None, [])
        assert broadcast(conns, "secret") == 3
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                assert await client.recv() == "secret"
    finally:
        await close_all(clients)


async def test_closing_connections_are_skipped(
    start_server: ServerFactory, writes_directly: bool
) -> None:
    server = await start_server(hold)
    clients = await open_clients(server, 3)
    transport_closing, handshake_closing, open_ = by_port(server, clients)
    assert transport_closing.transport is not None
    transport_closing.transport.close()
    closing = asyncio.create_task(handshake_closing.close())
    await asyncio.sleep(0)
    try:
        conns = [transport_closing, handshake_closing, open_]
        built: list[bytes] = []
        sent, rest, _ = write_direct(conns, frame_maker("to the open one", built), plain_only=False)
        if writes_directly:
            # Neither written nor left to the caller: skipped.
            assert (sent, list(rest)) == (1, [])
        else:
            assert (sent, list(rest)) == (0, conns)
        assert broadcast(conns, "again") == 1
        async with asyncio.timeout(TIMEOUT):
            if writes_directly:
                assert await clients[2].recv() == "to the open one"
            assert await clients[2].recv() == "again"
            await closing
    finally:
        await close_all(clients)


async def test_unix_socket_connections(tmp_path: Path, writes_directly: bool) -> None:
    path = str(tmp_path / "socket")
    async with tether.unix_serve(hold, path) as server:
        clients = [await tether.unix_connect(path) for _ in range(3)]
        async with asyncio.timeout(TIMEOUT):
            while len(server.connections) < 3:
                await asyncio.sleep(0.01)
        built: list[bytes] = []
        sent, rest, _ = write_direct(
            list(server.connections), frame_maker("unix", built), plain_only=False
        )
        assert (sent, len(list(rest))) == ((3, 0) if writes_directly else (0, 3))
        assert broadcast(server.connections, "to all") == 3
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                if writes_directly:
                    assert await client.recv() == "unix"
                assert await client.recv() == "to all"
        await close_all(clients)


async def test_frames_logged_at_debug_are_not_written_directly(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "tether.server")
    server = await start_server(hold, compression=None)
    clients = await open_clients(server, 2, compression=None)
    conns = by_port(server, clients)
    try:
        assert broadcast(conns, "logged") == 2
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                assert await client.recv() == "logged"
        sent_lines = [
            record.getMessage()
            for record in caplog.records
            if record.name == "tether.server" and "> TEXT 'logged'" in record.getMessage()
        ]
        assert len(sent_lines) == 2
    finally:
        await close_all(clients)


async def test_topics_count_direct_writes(start_server: ServerFactory) -> None:
    topics = tether.Topics()

    async def subscriber(ws: ServerConnection) -> None:
        topics.subscribe(ws, "feed")
        await ws.wait_closed()

    server = await start_server(subscriber, compression=None)
    clients = await open_clients(server, 5, compression=None)
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(topics.subscribers("feed")) < 5:
                await asyncio.sleep(0.01)
        for round_ in range(3):
            assert await topics.publish("feed", f"news {round_}") == 5
        async with asyncio.timeout(TIMEOUT):
            for client in clients:
                assert [await client.recv() for _ in range(3)] == [f"news {n}" for n in range(3)]
        assert topics.stats.delivered == topics.stats.shared_frames == 15
        assert topics.stats.own_frames == topics.stats.dropped == 0
    finally:
        await close_all(clients)


async def test_a_reset_the_transport_has_not_seen_yet(start_server: ServerFactory) -> None:
    server = await start_server(hold, compression=None)
    good, reset = await open_clients(server, 2, compression=None)
    ours_good, ours_reset = by_port(server, [good, reset])
    assert ours_reset.transport is not None
    assert reset.transport is not None
    # The peer drops TCP with a RST, which the server does not read yet: its
    # transport is open, and a send() on the socket fails.
    ours_reset.transport.pause_reading()
    reset.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    reset.transport.abort()
    await reset.wait_closed()
    poller = select.poll()
    poller.register(ours_reset.transport.get_extra_info("socket").fileno(), select.POLLIN)
    async with asyncio.timeout(TIMEOUT):
        while not any(events & select.POLLERR for _, events in poller.poll(0)):
            await asyncio.sleep(0.005)
    assert not ours_reset.transport.is_closing()
    try:
        # The failed write is left to the transport, which meets the error
        # and loses the connection; the other connection gets every message.
        assert broadcast([ours_reset, ours_good], "first") == 2
        async with asyncio.timeout(TIMEOUT):
            await ours_reset.wait_closed()
        assert ours_reset.close_code == 1006
        assert broadcast([ours_reset, ours_good], "second") == 1
        async with asyncio.timeout(TIMEOUT):
            assert [await good.recv(), await good.recv()] == ["first", "second"]
    finally:
        await good.close()
