"""The direct wake: a small read runs the task waiting for it in the read's own callback.

``tether.asyncio._wake.wake_now`` (C ``tether._speedups.wake_now``, Python
``wake_now_python``) and ``Connection.data_received`` (C, and
``data_received_python``) that uses it. Every test runs with both
implementations and on both loops, and checks what asyncio promises a task
woken this way: it runs as the current task, with its own context, a
cancelled or timed-out wait loses no message, an error in a handler after a
wake closes with 1011, a read from inside a task or a large read (a flood)
goes through the loop, and a handler that closes inside the wake leaves the
read's callback sound.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tether
import tether._speedups as speedups
import tether.asyncio.connection as connection_module
from tests.scripts import script_output
from tether.asyncio._wake import DIRECT_WAKE_READ, wake_now_python
from tether.asyncio.connection import Connection, data_received_python
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConnectionClosedOK

from .conftest import ServerFactory
from .pairs import Pair, Side, open_pair, open_raw_pair, until, uri_of
from .raw_peer import RawPeer

Wake = Callable[[asyncio.Future[None], asyncio.AbstractEventLoop], bool]

WAKES: dict[str, Wake] = {"c": speedups.wake_now, "python": wake_now_python}


@pytest.fixture(params=sorted(WAKES))
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which ``data_received`` and ``wake_now`` connections use: each test runs with both."""
    if request.param == "python":
        monkeypatch.setattr(Connection, "data_received", data_received_python)
        monkeypatch.setattr(connection_module, "wake_now", wake_now_python)
    else:
        monkeypatch.setattr(Connection, "data_received", speedups.data_received_method(Connection))
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def wake(implementation: str) -> Wake:
    """The ``wake_now`` of the implementation under test."""
    return WAKES[implementation]


def test_the_c_bound_is_the_python_bound() -> None:
    assert speedups.DIRECT_WAKE_READ == DIRECT_WAKE_READ


# wake_now itself

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


async def parked(reader: asyncio.Future[None], seen: list[Any]) -> asyncio.Task[None]:
    """A task that sets VAR, waits on ``reader``, then notes its current task and VAR."""

    async def wait() -> None:
        VAR.set("task")
        await reader
        seen.append((asyncio.current_task(), VAR.get()))

    task = asyncio.create_task(wait())
    await asyncio.sleep(0)
    assert not seen
    return task


