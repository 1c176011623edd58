"""Writes gathered per loop iteration: several sends leave as one write, the first at once.

A connection that sends again before it waited for input writes its first
frame at once and gathers what follows until the next loop iteration (or the
gather limit); every other write comes after the gathered frames. The tests
count the writes that reach the real transport and read the frames as the
peer receives them.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

import tether
from tests.behaviour.raw import TIMEOUT, accept_raw
from tests.behaviour.raw import RawPeer as BlockingPeer
from tether.asyncio.connection import GATHER_LIMIT, Connection
from tether.exceptions import ConnectionClosedOK
from tether.protocol.events import CloseReceived, Event, Fragment, Message, Ping, Pong

from .conftest import ServerFactory
from .pairs import Side, open_pair, open_raw_pair
from .raw_peer import RawPeer, raw_server


class CountingTransport:
    """The connection's real transport, with a record of what each write() carried."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.write(b"".join(lines))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def count_writes(ws: Connection) -> CountingTransport:
    counting = CountingTransport(ws.transport)
    ws.transport = counting  # type: ignore[assignment]
    return counting


def message(index: int, size: int = 64) -> bytes:
    return index.to_bytes(4, "big") + bytes(size - 4)


async def received(peer: RawPeer, count: int) -> list[Event]:
    return [await peer.next_event() for _ in range(count)]


