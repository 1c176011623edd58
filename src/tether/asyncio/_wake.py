"""The direct wake: a read wakes the task waiting for it in the same callback.

A coroutine waiting in :meth:`~tether.asyncio.connection.Connection.recv` or
``async for`` awaits a future that the connection's reads complete. asyncio
runs a future's callbacks, here the waiting task's wake-up, through
``call_soon``: a handle per message, and the loop's ready queue before the
task runs. A read arriving in a protocol callback (``data_received``), where
no task runs, may instead run the wake-up right there, in the task's own
context, exactly as the loop would have run it: the task steps until it
waits again, then the callback goes on. :func:`wake_now` does that.

What it keeps of asyncio's contract: the task is the current task while it
runs (asyncio's own step enters it, and refuses if another task runs, so the
wake is direct only when none does), its context variables are its own, a
cancellation or timeout cancels the future as before (a done future is never
woken), and anything the wake-up raises goes to the loop's exception handler,
as a handle's would. Only a task's wake-up, as the one callback of the
future, is run now: anything else is scheduled by ``set_result`` as usual.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
from collections.abc import Callable
from contextvars import Context
from typing import Any

from tether.protocol.speedups import speedups

__all__ = ["DIRECT_WAKE_READ", "wake_now", "wake_now_python"]

DIRECT_WAKE_READ = 16 * 1024
"""The largest read whose messages wake their reader directly.

A larger one goes through the loop (``set_result``). Fairness: a read
shorter than the loop's buffer ends the loop's reading of that socket in
this iteration (libuv reads on only after a full buffer; asyncio's selector
loop reads once), so a connection runs its handler at most once per loop
iteration this way, after at most one read's messages, as through the loop;
a flooding peer's full reads take the loop's path.
"""


def _run_callback(
    callback: Callable[[Any], object], reader: asyncio.Future[None], loop: Any
) -> None:
    """Run the wake-up; what it raises goes to the loop's exception handler, as a handle's."""
    try:
        callback(reader)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # what asyncio's handle does
        loop.call_exception_handler(
            {"message": f"Exception in callback {callback!r}", "exception": exc}
        )


def wake_now_python(reader: asyncio.Future[None], loop: asyncio.AbstractEventLoop) -> bool:
    """Set ``reader``'s result to ``None`` and run its waiting task's wake-up now, if allowed.

    Nothing happens to a future that is done (cancelled). The wake-up runs
    now, in the task's context, when ``reader`` is an :class:`asyncio.Future`
    whose one callback is a task's wake-up and no task of ``loop`` is
    running; otherwise ``set_result`` schedules its callbacks as usual.
    Return whether it ran now. The C accelerator's ``wake_now`` does the
    same.
    """
    if reader.done():
        return False
    if type(reader) is asyncio.Future and asyncio.current_task(loop) is None:
        # asyncio's C future gives None for no callbacks, its Python one a list.
        callbacks: list[tuple[Callable[[Any], object], Context]] | None = reader._callbacks
        if callbacks is not None and len(callbacks) == 1:
            callback, context = callbacks[0]
            if isinstance(getattr(callback, "__self__", None), asyncio.Task):
                reader.remove_done_callback(callback)
                reader.set_result(None)
                try:
                    context.run(_run_callback, callback, reader, loop)
                except RuntimeError:
                    # The task's context is entered already (up the stack):
                    # the wake-up waits for the loop, as set_result's would.
                    loop.call_soon(callback, reader, context=context)
                    return False
                return True
    reader.set_result(None)
    return False


wake_now: Callable[[asyncio.Future[None], asyncio.AbstractEventLoop], bool] = (
    wake_now_python if speedups is None else speedups.wake_now
)
""":func:`wake_now_python`, in C when the accelerator is built."""
