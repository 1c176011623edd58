"""``async for`` behaves the same with the accelerator's ``__anext__`` and with the Python one.

``tether._speedups.anext_method`` replaces ``Connection.__anext__`` when the
accelerator is built; ``tether.asyncio.connection.anext_python`` is the
Python method it follows. Each test here runs with each of them on a real
pair over loopback (both ends, both loops), and checks what a reader sees:
the messages, the end of the iteration, cancellation, a second reader,
backpressure, and an iteration step that is dropped or interrupted.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import tether
import tether._speedups as speedups
from tether.asyncio.connection import Connection, anext_python
from tether.exceptions import ConcurrencyError, ConnectionClosedError

from .conftest import ServerFactory
from .pairs import Pair, Side, method_fixture, open_pair, until, uri_of

implementation = method_fixture(
    "__anext__", {"c": lambda: speedups.anext_method(Connection), "python": lambda: anext_python}
)


async def collect(ws: Connection, into: list[str | bytes]) -> None:
    """Read every message of ``ws`` with ``async for``."""
    async for message in ws:
        into.append(message)


async def test_messages_queued_and_awaited_arrive_in_order(pair: Pair) -> None:
    await pair.theirs.send("queued")
    await pair.theirs.send(b"also queued")
    await until(lambda: len(pair.ours._messages) == 2)
    received: list[str | bytes] = []
    task = asyncio.create_task(collect(pair.ours, received))
    await until(lambda: len(received) == 2)
    # Now the reader waits on its future; each read wakes it.
    await until(lambda: pair.ours._reader is not None)
    for index in range(5):
        await pair.theirs.send(f"later {index}")
    await pair.theirs.send(["frag", "mented"])  # put together by MessageQueue.get()
    await pair.theirs.close()
    async with asyncio.timeout(5):
        await task
    assert received == ["queued", b"also queued", *(f"later {i}" for i in range(5)), "fragmented"]
    assert not pair.ours._reading


async def test_an_error_close_ends_the_iteration_with_connection_closed_error(pair: Pair) -> None:
    received: list[str | bytes] = []
    task = asyncio.create_task(collect(pair.ours, received))
    await pair.theirs.send("last")
    await until(lambda: received == ["last"])
    await pair.theirs.close(1011, "broken")
    with pytest.raises(ConnectionClosedError) as caught:
        async with asyncio.timeout(5):
            await task
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert not pair.ours._reading


async def test_a_step_after_the_end_stops_again(pair: Pair) -> None:
    await pair.theirs.close()
    await until(lambda: pair.ours._lost)
    for _ in range(2):
        with pytest.raises(StopAsyncIteration):
            await anext(pair.ours)


async def test_cancelling_a_waiting_reader_loses_nothing(pair: Pair) -> None:
    task = asyncio.create_task(anext(pair.ours))
    await until(lambda: pair.ours._reader is not None)
    reader = pair.ours._reader
    assert reader is not None
    assert type(reader) is asyncio.Future
    assert reader.get_loop() is asyncio.get_running_loop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pair.ours._reading
    assert pair.ours._reader is None
    await pair.theirs.send("after")
    async with asyncio.timeout(5):
        assert await anext(pair.ours) == "after"


async def test_each_wait_makes_a_fresh_future_on_the_connection_loop(
    pair: Pair, implementation: str
) -> None:
    readers: list[asyncio.Future[None]] = []
    for index in range(3):
        task = asyncio.create_task(anext(pair.ours))
        await until(lambda: pair.ours._reader is not None)
        reader = pair.ours._reader
        assert reader is not None
        assert reader.get_loop() is pair.ours._loop
        assert all(reader is not before for before in readers)
        readers.append(reader)
        await pair.theirs.send(str(index))
        async with asyncio.timeout(5):
            assert await task == str(index)
    # The C method makes them as Future(loop=...) with one keyword dictionary
    # per connection, not one per message; the Python one asks the loop.
    options = pair.ours._reader_options
    assert options == ({"loop": pair.ours._loop} if implementation == "c" else None)


async def test_a_timeout_around_a_step_loses_nothing(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(pair.ours)
    assert not pair.ours._reading
    await pair.theirs.send("after the timeout")
    async with asyncio.timeout(5):
        assert await anext(pair.ours) == "after the timeout"


async def test_a_second_reader_is_refused_and_the_first_goes_on(pair: Pair) -> None:
    first = asyncio.create_task(anext(pair.ours))
    await until(lambda: pair.ours._reader is not None)
    with pytest.raises(ConcurrencyError):
        await anext(pair.ours)
    with pytest.raises(ConcurrencyError):
        await pair.ours.recv()
    await pair.theirs.send("for the first")
    async with asyncio.timeout(5):
        assert await first == "for the first"


async def test_a_step_awaited_twice_is_refused(pair: Pair) -> None:
    await pair.theirs.send("once")
    step = pair.ours.__anext__()
    async with asyncio.timeout(5):
        assert await step == "once"
    with pytest.raises(RuntimeError):
        await step


async def test_a_dropped_waiting_step_frees_the_connection(pair: Pair) -> None:
    # A step started by hand and dropped while it waits, as happens to a
    # coroutine that is never resumed: the connection can be read again.
    step = pair.ours.__anext__().__await__()
    waiting = step.send(None)
    assert isinstance(waiting, asyncio.Future)
    assert pair.ours._reading
    step.close()
    assert not pair.ours._reading
    assert pair.ours._reader is None
    step = pair.ours.__anext__().__await__()
    step.send(None)
    del step
    gc.collect()
    assert not pair.ours._reading
    await pair.theirs.send("still here")
    async with asyncio.timeout(5):
        assert await anext(pair.ours) == "still here"


async def test_an_exception_thrown_into_a_waiting_step_ends_it(pair: Pair) -> None:
    step = pair.ours.__anext__().__await__()
    step.send(None)
    with pytest.raises(KeyError):
        step.throw(KeyError("thrown"))
    assert not pair.ours._reading
    # Before it started, nothing of the connection is touched.
    fresh = pair.ours.__anext__().__await__()
    with pytest.raises(ValueError, match="early"):
        fresh.throw(ValueError("early"))
    assert not pair.ours._reading


async def test_a_step_driven_by_next_and_send_gives_the_message(pair: Pair) -> None:
    # What the interpreter does under a tracer (coverage): next() and send()
    # instead of the fast protocol; the message comes in StopIteration.
    step = pair.ours.__anext__().__await__()
    waiting = next(step)
    await pair.theirs.send("traced")
    await until(waiting.done)
    with pytest.raises(StopIteration) as stopped:
        step.send(None)
    assert stopped.value.value == "traced"


async def test_a_full_queue_pauses_reading_until_the_reader_catches_up(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    async with open_pair(start_server, side, ours={"max_queue": (4, 1)}) as pair:
        for index in range(12):
            await pair.theirs.send(str(index))
        await until(lambda: pair.ours._reading_paused)
        assert len(pair.ours._messages) <= 4
        received: list[str | bytes] = []
        async with asyncio.timeout(5):
            while len(received) < 12:
                received.append(await anext(pair.ours))
        assert received == [str(index) for index in range(12)]
        assert not pair.ours._reading_paused


class RecordingLoop(asyncio.SelectorEventLoop):
    """A loop with a create_future of its own, which keeps what it made."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[asyncio.Future[Any]] = []

    def create_future(self) -> asyncio.Future[Any]:
        future = super().create_future()
        self.made.append(future)
        return future


def test_a_loop_with_its_own_create_future_makes_the_reader_future(implementation: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, RecordingLoop)
        handed_over: asyncio.Queue[Connection] = asyncio.Queue()

        async def handler(ws: Connection) -> None:
            await handed_over.put(ws)
            async for message in ws:
                await ws.send(message)

        async with (
            tether.serve(handler, "127.0.0.1", 0, ping_interval=None) as server,
            tether.connect(uri_of(server), ping_interval=None) as client,
        ):
            ws = await handed_over.get()
            for index in range(3):
                await client.send(str(index))
                assert await client.recv() == str(index)
                await until(lambda: ws._reader is not None)
                assert any(future is ws._reader for future in loop.made)

    with asyncio.Runner(loop_factory=RecordingLoop) as runner:
        runner.run(main())