async def test_sends_in_one_iteration_leave_in_one_write(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        counting = count_writes(ours)
        for index in range(100):
            await ours.send(message(index))
        # The first two went out at once; the other 98 wait for the next iteration.
        assert len(counting.writes) == 2
        events = await received(peer, 100)
        assert events == [Message(message(index)) for index in range(100)]
        assert len(counting.writes) == 3
        assert sum(map(len, counting.writes)) == 100 * (64 + 2 + (4 if side == "client" else 0))


async def test_bursts_in_many_iterations_reuse_one_tick(
    start_server: ServerFactory, side: Side
) -> None:
    # The tick that ended a gathering is the connection's spare one, which
    # the next burst schedules again (C's write_message takes it from its
    # slot, the Python _tick property likewise): one object, each burst
    # written at the iteration after its sends.
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        counting = count_writes(ours)
        ticks: set[int] = set()
        for burst in range(5):
            for index in range(3):
                await ours.send(message(3 * burst + index))
            assert ours._tick_pending
            await asyncio.sleep(0)
            assert not ours._tick_pending
            assert ours._spare_tick is not None
            assert ours._spare_tick.connection is None
            ticks.add(id(ours._spare_tick))
        assert len(ticks) == 1
        # The first burst: two frames at once, the third gathered and written
        # by the tick. The connection has not waited for input since: each
        # later burst writes its first frame at once and gathers the others.
        assert len(counting.writes) == 3 + 4 * 2
        events = await received(peer, 15)
        assert events == [Message(message(index)) for index in range(15)]


async def test_gathered_frames_leave_at_the_gather_limit(
    start_server: ServerFactory, side: Side
) -> None:
    size = 1000
    count = 3 * GATHER_LIMIT // size
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        counting = count_writes(ours)
        for index in range(count):
            await ours.send(message(index, size))
        # Written whenever the gathered frames reached the limit, not only at the end.
        assert len(counting.writes) >= 4
        assert all(len(write) < GATHER_LIMIT + size + 8 for write in counting.writes)
        events = await received(peer, count)
        assert events == [Message(message(index, size)) for index in range(count)]


async def test_a_frame_that_fills_the_gather_alone_leaves_alone(
    start_server: ServerFactory, side: Side
) -> None:
    header = 2 + (4 if side == "client" else 0)
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        counting = count_writes(ours)
        await ours.send(message(0))
        await ours.send(message(1))
        # Nothing gathered yet, and this frame is over the gather limit: it
        # is written at once, in a write of its own.
        await ours.send(message(2, GATHER_LIMIT + 100))
        assert [len(write) for write in counting.writes] == [
            64 + header,
            64 + header,
            GATHER_LIMIT + 100 + header + 2,
        ]
        # The next ones are gathered again, until the next iteration.
        await ours.send(message(3))
        await ours.send(message(4))
        assert len(counting.writes) == 3
        events = await received(peer, 5)
        assert events == [
            Message(message(index, GATHER_LIMIT + 100 if index == 2 else 64)) for index in range(5)
        ]
        assert [len(write) for write in counting.writes[3:]] == [2 * (64 + header)]


async def test_each_reply_of_an_echo_goes_out_at_once(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_pair(start_server, side, both={"compression": None}) as pair:
        ours, theirs = pair.ours, pair.theirs
        counting = count_writes(ours)
        for index in range(20):
            await ours.send(message(index))
            # Written before send() returned, without waiting for the loop.
            assert len(counting.writes) == index + 1
            assert await theirs.recv() == message(index)
            await theirs.send(message(index))
            assert await ours.recv() == message(index)


async def test_a_sender_that_waits_between_sends_writes_each_at_once(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        counting = count_writes(ours)
        for index in range(6):
            await ours.send(message(index))
            assert len(counting.writes) == index + 1
            # Waiting for something other than input, as a publisher waits for its queue.
            await asyncio.sleep(0.01)
        assert await received(peer, 6) == [Message(message(index)) for index in range(6)]


async def test_a_receiver_starting_to_wait_does_not_reorder_gathered_frames(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        for index in range(5):
            await ours.send(message(index))
        # A receiver starts waiting within the same iteration, as a reading
        # task beside the sending one may: sends go on being gathered.
        receiving = ours.recv().__await__()
        next(receiving)
        for index in range(5, 10):
            await ours.send(message(index))
        receiving.close()
        assert await received(peer, 10) == [Message(message(index)) for index in range(10)]


async def test_control_frames_come_after_the_gathered_messages(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        for index in range(10):
            await ours.send(message(index))
        await ours.ping(b"after")
        events = await received(peer, 11)
        assert events == [*(Message(message(index)) for index in range(10)), Ping(b"after")]


async def test_close_comes_after_the_gathered_messages(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_pair(start_server, side, both={"compression": None}) as pair:
        ours, theirs = pair.ours, pair.theirs
        for index in range(10):
            await ours.send(message(index))
        # Closed in the same iteration: the close frame is written at once.
        await ours.close()
        for index in range(10):
            assert await theirs.recv() == message(index)
        try:
            await theirs.recv()
        except ConnectionClosedOK:
            pass
        else:
            raise AssertionError("a message came after the last one sent")


async def test_gathered_frames_are_dropped_with_the_transport(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):
        for index in range(10):
            await ours.send(message(index))
        assert ours.transport is not None
        ours.transport.abort()
        await ours.wait_closed()
        # The two written at once may arrive; nothing gathered after the abort does.
        events: list[Event] = []
        while True:
            try:
                events.append(await peer.next_event())
            except EOFError:
                break
        assert all(not isinstance(event, CloseReceived) for event in events)
        assert len(events) <= 2


async def test_pings_fragments_and_waiting_sends_keep_the_order_of_calls(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None) as (ours, peer):

        async def pieces() -> Any:
            yield b"f0"
            await asyncio.sleep(0)
            yield b"f1"

        # The first is written at once, the next two gathered.
        for index in range(3):
            await ours.send(message(index))
        fragmented = asyncio.create_task(ours.send(pieces()))
        # Before the fragmented message starts: after the gathered ones.
        await ours.ping(b"p")
        await asyncio.sleep(0)
        # The fragmented message is under way: this waits for its end.
        await ours.send(message(3))
        await fragmented
        await ours.pong(b"q")
        events = await received(peer, 9)
        assert events[:4] == [*(Message(message(index)) for index in range(3)), Ping(b"p")]
        assert events[4:] == [
            Fragment(b"f0", first=True, last=False),
            Fragment(b"f1", first=False, last=False),
            Fragment(b"", first=False, last=True),
            Message(message(3)),
            Pong(b"q"),
        ]


async def test_write_limit_counts_the_gathered_frames(
    start_server: ServerFactory, side: Side
) -> None:
    limit = 32 * 1024
    options = {"compression": None, "write_limit": limit}
    async with open_raw_pair(start_server, side, **options) as (ours, _):
        transport = ours.transport
        assert transport is not None
        # The peer reads nothing from now on, once its stream's buffer is
        # full: fill the socket buffers, then the transport's up to 6 KiB
        # below the limit. Waiting between sends writes each at once.
        for index in range(10_000):
            if transport.get_write_buffer_size() >= limit - 6 * 1024:
                break
            await ours.send(message(index, 1024))
            await asyncio.sleep(0)
        else:
            raise AssertionError("the socket buffers never filled")
        assert transport.get_write_buffer_size() <= limit
        # Sends in one iteration: after the first, they are gathered.
        size = 256
        frame = size + 4 + (4 if side == "client" else 0)
        for index in range(200):
            sending = ours.send(message(index, size)).__await__()
            try:
                next(sending)
            except StopIteration:
                continue
            # This send waits for the buffer to drain: what it holds passed
            # the limit by at most the frame that made it pass.
            sending.close()
            break
        else:
            raise AssertionError("send never waited")
        buffered = transport.get_write_buffer_size()
        assert limit < buffered <= limit + frame


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_closing_after_the_loop_stopped_in_the_iteration_of_the_sends_writes_them(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # asyncio's loop stops before the iteration that would write the gathered
    # frames (uvloop runs it first): the connection's close, in the next run,
    # writes them before its close frame.
    loop = new_loop()
    try:
        serving = raw_server()
        uri, peers = loop.run_until_complete(serving.__aenter__())
        client = loop.run_until_complete(tether.connect(uri, compression=None))
        peer = loop.run_until_complete(peers.get())

        def send_and_stop() -> None:
            for index in range(10):
                sending = client.send(message(index)).__await__()
                with pytest.raises(StopIteration):
                    next(sending)
            loop.stop()

        loop.call_soon(send_and_stop)
        loop.run_forever()

        async def close() -> list[Event]:
            closing = asyncio.create_task(client.close())
            events = await received(peer, 11)
            # The peer answers as a server does: its close frame, then TCP closed.
            await peer.write(b"\x88\x02\x03\xe8")
            await peer.close()
            await closing
            return events

        events = loop.run_until_complete(close())
        assert events[:10] == [Message(message(index)) for index in range(10)]
        assert isinstance(events[10], CloseReceived)
        assert client.close_code == 1000
        loop.run_until_complete(serving.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.mark.parametrize(
    "new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_frames_gathered_before_the_loop_stopped_and_closed_reach_the_peer(
    new_loop: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # asyncio's loop stops before the iteration that would write the gathered
    # frames, and closing it drops that iteration's callbacks: the frames are
    # written then, so that every frame send_nowait() took reaches the
    # transport, as the first ones, written at once, do.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]
        accepted: list[BlockingPeer] = []
        accepting = threading.Thread(target=lambda: accepted.append(accept_raw(listener)))
        accepting.start()
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        loop = new_loop()
        try:
            client = loop.run_until_complete(
                tether.connect(
                    f"ws://127.0.0.1:{port}/", sock=sock, compression=None, ping_interval=None
                )
            )
            accepting.join(TIMEOUT)
            (peer,) = accepted

            def send_and_stop() -> None:
                for index in range(10):
                    client.send_nowait(message(index))
                loop.stop()

            loop.call_soon(send_and_stop)
            loop.run_forever()
        finally:
            loop.close()
    # Nothing runs the connection any more: end TCP (uvloop's close did), so
    # that the peer reads what came, then EOF.
    sock.close()
    events: list[Event] = []
    try:
        while True:
            events.append(peer.next_event())
    except EOFError:
        pass
    peer.close()
    assert events == [Message(message(index)) for index in range(10)]