async def test_a_loop_callback_runs_the_task_now_as_itself_in_its_context(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    seen: list[Any] = []
    task = await parked(reader, seen)
    noted: list[Any] = []

    def callback() -> None:  # a loop callback, as data_received is: no task runs
        VAR.set("callback")
        noted.append(wake(reader, loop))
        noted.append(list(seen))  # the task stepped already
        noted.append(VAR.get())  # and the callback's context is untouched

    loop.call_soon(callback, context=contextvars.copy_context())
    async with asyncio.timeout(5):
        await task
    assert noted == [True, [(task, "task")], "callback"]
    assert reader.result() is None


async def test_from_a_task_the_wake_goes_through_the_loop(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    seen: list[Any] = []
    task = await parked(reader, seen)
    # This test's coroutine is a task: asyncio would refuse to step another.
    assert wake(reader, loop) is False
    assert not seen
    async with asyncio.timeout(5):
        await task
    assert seen == [(task, "task")]


# Where asyncio keeps the running task: asyncio.tasks' dictionary is the one
# C tasks keep on CPython 3.11 to 3.13; from 3.14 on they keep it elsewhere,
# and that dictionary stays empty. The script gives the module a dictionary
# of its own, as 3.14 does, before the C wake first looks for it.
_OTHER_TABLE = """
import asyncio, asyncio.tasks
asyncio.tasks._current_tasks = {}
from tether._speedups import wake_now

async def main():
    loop = asyncio.get_running_loop()
    errors = []
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    reader = loop.create_future()

    async def parked():
        await reader
        return "woken"

    task = asyncio.create_task(parked())
    await asyncio.sleep(0)
    print(wake_now(reader, loop))
    await asyncio.wait([task], timeout=2)
    print(task.result() if task.done() else "stuck", len(errors))

asyncio.run(main())
"""


def test_an_empty_task_table_that_c_tasks_do_not_keep_is_not_trusted() -> None:
    # From a task (here main's), the wake must go through the loop: a table
    # that says no task runs when one does would have the wake step the
    # parked task inside main's, which asyncio refuses (and the task hangs).
    assert script_output(_OTHER_TABLE) == ["False", "woken", "0"]


def test_the_c_wake_before_any_connection() -> None:
    # wake_now first, before anything made the connection's methods.
    code = """
import asyncio
from tether._speedups import wake_now

async def main():
    loop = asyncio.get_running_loop()
    reader = loop.create_future()
    print(wake_now(reader, loop), reader.done())

asyncio.run(main())
"""
    assert script_output(code) == ["False", "True"]


async def test_a_done_future_is_left_alone(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    seen: list[Any] = []
    task = await parked(reader, seen)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    noted: list[bool] = []
    loop.call_soon(lambda: noted.append(wake(reader, loop)))
    await until(lambda: noted)
    assert noted == [False]
    assert reader.cancelled()
    assert not seen


async def test_a_future_nobody_waits_on_is_only_done(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    noted: list[bool] = []
    loop.call_soon(lambda: noted.append(wake(reader, loop)))
    await until(lambda: noted)
    assert noted == [False]
    assert reader.result() is None


async def test_other_callbacks_are_scheduled_as_set_result_does(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    called: list[str] = []
    reader.add_done_callback(lambda _: called.append("plain"))
    noted: list[Any] = []
    loop.call_soon(lambda: noted.extend([wake(reader, loop), list(called)]))
    await until(lambda: called)
    assert noted == [False, []]
    assert called == ["plain"]


async def test_a_task_context_entered_already_waits_for_the_loop(wake: Wake) -> None:
    loop = asyncio.get_running_loop()
    reader: asyncio.Future[None] = loop.create_future()
    seen: list[Any] = []
    context = contextvars.copy_context()

    async def wait() -> None:
        await reader
        seen.append(asyncio.current_task())

    task = loop.create_task(wait(), context=context)
    await asyncio.sleep(0)
    noted: list[Any] = []
    # The wake happens inside the task's own context: it cannot be entered twice.
    loop.call_soon(lambda: noted.extend([context.run(wake, reader, loop), list(seen)]))
    async with asyncio.timeout(5):
        await task
    assert noted == [False, []]
    assert seen == [task]


# data_received with the direct wake


def frames(peer: RawPeer, *messages: str) -> bytes:
    """The frames ``peer`` sends for ``messages``: what a read brings."""
    for message in messages:
        peer.engine.send_text(message.encode())
    return b"".join(peer.engine.data_to_send())


async def reading(ours: Connection, into: list[Any]) -> asyncio.Task[None]:
    """A task reading ``ours`` with ``async for``, parked on its first wait."""

    async def read() -> None:
        async for message in ours:
            into.append((message, asyncio.current_task() is task))

    task = asyncio.create_task(read())
    await until(lambda: ours._reader is not None)
    return task


def fed(ours: Connection, data: bytes, then: Callable[[], Any]) -> asyncio.Future[Any]:
    """Feed ``data`` to ``ours`` from a loop callback, as the transport does; note ``then()``."""
    loop = asyncio.get_running_loop()
    noted: asyncio.Future[Any] = loop.create_future()

    def callback() -> None:
        ours.data_received(data)
        noted.set_result(then())

    loop.call_soon(callback)
    return noted


async def test_a_small_read_runs_the_reader_within_it(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        received: list[Any] = []
        task = await reading(ours, received)
        data = frames(peer, "one", "two", "three")
        assert len(data) <= DIRECT_WAKE_READ
        assert await fed(ours, data, lambda: list(received)) == [
            ("one", True),
            ("two", True),
            ("three", True),
        ]
        assert ours._reader is not None  # waiting again
        task.cancel()


async def test_a_read_with_a_partial_message_wakes_for_the_whole_ones_at_once(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        received: list[Any] = []
        task = await reading(ours, received)
        data = frames(peer, "whole", "split")
        cut = len(data) - 3
        assert await fed(ours, data[:cut], lambda: [m for m, _ in received]) == ["whole"]
        # The rest completes a message in the engine's general path: that
        # one wakes the reader through the loop.
        assert await fed(ours, data[cut:], lambda: [m for m, _ in received]) == ["whole"]
        await until(lambda: len(received) == 2)
        assert received == [("whole", True), ("split", True)]
        task.cancel()


async def test_a_large_read_wakes_through_the_loop(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    # A read as large as a flood brings: the reader runs in a later
    # iteration, once the loop went round its other callbacks.
    async with open_raw_pair(start_server, side, max_queue=None) as (ours, peer):
        received: list[Any] = []
        task = await reading(ours, received)
        data = frames(peer, *(f"{index:04}" for index in range(3000)))
        assert len(data) > DIRECT_WAKE_READ
        assert await fed(ours, data, lambda: len(received)) == 0
        await until(lambda: len(received) == 3000)
        assert received[-1] == ("2999", True)
        task.cancel()


async def test_a_read_fed_from_a_task_wakes_through_the_loop(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        received: list[Any] = []
        task = await reading(ours, received)
        ours.data_received(frames(peer, "from a task"))
        assert received == []
        await until(lambda: received == [("from a task", True)])
        task.cancel()


async def test_a_reader_that_closes_inside_the_wake_leaves_the_read_sound(
    implementation: str, start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        received: list[str | bytes] = []

        async def read_then_close() -> None:
            received.append(await ours.recv())
            await ours.close(1000, "enough")

        task = asyncio.create_task(read_then_close())
        await until(lambda: ours._reader is not None)
        await fed(ours, frames(peer, "first", "second", "third"), lambda: None)
        assert received == ["first"]
        # The close frame went out from inside the read; the rest stays queued.
        assert len(ours._messages) == 2
        event = await peer.next_event()
        assert getattr(event, "close", None) is not None
        task.cancel()


# Through real connections


@pytest.fixture
async def pair(implementation: str, start_server: ServerFactory, side: Side) -> AsyncIterator[Pair]:
    """A connected pair, with the chosen implementation."""
    async with open_pair(start_server, side) as connected:
        yield connected


async def test_a_cancelled_recv_loses_no_message(pair: Pair) -> None:
    task = asyncio.create_task(pair.ours.recv())
    await until(lambda: pair.ours._reader is not None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pair.theirs.send("kept")
    async with asyncio.timeout(5):
        assert await pair.ours.recv() == "kept"


async def test_a_timeout_around_recv(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await pair.ours.recv()
    await pair.theirs.send("in time")
    async with asyncio.timeout(5) as deadline:
        assert await pair.ours.recv() == "in time"
    # Woken before its deadline: the timeout ends unexpired, nothing left to cancel the task.
    assert not deadline.expired()
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


async def test_close_while_waiting_ends_the_iteration(pair: Pair) -> None:
    received: list[Any] = []
    task = await reading(pair.ours, received)
    await pair.theirs.send("last")
    await until(lambda: len(received) == 1)
    await pair.theirs.close()
    async with asyncio.timeout(5):
        await task
    assert received == [("last", True)]
    with pytest.raises(ConnectionClosedOK):
        await pair.ours.recv()


async def test_a_handler_runs_as_its_task_with_its_context(
    implementation: str, start_server: ServerFactory
) -> None:
    seen: list[Any] = []

    async def handler(ws: ServerConnection) -> None:
        task = asyncio.current_task()
        VAR.set("handler")
        async for message in ws:
            seen.append((message, asyncio.current_task() is task, VAR.get()))
            await ws.send(message)

    server = await start_server(handler)
    async with await tether.connect(uri_of(server)) as client:
        for index in range(5):
            await client.send(f"m{index}")
            assert await client.recv() == f"m{index}"
    assert seen == [(f"m{index}", True, "handler") for index in range(5)]


async def test_an_error_in_a_handler_after_a_wake_closes_with_1011(
    implementation: str, start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        raise ValueError("broken after a wake")

    server = await start_server(handler)
    with caplog.at_level(logging.ERROR, logger="tether"):
        client = await tether.connect(uri_of(server))
        await client.send("wake")
        async with asyncio.timeout(5):
            await client.wait_closed()
    assert client.close_code == 1011
    assert any(
        record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
        for record in caplog.records
    )


async def test_a_flooding_connection_does_not_starve_another(
    implementation: str, start_server: ServerFactory
) -> None:
    counted = [0]

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/flood":
            async for _ in ws:
                counted[0] += 1
        else:
            async for message in ws:
                await ws.send(message)

    server = await start_server(handler)
    served = asyncio.Event()
    sent = 0
    async with (
        await tether.connect(uri_of(server, "/flood")) as flooder,
        await tether.connect(uri_of(server)) as other,
    ):

        async def flood() -> None:
            nonlocal sent
            # Bounded: the other connection must be served long before.
            while not served.is_set() and sent < 400_000:
                for _ in range(500):
                    await flooder.send(b"x" * 32)
                sent += 500
                await asyncio.sleep(0)

        async def echoes() -> None:
            for index in range(50):
                await other.send(f"e{index}")
                assert await other.recv() == f"e{index}"
            served.set()

        async with asyncio.timeout(30):
            await asyncio.gather(flood(), echoes())
        assert sent < 400_000
        await until(lambda: counted[0] == sent, timeout=30)
