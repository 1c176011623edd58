"""tether.trio connections: receiving, sending, pings, closing, and their cancellation."""

from __future__ import annotations

import logging
import random
import socket

import pytest
import trio
import trio.testing

import tether.trio
from tether.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from tether.trio import ClientConnection, PongWaiter, ServerConnection

from .conftest import hold, serving, trio_test, uri_of


async def _pair(server: tether.trio.Server) -> tuple[ClientConnection, ServerConnection]:
    client = await tether.trio.connect(uri_of(server))
    while not server.connections:
        await trio.sleep(0.001)
    return client, next(iter(server.connections))


async def _ping_pending(client: ClientConnection, done: trio.Event) -> None:
    waiter = await client.ping(b"same")
    with pytest.raises(ConcurrencyError):
        await client.ping(b"same")
    await waiter
    done.set()


@trio_test
async def test_cancelled_recv_loses_no_message() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)
        received: list[str | bytes] = []
        sent = [f"message {index}" for index in range(300)]

        async def send_all() -> None:
            for message in sent:
                await theirs.send(message)
                if len(message) % 3 == 0:
                    await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            # Cancel receives again and again, at random points of the flow.
            while len(received) < len(sent):
                with trio.move_on_after(0.0001):
                    received.append(await client.recv())
        assert received == sent
        await client.close()


@trio_test
async def test_recv_timeout_raises_timeout_error_and_keeps_the_message() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)
        with pytest.raises(TimeoutError):
            await client.recv(timeout=0.01)
        await theirs.send(b"later")
        assert await client.recv(timeout=1) == b"later"
        await client.close()


@trio_test
async def test_concurrent_recv_raises_concurrency_error() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.recv)
            await trio.sleep(0.01)
            with pytest.raises(ConcurrencyError):
                await client.recv()
            await theirs.send("for the first")
        await client.close()


@trio_test
async def test_recv_streaming_and_async_iterable_send() -> None:
    async with serving(hold) as server:
        client, theirs = await _pair(server)

        async def pieces() -> object:
            for piece in ("é", "t", "é"):
                yield piece
                await trio.sleep(0)

        await theirs.send(pieces())  # type: ignore[arg-type]
        # A piece per frame, and the empty frame that ends the message.
        assert [piece async for piece in client.recv_streaming()] == ["é", "t", "é", ""]
        await theirs.send([b"\xc3", b"\xa9"])
        pieces_received = [piece async for piece in client.recv_streaming(decode=True)]
        assert "".join(map(str, pieces_received)) == "é"
        await client.close()


@trio_test
async def test_cancelled_send_keeps_the_stream_whole() -> None:
    async with serving(hold, max_queue=1, max_size=None) as server:
        # Small socket buffers, set before connecting: a 2 MB message cannot fit in them.
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        await sock.connect(server.sockets[0].getsockname())
        client = await tether.trio.connect(
            uri_of(server), stream=trio.SocketStream(sock), max_size=None, max_queue=1
        )
        while not server.connections:
            await trio.sleep(0.001)
        theirs = next(iter(server.connections))
        assert isinstance(theirs.stream, trio.SocketStream)
        theirs.stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        big = random.Random(0).randbytes(2 * 1024 * 1024)  # Incompressible.
        # The client reads nothing: once a message waits, it stops reading,
        # and the next send cannot finish. It is cancelled.
        await theirs.send(b"first")
        with trio.move_on_after(0.2) as scope:
            await theirs.send(big)
        assert scope.cancelled_caught
        async with trio.open_nursery() as nursery:
            # This send waits for the rest of the big one to drain.
            nursery.start_soon(theirs.send, b"after")
            # What was left went on in the background: the messages arrive whole.
            assert await client.recv() == b"first"
            assert await client.recv() == big
            assert await client.recv() == b"after"
        await client.close()


@trio_test
async def test_ping_returns_an_awaitable_with_the_latency() -> None:
    async with serving(hold) as server:
        client, _ = await _pair(server)
        waiter = await client.ping(b"data")
        assert isinstance(waiter, PongWaiter)
        assert await waiter >= 0.0
        assert await (await client.ping()).wait() >= 0.0
        # Pinging twice at once with the same data is refused.
        theirs_reads = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ping_pending, client, theirs_reads)
            await theirs_reads.wait()
        assert await client.ping(b"same") is not None
        await client.close()


