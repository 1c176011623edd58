"""Several server processes on one port, and a supervisor: :func:`run_workers`.

One asyncio process uses one core. :func:`run_workers` starts ``workers``
processes that listen on the same port with ``SO_REUSEPORT`` (Linux and the
BSDs spread new connections among them) and watches them:

* A worker that crashes is started again, after a pause that grows while it
  keeps crashing at once.
* SIGTERM or SIGINT drains every worker: each stops listening and closes its
  connections with 1001 (going away), then exits.
* SIGHUP restarts the workers one at a time: a new worker starts listening
  before the old one closes its connections with 1012 (service restart), so
  that the port never stops answering and clients can reconnect at once.

Connections of one client may then land in any worker: give the workers a
:class:`~tether.topics.redis.RedisBroker` for their :class:`~tether.Topics`
so that a message published in one reaches subscribers in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from tether.asyncio.server import Server
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN

__all__ = ["ServerFactory", "Supervisor", "drain", "run_workers"]

logger = logging.getLogger("tether.workers")

ServerFactory = Callable[..., Any]
"""Makes a worker's server: called with ``reuse_port=True``, returns :func:`~tether.serve`'s result.

It runs in each worker process, so it must be picklable: a function defined
at the top level of a module, or a :func:`functools.partial` of one.
"""

_RESTART_PAUSE_MAX = 10.0
_STARTED_AT_ONCE = 1.0
_PARENT_CHECK = 1.0


async def drain(server: Server, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
    """Stop listening and close every connection of ``server`` with ``code``; wait until done.

    1001 (going away) when the server stops, 1012 (service restart) when
    another process takes over.
    """
    closing = [
        connection.close(code, reason)
        for connection in list(server.connections)
        if connection.protocol.state is _OPEN
    ]
    server.close()
    if closing:
        await asyncio.gather(*closing, return_exceptions=True)
    await server.wait_closed()


async def _serve_worker(
    factory: ServerFactory, ready: multiprocessing.connection.Connection
) -> None:
    server: Server = await factory(reuse_port=True)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(code: int) -> None:
        if not stopping:
            logger.info("worker %d draining with %d", os.getpid(), code)
            stopping.append(loop.create_task(drain(server, code)))

    loop.add_signal_handler(signal.SIGTERM, stop, CloseCode.GOING_AWAY)
    loop.add_signal_handler(signal.SIGINT, stop, CloseCode.GOING_AWAY)
    loop.add_signal_handler(signal.SIGHUP, stop, CloseCode.SERVICE_RESTART)
    ready.send(os.getpid())
    ready.close()
    orphan = loop.create_task(_watch_parent(stop))
    await server.wait_closed()
    orphan.cancel()
    if stopping:
        await stopping[0]


async def _watch_parent(stop: Callable[[int], None]) -> None:
    """Drain if the supervisor dies without telling: a worker never outlives it."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(_PARENT_CHECK)
    logger.warning("worker %d: the supervisor is gone", os.getpid())
    stop(CloseCode.GOING_AWAY)


def _worker_main(factory: ServerFactory, ready: multiprocessing.connection.Connection) -> None:
    # The supervisor sends the signals: a Ctrl-C in a terminal reaches the
    # whole process group, and the supervisor decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve_worker(factory, ready))


