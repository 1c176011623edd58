"""tether.trio.watcher: one watcher per trio.run, ending with its run.

Each test runs trio.run itself (more than once, or ended by Ctrl-C) against
a threading server in the same process, which records how each connection
ended.
"""

from __future__ import annotations

import gc
import signal
import threading
import weakref
from collections.abc import Iterator

import pytest
import trio

import tether.sync
import tether.trio
from tether.trio.watcher import GRACE, IDLE, watcher

from .conftest import TIMEOUT


class Recorder:
    """A threading echo server that records each connection's close code."""

    def __init__(self) -> None:
        self.codes: list[int | None] = []
        self.ended = threading.Semaphore(0)
        self.server = tether.sync.serve(self.handle, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]

    def handle(self, ws: tether.sync.ServerConnection) -> None:
        for message in ws:
            ws.send(message)
        self.codes.append(ws.close_code)
        self.ended.release()

    def wait_for(self, count: int) -> list[int | None]:
        for _ in range(count):
            assert self.ended.acquire(timeout=TIMEOUT)
        return self.codes


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    thread = threading.Thread(target=recorder.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.server.shutdown()
        thread.join(TIMEOUT)


def test_each_run_has_its_own_watcher_and_leaves_nothing_open(recorder: Recorder) -> None:
    watchers: list[object] = []

    async def main(text: str) -> None:
        with trio.fail_after(TIMEOUT):
            ws = await tether.trio.connect(f"ws://127.0.0.1:{recorder.port}/")
            await ws.send(text)
            assert await ws.recv() == text
            # Nobody reads now: after the grace, the run's watcher does.
            await trio.sleep(2 * GRACE)
            watchers.append(watcher())
            assert len(watcher()) == 1
            # Left open: the watcher closes it with 1001 as the run ends.

    trio.run(main, "first")
    assert recorder.wait_for(1) == [1001]
    trio.run(main, "second")
    assert recorder.wait_for(1) == [1001, 1001]
    first, second = watchers
    assert first is not second
    assert len(first) == len(second) == 0  # type: ignore[arg-type]


def test_ctrl_c_closes_the_watched_connections_with_1001(recorder: Recorder) -> None:
    assert threading.current_thread() is threading.main_thread()
    received: list[str | bytes] = []

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            clients = [
                await tether.trio.connect(f"ws://127.0.0.1:{recorder.port}/") for _ in range(2)
            ]
            await clients[0].send("before")
            async with trio.open_nursery() as nursery:

                async def receive() -> None:
                    received.append(await clients[0].recv())
                    # Idle in recv long enough to wait for the watcher.
                    received.append(await clients[0].recv())

                nursery.start_soon(receive)
                while not clients[0]._cold:
                    await trio.sleep(IDLE / 10)
                signal.raise_signal(signal.SIGINT)
                await trio.sleep(TIMEOUT)

    error: BaseException | None = None
    # trio turns SIGINT into KeyboardInterrupt only under Python's own
    # handler: another test of the session may have left a different one.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        trio.run(main)
    except BaseException as exc:  # KeyboardInterrupt, maybe in the nursery's group
        error = exc
    finally:
        signal.signal(signal.SIGINT, previous)
    if isinstance(error, BaseExceptionGroup):
        rest = error.split(KeyboardInterrupt)[1]
        assert rest is None, rest
    else:
        assert isinstance(error, KeyboardInterrupt), error
    assert received == ["before"]
    assert recorder.wait_for(2) == [1001, 1001]


def test_closed_connections_are_not_kept_once_the_watcher_stops(recorder: Recorder) -> None:
    refs: list[weakref.ref[tether.trio.ClientConnection]] = []

    async def main() -> None:
        with trio.fail_after(TIMEOUT):
            for text in ("one", "two"):
                async with await tether.trio.connect(f"ws://127.0.0.1:{recorder.port}/") as ws:
                    await ws.send(text)
                    assert await ws.recv() == text
                    # Idle in recv, then leaving it: the watcher queues both.
                    with trio.move_on_after(2 * IDLE):
                        await ws.recv()
                    refs.append(weakref.ref(ws))
                del ws
            # The last connection is gone: the watcher ends.
            while watcher()._running:
                await trio.sleep(GRACE / 10)
            gc.collect()
            assert [ref() for ref in refs] == [None, None]

    trio.run(main)
    assert recorder.wait_for(2) == [1000, 1000]
