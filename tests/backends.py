"""The three I/O APIs behind one async face, so that a behaviour test is written once.

A behaviour test is an async body that uses :class:`Face` connections and a
:class:`Backend`; ``backend.run(body)`` runs it on the backend's own event
loop: asyncio for :mod:`tether.asyncio`, trio for :mod:`tether.trio`, and
asyncio with every blocking call in a worker thread for :mod:`tether.sync`.
Servers run the same async handlers on each backend (the threading server
runs each handler on an event loop of its connection's thread).

Every wait is bounded: a body that takes longer than :data:`TIMEOUT` fails.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import aclosing, asynccontextmanager
from typing import Any, Literal, TypeVar, cast

import trio

import tether
import tether.sync
import tether.trio
from tether.protocol.connection import State

__all__ = ["BACKENDS", "TIMEOUT", "Backend", "Face", "Handler", "Kind", "make_backend"]

T = TypeVar("T")

TIMEOUT = 10.0
"""How long a body or any wait in it may last before the test fails."""

Kind = Literal["asyncio", "threads", "trio"]
BACKENDS: tuple[Kind, ...] = ("asyncio", "threads", "trio")

Handler = Callable[["Face"], Coroutine[Any, Any, None]]
"""A server handler written once for every backend."""


class Face:
    """A connection of any API, with the async methods of the asyncio one."""

    def __init__(self, native: Any) -> None:
        self.native = native
        """The connection of the API under test."""

    async def send(self, message: Any, text: bool | None = None) -> None:
        """Send a message (see each API's ``send``)."""
        await self.native.send(message, text)

    async def recv(self, decode: bool | None = None, timeout: float | None = TIMEOUT) -> Any:
        """Receive a message; by default fail after :data:`TIMEOUT`."""
        return await self.native.recv(decode=decode, timeout=timeout)

    async def ping(self, data: bytes | str | None = None) -> float:
        """Ping and wait for the pong; return the latency."""
        waiter = await self.native.ping(data)
        return float(await waiter)

    async def pong(self, data: bytes | str = b"") -> None:
        """Send an unsolicited pong."""
        await self.native.pong(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close and wait until closed."""
        await self.native.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self.native.wait_closed()

    async def messages(self) -> list[Any]:
        """Iterate with ``async for`` (or ``for``) until the closure; return what came."""
        return [message async for message in self.native]

    @property
    def state(self) -> State:
        """The connection's state."""
        return State(self.native.state)

    @property
    def close_code(self) -> int | None:
        """The close code received."""
        return self.native.close_code  # type: ignore[no-any-return]

    @property
    def close_reason(self) -> str | None:
        """The close reason received."""
        return self.native.close_reason  # type: ignore[no-any-return]

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed on."""
        return self.native.subprotocol  # type: ignore[no-any-return]

    @property
    def latency(self) -> float:
        """The last measured round-trip time."""
        return self.native.latency  # type: ignore[no-any-return]

    @property
    def response_headers(self) -> Any:
        """The handshake response's headers."""
        return self.native.response_headers


class ThreadFace(Face):
    """A :mod:`tether.sync` connection: each blocking call runs in a worker thread."""

    async def send(self, message: Any, text: bool | None = None) -> None:
        await asyncio.to_thread(self.native.send, message, text)

    async def recv(self, decode: bool | None = None, timeout: float | None = TIMEOUT) -> Any:
        return await asyncio.to_thread(self.native.recv, timeout=timeout, decode=decode)

    async def ping(self, data: bytes | str | None = None) -> float:
        event = self.native.ping(data)
        assert await asyncio.to_thread(event.wait, TIMEOUT)
        if self.native.state is State.CLOSED:
            raise self.native.protocol.close_exc()
        return float(self.native.latency)

    async def pong(self, data: bytes | str = b"") -> None:
        await asyncio.to_thread(self.native.pong, data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.to_thread(self.native.close, code, reason)

    async def wait_closed(self) -> None:
        assert await asyncio.to_thread(self.native.wait_closed, TIMEOUT)

    async def messages(self) -> list[Any]:
        return await asyncio.to_thread(list, self.native)


class Backend:
    """Runs bodies, servers and clients of one API."""

    kind: Kind

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        """Run ``body`` to completion on this backend's event loop, within :data:`TIMEOUT` * 3."""
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        """Sleep on this backend's event loop."""
        raise NotImplementedError

    async def within(self, awaitable: Awaitable[T], seconds: float = TIMEOUT) -> T:
        """Await ``awaitable``; fail with :class:`TimeoutError` after ``seconds``."""
        raise NotImplementedError

    async def in_thread(self, function: Callable[[], T]) -> T:
        """Run a blocking ``function`` in a worker thread."""
        raise NotImplementedError

    async def together(self, *functions: Callable[[], Awaitable[None]]) -> None:
        """Run coroutine functions concurrently until all return."""
        raise NotImplementedError

    def serve(self, handler: Handler, **options: Any) -> Any:
        """An async context manager: a server on 127.0.0.1 and a free port; yield its port."""
        raise NotImplementedError

    async def connect(self, uri: str, **options: Any) -> Face:
        """Connect a client."""
        raise NotImplementedError

    async def unix_connect(self, path: str, uri: str | None = None, **options: Any) -> Face:
        """Connect a client to the Unix socket at ``path`` with the API's ``unix_connect``."""
        raise NotImplementedError

    def reconnect(self, uri: str, **options: Any) -> AsyncGenerator[Face, None]:
        """The connections of the reconnecting loop (``async for`` over ``connect``)."""
        raise NotImplementedError

    async def until(self, predicate: Callable[[], object], seconds: float = TIMEOUT) -> None:
        """Poll until ``predicate()`` is true; fail after ``seconds``."""

        async def poll() -> None:
            while not predicate():
                await self.sleep(0.002)

        await self.within(poll(), seconds)

    @asynccontextmanager
    async def pair(
        self,
        client: dict[str, Any] | None = None,
        server: dict[str, Any] | None = None,
        path: str = "/",
    ) -> AsyncIterator[tuple[Face, Face]]:
        """A client connected to a server; yield (client, server side).

        The server's handler holds its connection until it closes, so the
        body decides how the connection ends. Both ends are closed on exit.
        """
        handed: list[Face] = []

        async def hold(ws: Face) -> None:
            handed.append(ws)
            await ws.wait_closed()

        async with self.serve(hold, **(server or {})) as port:
            ws = await self.connect(f"ws://127.0.0.1:{port}{path}", **(client or {}))
            try:
                await self.until(lambda: handed)
                yield ws, handed[0]
            finally:
                await self.within(ws.close())


class AsyncioBackend(Backend):
    """:mod:`tether.asyncio`."""

    kind: Kind = "asyncio"

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            await asyncio.wait_for(body(), TIMEOUT * 3)

        asyncio.run(main())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def within(self, awaitable: Awaitable[T], seconds: float = TIMEOUT) -> T:
        return await asyncio.wait_for(awaitable, seconds)

    async def in_thread(self, function: Callable[[], T]) -> T:
        return await asyncio.to_thread(function)

    async def together(self, *functions: Callable[[], Awaitable[None]]) -> None:
        await asyncio.gather(*(function() for function in functions))

    @asynccontextmanager
    async def serve(self, handler: Handler, **options: Any) -> AsyncIterator[int]:
        async def native(ws: tether.ServerConnection) -> None:
            await handler(Face(ws))

        async with tether.serve(native, "127.0.0.1", 0, **options) as server:
            yield next(iter(server.sockets)).getsockname()[1]

    async def connect(self, uri: str, **options: Any) -> Face:
        return Face(await tether.connect(uri, **options))

    async def unix_connect(self, path: str, uri: str | None = None, **options: Any) -> Face:
        return Face(await tether.unix_connect(path, uri, **options))

    async def reconnect(self, uri: str, **options: Any) -> AsyncGenerator[Face, None]:
        connections = cast(AsyncGenerator[Any, None], tether.connect(uri, **options).__aiter__())
        async with aclosing(connections):
            async for ws in connections:
                yield Face(ws)


class ThreadsBackend(AsyncioBackend):
    """:mod:`tether.sync`: bodies on asyncio, blocking calls in threads."""

    kind: Kind = "threads"

    @asynccontextmanager
    async def serve(self, handler: Handler, **options: Any) -> AsyncIterator[int]:
        def native(ws: tether.sync.ServerConnection) -> None:
            asyncio.run(handler(ThreadFace(ws)))

        server = tether.sync.serve(native, "127.0.0.1", 0, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            await asyncio.to_thread(server.shutdown)
            await asyncio.to_thread(thread.join, TIMEOUT)
            assert not thread.is_alive()

    async def connect(self, uri: str, **options: Any) -> Face:
        return ThreadFace(await asyncio.to_thread(lambda: tether.sync.connect(uri, **options)))

    async def unix_connect(self, path: str, uri: str | None = None, **options: Any) -> Face:
        return ThreadFace(
            await asyncio.to_thread(lambda: tether.sync.unix_connect(path, uri, **options))
        )

    async def reconnect(self, uri: str, **options: Any) -> AsyncGenerator[Face, None]:
        connections = tether.sync.reconnect(uri, **options)
        try:
            while True:
                yield ThreadFace(await asyncio.to_thread(next, connections))
        finally:
            await asyncio.to_thread(connections.close)


class TrioBackend(Backend):
    """:mod:`tether.trio`."""

    kind: Kind = "trio"

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            with trio.fail_after(TIMEOUT * 3):
                await body()

        trio.run(main)

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def within(self, awaitable: Awaitable[T], seconds: float = TIMEOUT) -> T:
        try:
            with trio.fail_after(seconds):
                return await awaitable
        except trio.TooSlowError:
            raise TimeoutError(f"not done within {seconds} seconds") from None

    async def in_thread(self, function: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(function)

    async def together(self, *functions: Callable[[], Awaitable[None]]) -> None:
        async with trio.open_nursery() as nursery:
            for function in functions:
                nursery.start_soon(function)

    @asynccontextmanager
    async def serve(self, handler: Handler, **options: Any) -> AsyncIterator[int]:
        async def native(ws: tether.trio.ServerConnection) -> None:
            await handler(Face(ws))

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: tether.trio.serve(
                    native, 0, host="127.0.0.1", task_status=task_status, **options
                )
            )
            async with server:
                yield server.sockets[0].getsockname()[1]

    async def connect(self, uri: str, **options: Any) -> Face:
        return Face(await tether.trio.connect(uri, **options))

    async def unix_connect(self, path: str, uri: str | None = None, **options: Any) -> Face:
        return Face(await tether.trio.unix_connect(path, uri, **options))

    async def reconnect(self, uri: str, **options: Any) -> AsyncGenerator[Face, None]:
        connections = cast(
            AsyncGenerator[Any, None], tether.trio.connect(uri, **options).__aiter__()
        )
        async with aclosing(connections):
            async for ws in connections:
                yield Face(ws)


def make_backend(kind: Kind) -> Backend:
    """The backend of ``kind``."""
    return {"asyncio": AsyncioBackend, "threads": ThreadsBackend, "trio": TrioBackend}[kind]()