@trio_test
async def test_pending_ping_fails_when_the_connection_closes() -> None:
    async with serving(hold, ping_interval=None, max_queue=1) as server:
        client, theirs = await _pair(server)
        # The server's queue is full: it reads nothing more, no ping is answered.
        await client.send("fills the queue")
        while not theirs._paused:
            await trio.sleep(0.001)
        waiter = await client.ping(b"lost")
        await trio.sleep(0.05)
        await trio.aclose_forcefully(theirs.stream)
        with pytest.raises(ConnectionClosed):
            await waiter


@trio_test
async def test_close_twice_and_recv_after_close() -> None:
    async with serving(hold) as server:
        client, _ = await _pair(server)
        assert client.local_address[0] == "127.0.0.1"
        await client.close()
        await client.aclose()
        with pytest.raises(ConnectionClosedOK):
            await client.recv()
        with pytest.raises(ConnectionClosedOK):
            await client.send("late")
        assert client.state.name == "CLOSED"
        assert client.local_address is None


@trio_test
async def test_no_task_outlives_its_connection() -> None:
    async with serving(hold) as server:
        before = trio.lowlevel.current_statistics().tasks_living
        clients = [await tether.trio.connect(uri_of(server)) for _ in range(10)]
        while len(server.connections) < 10:
            await trio.sleep(0.001)
        # The handler of each server connection, and the run's watcher: no
        # reader task on either side.
        assert trio.lowlevel.current_statistics().tasks_living == before + 10 + 1
        for ws in clients:
            await ws.send("x")
            await ws.close()
        while server.connections or trio.lowlevel.current_statistics().tasks_living > before:
            await trio.sleep(0.001)
        assert trio.lowlevel.current_statistics().tasks_living == before


@trio_test
async def test_a_block_that_raises_closes_with_1011() -> None:
    closed: list[tuple[int | None, str | None]] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closed.append((ws.close_code, ws.close_reason))

    async with serving(handler) as server:
        with pytest.raises(RuntimeError):
            async with tether.trio.connect(uri_of(server)):
                raise RuntimeError("boom")
        async with tether.trio.connect(uri_of(server)):
            pass
        while len(closed) < 2:
            await trio.sleep(0.001)
    assert closed == [(1011, ""), (1000, "")]


@trio_test
async def test_frames_logged_at_debug() -> None:
    logger = logging.getLogger("tether.test.trio.frames")
    logger.setLevel(logging.DEBUG)
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        async with (
            serving(compression=None) as server,
            tether.trio.connect(uri_of(server), compression=None, logger=logger) as ws,
        ):
            await ws.send("hi")
            assert await ws.recv() == "hi"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    frames = [record.split("] ", 1)[1] for record in records if "] <" in record or "] >" in record]
    assert frames[:2] == ["> TEXT 'hi' [2 bytes]", "< TEXT 'hi' [2 bytes]"]


@trio_test
async def test_wait_closed_leaves_reading_to_a_recv_that_started_meanwhile() -> None:
    # wait_closed reads while no other task does, and parks once the queue is
    # full. A recv that empties the queue wakes it, then finds nothing to
    # read and waits on the socket itself before the woken task runs: the
    # woken wait_closed must leave the socket to it (a second wait on the
    # same socket raises trio.BusyResourceError) and wait for the end.
    async with serving(hold) as server:
        client = await tether.trio.connect(uri_of(server), max_queue=1)
        while not server.connections:
            await trio.sleep(0.001)
        theirs = next(iter(server.connections))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.wait_closed)
            await theirs.send("first")
            # The peer's message fills the queue: wait_closed parks.
            while not client._paused:
                await trio.sleep(0.001)
            await trio.testing.wait_all_tasks_blocked()
            recv_second = trio.Event()
            second: list[str | bytes] = []

            async def recv_twice() -> None:
                # No checkpoint between the two calls: the second one waits
                # on the socket before wait_closed, rescheduled by the first,
                # runs again.
                second.append(await client.recv())
                recv_second.set()
                second.append(await client.recv())

            nursery.start_soon(recv_twice)
            await recv_second.wait()
            await trio.testing.wait_all_tasks_blocked()
            await theirs.send("second")
            while len(second) < 2:
                await trio.sleep(0.001)
            assert second == ["first", "second"]
            await theirs.close()
        assert client.close_code == 1000
