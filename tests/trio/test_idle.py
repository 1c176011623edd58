"""tether.trio's reading without a reader task: a receiver idle long enough waits for the watcher.

A task in ``recv`` (or ``wait_closed``) with nothing to read for
:data:`tether.trio.watcher.IDLE` seconds stops waiting on the socket and lets
the run's watcher read for it. These tests go through that hand-over and
back, with cancellation and a blocked writer in the middle.
"""

from __future__ import annotations

import socket

import trio

import tether.trio
from tether.trio import ClientConnection, ServerConnection
from tether.trio.watcher import IDLE

from .conftest import hold, serving, trio_test, uri_of


async def _pair(server: tether.trio.Server) -> tuple[ClientConnection, ServerConnection]:
    client = await tether.trio.connect(uri_of(server))
    while not server.connections:
        await trio.sleep(0.001)
    return client, next(iter(server.connections))


async def _until(predicate: object) -> None:
    while not predicate():  # type: ignore[operator]
        await trio.sleep(0.005)


@trio_test
async def test_an_idle_receiver_still_gets_every_message_then_reads_again() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)
        got: list[str | bytes] = []

        async def receive(count: int) -> None:
            for _ in range(count):
                got.append(await client.recv())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive, 3)
            # Idle: the receiver stops waiting on the socket.
            await _until(lambda: client._cold)
            await theirs.send("first")
            await _until(lambda: got)
            # Back to reading the socket itself for the next ones.
            assert not client._cold
            await theirs.send("second")
            await theirs.send("third")
        assert got == ["first", "second", "third"]
        # Pings are answered and pongs read, idle or not.
        await trio.sleep(IDLE * 1.5)
        assert await (await client.ping()) >= 0.0
        await client.close()


@trio_test
async def test_a_cancelled_idle_recv_loses_no_message() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.recv)
            await _until(lambda: client._cold)
            nursery.cancel_scope.cancel()
        await theirs.send("kept")
        await trio.sleep(0.05)
        assert await client.recv() == "kept"
        await client.close()


@trio_test
async def test_an_idle_wait_closed_ends_with_the_closure() -> None:
    codes: list[int | None] = []

    async def wait(ws: ServerConnection) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    async with serving(wait) as server:
        client, theirs = await _pair(server)
        await _until(lambda: theirs._cold)
        await client.close(4001)
        await _until(lambda: codes)
        assert codes == [4001]


@trio_test
async def test_an_idle_receiver_does_not_disturb_a_blocked_writer() -> None:
    async def slow_reader(ws: ServerConnection) -> None:
        # Read nothing for a while: the client's sends fill the sockets.
        await trio.sleep(IDLE * 3)
        async for message in ws:
            if message == "end":
                await ws.send("done")

    async with serving(slow_reader, max_queue=1) as server:
        # Small socket buffers: the sender waits for room long before the end.
        server.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client, _ = await _pair(server)
        client._stream_socket().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        chunk = bytes(256 * 1024)
        received: list[str | bytes] = []

        async def receive() -> None:
            received.append(await client.recv())

        async with trio.open_nursery() as nursery:
            # A receiver idles past IDLE while the sender waits for room.
            nursery.start_soon(receive)
            # 25 MiB: more than loopback's buffers hold.
            for _ in range(100):
                await client.send(chunk)
            await client.send("end")
        assert received == ["done"]
        await client.close()
        assert client.close_code == 1000