class _Slot:
    """One worker's place: its process, and how often it crashed lately."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.started = 0.0
        self.pause = 0.0
        self.due = 0.0


class Supervisor:
    """Start, watch, restart and stop the workers of :func:`run_workers`.

    :meth:`run` returns once every worker drained after SIGTERM or SIGINT;
    :attr:`on_ready` is called once all of them first listen. Each worker
    gets ``start_timeout`` seconds to listen and ``stop_timeout`` seconds to
    drain before it is killed.
    """

    def __init__(
        self,
        factory: ServerFactory,
        workers: int,
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 30.0,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.factory = factory
        self.workers = workers
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.restarts = 0
        """Workers started again after a crash."""
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(workers)]
        self._signal: int | None = None
        self.on_ready: Callable[[], object] | None = None
        """Called once every worker started."""

    def _spawn(self, slot: _Slot) -> tuple[BaseProcess, multiprocessing.connection.Connection]:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self.factory, sender),
            name=f"tether-worker-{slot.index}",
            daemon=False,
        )
        process.start()
        sender.close()
        slot.started = time.monotonic()
        return process, receiver

    def _ready(
        self, slot: _Slot, process: BaseProcess, receiver: multiprocessing.connection.Connection
    ) -> BaseProcess:
        """Wait until the worker listens (or fails to); return its process."""
        try:
            ready = receiver.poll(max(0.0, slot.started + self.start_timeout - time.monotonic()))
            if ready:
                receiver.recv()
        except EOFError:
            ready = False
        finally:
            receiver.close()
        if ready:
            logger.info("worker %d started: pid %s", slot.index, process.pid)
        else:
            logger.error("worker %d did not start", slot.index)
        return process

    def _start(self, slot: _Slot) -> BaseProcess:
        return self._ready(slot, *self._spawn(slot))

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signal = signum

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; return 0 once every worker drained."""
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            # Started together, then waited for: imports take a while.
            spawned = [(slot, *self._spawn(slot)) for slot in self._slots]
            for slot, process, receiver in spawned:
                slot.process = self._ready(slot, process, receiver)
            if self.on_ready is not None:
                self.on_ready()
            while True:
                signum, self._signal = self._signal, None
                if signum in (signal.SIGTERM, signal.SIGINT):
                    self._stop_all()
                    return 0
                if signum == signal.SIGHUP:
                    self._restart_all()
                self._watch()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _watch(self) -> None:
        sentinels = [s.process.sentinel for s in self._slots if s.process is not None]
        multiprocessing.connection.wait(sentinels, timeout=0.2)
        now = time.monotonic()
        for slot in self._slots:
            process = slot.process
            if process is not None and process.exitcode is not None and self._signal is None:
                logger.warning(
                    "worker %d (pid %s) exited with %s; starting it again",
                    slot.index,
                    process.pid,
                    process.exitcode,
                )
                process.close()
                slot.process = None
                # A worker that dies at once would otherwise be restarted in a loop.
                if now - slot.started < _STARTED_AT_ONCE:
                    slot.pause = min(max(slot.pause * 2, 0.5), _RESTART_PAUSE_MAX)
                else:
                    slot.pause = 0.0
                slot.due = now + slot.pause
            if slot.process is None and now >= slot.due and self._signal is None:
                self.restarts += 1
                slot.process = self._start(slot)

    def _stop(self, process: BaseProcess, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signum)

    def _wait(self, processes: list[BaseProcess]) -> None:
        deadline = time.monotonic() + self.stop_timeout
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                logger.warning("worker pid %s did not drain in time: killed", process.pid)
                process.kill()
                process.join()

    def _stop_all(self) -> None:
        processes = [slot.process for slot in self._slots if slot.process is not None]
        logger.info("stopping %d workers", len(processes))
        for process in processes:
            self._stop(process, signal.SIGTERM)
        self._wait(processes)
        for slot in self._slots:
            slot.process = None

    def _restart_all(self) -> None:
        logger.info("restarting the workers one by one")
        for slot in self._slots:
            old = slot.process
            slot.process = self._start(slot)
            if old is not None:
                self._stop(old, signal.SIGHUP)
                self._wait([old])


def run_workers(
    factory: ServerFactory,
    workers: int,
    *,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
) -> int:
    """Run ``workers`` server processes made by ``factory`` on one port; return the exit status.

    ::

        def make_server(**kwargs):
            return tether.serve(handler, "0.0.0.0", 8000, **kwargs)

        if __name__ == "__main__":
            sys.exit(tether.workers.run_workers(make_server, workers=4))

    ``factory`` runs in each worker with ``reuse_port=True`` and returns
    what :func:`~tether.asyncio.server.serve` or
    :func:`~tether.asyncio.router.route` return; see :data:`ServerFactory`.
    A fixed port is needed: with port 0, each worker would get its own.
    Workers are started with :mod:`multiprocessing`'s ``spawn`` method:
    each imports the modules it needs, module-level objects such as
    :class:`~tether.Topics` included, afresh. Each worker must start within
    ``start_timeout`` seconds and drain within ``stop_timeout`` seconds,
    or it is killed.
    """
    return Supervisor(
        factory, workers, start_timeout=start_timeout, stop_timeout=stop_timeout
    ).run()
