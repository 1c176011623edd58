"""``send`` behaves the same with the accelerator's method and with the Python coroutine.

``tether._speedups.send_method`` replaces ``Connection.send`` when the
accelerator is built: it returns an awaitable that writes the message when
first awaited and, when the write buffer is then over ``write_limit``,
waits as the coroutine does; anything but a whole message goes to the
Python coroutine, ``tether.asyncio.connection.send_python``. Each test here
runs with each of them on a real pair over loopback (both ends, both
loops), and checks what a sender sees: what arrives, when it is written,
the errors, waiting for the buffer to drain, and cancellation.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from collections.abc import AsyncIterator

import pytest

import tether._speedups as speedups
from tether.asyncio.connection import Connection, send_python
from tether.exceptions import ConnectionClosedOK

from .flow import numbered, send_until_blocked
from .pairs import Pair, method_fixture, until

implementation = method_fixture(
    "send",
    {"c": lambda: speedups.send_method(Connection, send_python), "python": lambda: send_python},
)


async def test_every_kind_of_message_arrives_in_order(pair: Pair) -> None:
    async def pieces() -> AsyncIterator[str]:
        for piece in ("asy", "nc"):
            yield piece

    await pair.ours.send("text")
    await pair.ours.send(b"binary")
    await pair.ours.send(bytearray(b"array"))
    await pair.ours.send(memoryview(b"view"))
    await pair.ours.send(b"forced text", True)
    await pair.ours.send(message="forced binary", text=False)
    await pair.ours.send(["frag", "mented"])
    await pair.ours.send(pieces())
    received = [await pair.theirs.recv() for _ in range(8)]
    assert received == [
        "text",
        b"binary",
        b"array",
        b"view",
        "forced text",
        b"forced binary",
        "fragmented",
        "async",
    ]


async def test_nothing_is_written_until_it_is_awaited(pair: Pair, implementation: str) -> None:
    first = pair.ours.send("first")
    # The accelerator's is an awaitable of its own, the Python one a coroutine.
    assert inspect.iscoroutine(first) == (implementation == "python")
    await pair.ours.send("second")
    await first
    assert await pair.theirs.recv() == "second"
    assert await pair.theirs.recv() == "first"
    with pytest.raises(RuntimeError):
        await first


async def test_a_send_never_awaited_warns_and_sends_nothing(pair: Pair) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forgotten = pair.ours.send("forgotten")
        del forgotten  # both warn when they are freed
        gc.collect()
    assert any(
        issubclass(warning.category, RuntimeWarning) and "never awaited" in str(warning.message)
        for warning in caught
    )
    await pair.ours.send("sent")
    assert await pair.theirs.recv() == "sent"


async def test_it_runs_as_a_task_and_under_wait_for(pair: Pair) -> None:
    task = asyncio.create_task(pair.ours.send("in a task"))
    assert "Connection.send" in repr(task)
    await task
    await asyncio.wait_for(pair.ours.send("under wait_for"), 5)
    await asyncio.gather(pair.ours.send("gathered"))
    assert [await pair.theirs.recv() for _ in range(3)] == [
        "in a task",
        "under wait_for",
        "gathered",
    ]


async def test_bad_arguments_raise_type_error(pair: Pair, implementation: str) -> None:
    with pytest.raises(TypeError):
        await pair.ours.send(12345)  # type: ignore[arg-type]
    if implementation == "c":
        # Refused at the call, as calling a coroutine function refuses them.
        with pytest.raises(TypeError):
            _ = pair.ours.send()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            _ = pair.ours.send("a", None, "extra")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            _ = pair.ours.send("a", binary=True)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            _ = pair.ours.send("a", message="b")  # type: ignore[misc]
    await pair.ours.send("still open")
    assert await pair.theirs.recv() == "still open"


async def test_a_closed_connection_raises_when_awaited_not_when_called(pair: Pair) -> None:
    await pair.ours.close()
    late = pair.ours.send("late")
    with pytest.raises(ConnectionClosedOK):
        await late


async def test_a_full_buffer_makes_it_wait_until_the_peer_reads(stalled: Pair) -> None:
    ours, theirs = stalled.ours, stalled.theirs
    count, sending = await send_until_blocked(ours)
    assert ours._writing_paused
    for index in range(count):
        assert await theirs.recv() == numbered(index)
    async with asyncio.timeout(5):
        await sending
    await ours.send(b"after the wait")
    assert await theirs.recv() == b"after the wait"


async def test_a_waiting_send_cancelled_or_thrown_into_leaves_the_connection_usable(
    stalled: Pair,
) -> None:
    ours, theirs = stalled.ours, stalled.theirs
    count, blocked = await send_until_blocked(ours)
    # Cancelled while it waits: its message went into the buffer already.
    # (A server's handler may wait for the closing on _waiters as well.)
    waiting_before = len(ours._waiters or ())
    sending = asyncio.create_task(ours.send(b"cancelled"))
    await until(lambda: len(ours._waiters or ()) == waiting_before + 1)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    # Driven by hand, then an exception thrown in where it waits.
    step = ours.send(b"thrown").__await__()
    waiting = step.send(None)
    assert isinstance(waiting, asyncio.Future)
    with pytest.raises(KeyError):
        step.throw(KeyError("thrown"))
    # Closed by hand where it waits.
    step = ours.send(b"closed").__await__()
    step.send(None)
    step.close()
    for index in range(count):
        assert await theirs.recv() == numbered(index)
    async with asyncio.timeout(5):
        await blocked
    assert await theirs.recv() == b"cancelled"
    assert await theirs.recv() == b"thrown"
    assert await theirs.recv() == b"closed"
    await ours.send(b"after")
    assert await theirs.recv() == b"after"


async def test_an_exception_thrown_before_it_starts_writes_nothing(pair: Pair) -> None:
    step = pair.ours.send("never").__await__()
    with pytest.raises(ValueError, match="early"):
        step.throw(ValueError("early"))
    step.close()
    await pair.ours.send("next")
    assert await pair.theirs.recv() == "next"


def test_the_method_keeps_the_name_doc_and_signature_of_the_coroutine() -> None:
    method = speedups.send_method(Connection, send_python)
    assert method.__wrapped__ is send_python
    assert method.__name__ == "send"
    assert method.__qualname__ == "Connection.send"
    assert method.__doc__ == send_python.__doc__
    assert inspect.signature(method) == inspect.signature(send_python)
    assert Connection.send.__doc__ == send_python.__doc__
    with pytest.raises(TypeError, match="connection"):
        method(object(), "x")
    with pytest.raises(TypeError, match="2 arguments"):
        speedups.send_method(Connection)  # type: ignore[call-arg]
