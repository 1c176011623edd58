"""What an idle asyncio connection holds, and the behaviour its lazy parts keep.

An idle connection makes nothing it does not use: no uuid until its ``id`` is
asked for, no lock until a fragmented send, no dictionary of pings between
keepalive rounds, no future until someone waits for the close. Its handler
waits with a single coroutine frame of tether's.
"""

from __future__ import annotations

import asyncio
import logging
import types
import uuid

import pytest

import tether
from tether.asyncio.connection import anext_python
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConcurrencyError, ConnectionClosedOK
from tether.log import ConnectionLogger
from tether.protocol.connection import State
from tether.protocol.events import Ping

from .conftest import ServerFactory, uri_of
from .pairs import Pair, Side, open_pair, open_raw_pair, until

INTERVAL = 0.05


async def test_an_idle_connection_makes_nothing_it_does_not_use(
    start_server: ServerFactory, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    # Records below WARNING are not made, so nothing needs a label.
    caplog.set_level(logging.WARNING, logger="tether")
    async with open_pair(start_server, side) as pair:
        for ws in (pair.ours, pair.theirs):
            assert ws._send_lock is None
            assert ws._pings is None
            assert ws._id is None
            assert ws._keepalive is not None
            # No message came: the queue has made no deque.
            assert not ws._messages.pending
            assert ws._messages._items is None
        # The server's handler waits for the close; the client has no waiter.
        assert pair.client._waiters is None
        assert pair.server_side._waiters is not None
        # Only a fragmented message needs the send lock.
        await pair.ours.send(["frag", "ments"])
        assert await pair.theirs.recv() == "fragments"
        assert isinstance(pair.ours._send_lock, asyncio.Lock)


async def test_id_is_made_once_when_asked_for(pair: Pair) -> None:
    first = pair.ours.id
    assert isinstance(first, uuid.UUID)
    assert pair.ours.id is first
    assert pair.ours.logger.label == str(first)[:8]


async def test_a_record_makes_the_id_for_its_label(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    pair.ours.logger.debug("hello")
    (record,) = [r for r in caplog.records if r.getMessage().endswith("] hello")]
    assert record.getMessage() == f"[{str(pair.ours.id)[:8]}] hello"
    assert record.websocket is pair.ours  # type: ignore[attr-defined]


async def test_a_connection_logger_extra_is_its_connection(pair: Pair) -> None:
    logger = pair.ours.logger
    assert isinstance(logger, ConnectionLogger)
    assert logger.extra == {"websocket": pair.ours}
    with pytest.raises(AttributeError):
        logger.extra = {"other": 1}
    assert logger.extra == {"websocket": pair.ours}


async def test_the_connection_is_its_own_iterator(pair: Pair) -> None:
    assert aiter(pair.ours) is pair.ours
    await pair.theirs.send("one")
    assert await anext(pair.ours) == "one"
    await pair.theirs.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(5):
            await anext(pair.ours)


async def test_a_waiting_handler_has_one_frame_of_ours(start_server: ServerFactory) -> None:
    handed_over: asyncio.Queue[tuple[ServerConnection, asyncio.Task[None]]] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        task = asyncio.current_task()
        assert task is not None
        await handed_over.put((ws, task))
        async for _ in ws:
            pass

    server = await start_server(handler)
    client = await tether.connect(uri_of(server))
    try:
        async with asyncio.timeout(5):
            ws, task = await handed_over.get()
        await until(lambda: ws._reader is not None)
        # The chain of coroutines awaiting each other, outermost first.
        chain = []
        awaited: object = task.get_coro()
        while isinstance(awaited, types.CoroutineType):
            chain.append(awaited)
            awaited = awaited.cr_await
        names = [coro.cr_code.co_qualname for coro in chain]
        if type(ws).__anext__ is not anext_python:
            # The accelerator's step: no frame of ours at all, the handler
            # awaits an object of the C module, whose send() ended in the
            # connection's reader future.
            assert names[-1].endswith(".handler")
            assert type(awaited).__module__ == "tether._speedups"
            return
        assert names[-1] == "Connection.__anext__"
        # Neither recv nor a waiting helper under it: it awaits the future itself.
        assert [name for name in names if name.startswith("Connection.")] == [names[-1]]
        frame = chain[-1].cr_frame
        assert frame is not None
        assert frame.f_locals["self"] is ws
    finally:
        await client.close()


async def test_recv_while_async_for_waits_is_refused(pair: Pair) -> None:
    received: list[str | bytes] = []

    async def iterate() -> None:
        async for message in pair.ours:
            received.append(message)

    task = asyncio.create_task(iterate())
    await until(lambda: pair.ours._reader is not None)
    with pytest.raises(ConcurrencyError):
        await pair.ours.recv()
    await pair.theirs.send("after")
    await until(lambda: received == ["after"])
    await pair.theirs.close()
    async with asyncio.timeout(5):
        await task


async def test_recv_timeout_leaves_no_reader_behind(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        await pair.ours.recv(timeout=0.01)
    assert pair.ours._reader is None
    await pair.theirs.send("late")
    assert await pair.ours.recv(timeout=5) == "late"


async def test_a_cancelled_close_waiter_leaves_the_others(pair: Pair) -> None:
    cancelled = asyncio.create_task(pair.ours.wait_closed())
    waiting = asyncio.create_task(pair.ours.wait_closed())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    async with asyncio.timeout(5):
        await pair.theirs.close()
        await waiting
    assert pair.ours.state is State.CLOSED
    # Closed: waiting again returns at once, and no waiter is kept.
    await pair.ours.wait_closed()
    await pair.ours.close()
    assert pair.ours._waiters is None


async def test_iteration_after_a_normal_close_ends(pair: Pair) -> None:
    await pair.theirs.send("last")
    await pair.theirs.close()
    received = []
    async with asyncio.timeout(5):
        async for message in pair.ours:
            received.append(message)
    assert received == ["last"]
    with pytest.raises(ConnectionClosedOK):
        await pair.ours.recv()


async def test_keepalive_drops_the_pings_between_rounds(
    start_server: ServerFactory, side: Side
) -> None:
    options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL * 20}
    async with open_raw_pair(start_server, side, **options) as (ours, peer):
        event = await peer.next_event()
        assert isinstance(event, Ping)
        assert ours._pings is not None
        # The next round is far away: no new ping races the checks below.
        ours.ping_interval = 60
        peer.engine.send_pong(event.data)
        await peer.flush()
        await until(lambda: ours.latency > 0)
        # Answered: nothing waits for a pong, so no dictionary is kept.
        assert ours._pings is None
        # The next ping is an interval after the pong, at most 4 s later.
        bucket = ours._keepalive
        assert bucket is not None
        now = asyncio.get_running_loop().time()
        assert now + 55 < bucket.when <= now + 64


async def test_a_pong_to_a_later_ping_answers_the_keepalive_ping(
    start_server: ServerFactory, side: Side
) -> None:
    # Had the keepalive ping stayed unanswered, the next event would be a
    # close frame after ping_timeout rather than the next ping.
    options = {"ping_interval": INTERVAL, "ping_timeout": 2.0}
    async with open_raw_pair(start_server, side, **options) as (ours, peer):
        keepalive_ping = await peer.next_event()
        assert isinstance(keepalive_ping, Ping)
        waiter = await ours.ping(b"mine")
        assert await peer.next_event() == Ping(b"mine")
        # Only the latest ping is answered, as RFC 6455 allows.
        peer.engine.send_pong(b"mine")
        await peer.flush()
        async with asyncio.timeout(5):
            await waiter
        event = await peer.next_event()
        assert isinstance(event, Ping)
        assert event.data != keepalive_ping.data
        assert ours.state is State.OPEN


async def test_user_pings_are_answered_without_keepalive(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, ping_interval=None) as (ours, peer):
        assert ours._keepalive is None
        waiter = await ours.ping("data")
        assert await peer.next_event() == Ping(b"data")
        peer.engine.send_pong(b"data")
        await peer.flush()
        async with asyncio.timeout(5):
            latency = await waiter
        assert latency == ours.latency
        assert ours._pings is None
