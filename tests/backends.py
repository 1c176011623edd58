"""The three I/O APIs behind one async face, so that a behaviour test is written once.

A behaviour test is an async body that uses :class:`Face` connections and a
:class:`Backend`; ``backend.run(body)`` runs it on the backend's own event
loop: asyncio (and uvloop) for :mod:`tether.asyncio`, trio for
:mod:`tether.trio`, and asyncio with every blocking call in a worker thread
for :mod:`tether.sync`.
Servers run the same async handlers on each backend (the threading server
runs each handler on an event loop of its connection's thread).

Every wait is bounded: a body that takes longer than :data:`TIMEOUT` fails.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager, suppress
from types import ModuleType
from typing import Any, Literal, TypeVar, cast

import trio
import uvloop

import tether
import tether.sync
import tether.trio
from tests.behaviour.raw import RawPeer, accept_raw, raw_client
from tether.exceptions import ConnectionClosed
from tether.protocol.connection import State

__all__ = [
    "BACKENDS",
    "SIDES",
    "TIMEOUT",
    "Api",
    "Backend",
    "Face",
    "Handler",
    "Kind",
    "PongWaiter",
    "RouteHandler",
    "Side",
    "make_backend",
    "sided",
    "sided_options",
]

T = TypeVar("T")

TIMEOUT = 10.0
"""How long a body or any wait in it may last before the test fails."""

Kind = Literal["asyncio", "uvloop", "threads", "trio"]
BACKENDS: tuple[Kind, ...] = ("asyncio", "uvloop", "threads", "trio")

Side = Literal["client", "server"]
SIDES: tuple[Side, ...] = ("client", "server")


Api = Literal["asyncio", "sync", "trio"]
"""The package of an API, in :mod:`tether`."""


def sided(side: Side, client: Face, server: Face) -> tuple[Face, Face]:
    """(ours, theirs): the end under test on ``side`` first, its peer second."""
    return (client, server) if side == "client" else (server, client)


def sided_options(
    side: Side,
    ours: dict[str, Any] | None = None,
    theirs: dict[str, Any] | None = None,
    both: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The client and the server options of :meth:`Backend.pair`, with ours on ``side``."""
    mine = {**(both or {}), **(ours or {})}
    other = {**(both or {}), **(theirs or {})}
    return (mine, other) if side == "client" else (other, mine)


Handler = Callable[["Face"], Coroutine[Any, Any, None]]
"""A server handler written once for every backend."""

RouteHandler = Callable[..., Coroutine[Any, Any, None]]
"""A handler of :meth:`Backend.route`: the connection, then the path's parameters as keywords."""


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

    def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Any]:
        """Receive the next message piece by piece, as its frames arrive."""
        return self.native.recv_streaming(decode=decode)  # type: ignore[no-any-return]

    async def ping(self, data: Any = None) -> float:
        """Ping and wait for the pong; return the latency."""
        return await (await self.start_ping(data)).wait()

    async def start_ping(self, data: Any = None) -> PongWaiter:
        """Send a ping; return what waits for its pong."""
        return PongWaiter(await self.native.ping(data))

    async def pong(self, data: Any = b"") -> None:
        """Send an unsolicited pong."""
        await self.native.pong(data)

    def abort(self) -> None:
        """Drop TCP at once, without a closing handshake."""
        if isinstance(self.native, tether.ServerConnection | tether.ClientConnection):
            assert self.native.transport is not None
            self.native.transport.abort()
        else:
            self.native._stream_socket().shutdown(socket.SHUT_RDWR)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close and wait until closed."""
        await self.native.close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self.native.wait_closed()

    async def messages(self, into: list[Any] | None = None) -> list[Any]:
        """Iterate with ``async for`` (or ``for``) until the closure; return what came.

        Each message is also appended to ``into`` as it comes, which keeps
        them when the iteration raises.
        """
        received = [] if into is None else into
        async for message in self.native:
            received.append(message)
        return received

    @asynccontextmanager
    async def closing(self) -> AsyncIterator[Face]:
        """Use the connection as its API's context manager, which closes it on exit."""
        async with self.native:
            yield self

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


async def echo_until_closed(ws: Face) -> None:
    """Send every message back until the connection closes: the echo handler of the tests."""
    with suppress(ConnectionClosed):
        while True:
            await ws.send(await ws.recv(timeout=None))


class PongWaiter:
    """What waits for the pong of one ping, in any API."""

    def __init__(self, native: Any) -> None:
        self.native = native
        """The API's own waiter: an asyncio future, a trio waiter or a threading event."""

    def done(self) -> bool:
        """Whether the pong came (or the connection closed)."""
        if isinstance(self.native, threading.Event):
            return self.native.is_set()
        if isinstance(self.native, asyncio.Future):
            return self.native.done()
        return bool(self.native._done.is_set())

    async def wait(self) -> float:
        """Wait for the pong; return the latency, or raise if the connection closed first."""
        latency: float = await self.native
        return latency


class ThreadPongWaiter(PongWaiter):
    """The pong of a :mod:`tether.sync` ping, whose event is also set by the closure."""

    def __init__(self, native: threading.Event, connection: Any) -> None:
        super().__init__(native)
        self.connection = connection

    async def wait(self) -> float:
        assert await asyncio.to_thread(self.native.wait, TIMEOUT)
        if self.connection.state is State.CLOSED:
            raise self.connection.protocol.close_exc()
        return float(self.connection.latency)


class ThreadFace(Face):
    """A :mod:`tether.sync` connection: each blocking call runs in a worker thread."""

    async def send(self, message: Any, text: bool | None = None) -> None:
        await asyncio.to_thread(self.native.send, message, text)

    async def recv(self, decode: bool | None = None, timeout: float | None = TIMEOUT) -> Any:
        return await asyncio.to_thread(self.native.recv, timeout=timeout, decode=decode)

    async def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[Any]:
        pieces = self.native.recv_streaming(decode=decode)
        done = object()
        while (piece := await asyncio.to_thread(next, pieces, done)) is not done:
            yield piece

    async def start_ping(self, data: Any = None) -> PongWaiter:
        # Set on the closure too, so that a test never waits for a lost pong.
        return ThreadPongWaiter(self.native.ping(data, ack_on_close=True), self.native)

    async def pong(self, data: Any = b"") -> None:
        await asyncio.to_thread(self.native.pong, data)

    def abort(self) -> None:
        self.native.socket.shutdown(socket.SHUT_RDWR)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await asyncio.to_thread(self.native.close, code, reason)

    async def wait_closed(self) -> None:
        assert await asyncio.to_thread(self.native.wait_closed, TIMEOUT)

    async def messages(self, into: list[Any] | None = None) -> list[Any]:
        received = [] if into is None else into

        def iterate() -> None:
            for message in self.native:
                received.append(message)

        await asyncio.to_thread(iterate)
        return received

    @asynccontextmanager
    async def closing(self) -> AsyncIterator[Face]:
        await asyncio.to_thread(self.native.__enter__)
        try:
            yield self
        except BaseException as exc:
            await asyncio.to_thread(self.native.__exit__, type(exc), exc, exc.__traceback__)
            raise
        await asyncio.to_thread(self.native.__exit__, None, None, None)


class Backend:
    """Runs bodies, servers and clients of one API."""

    kind: Kind
    api: Api
    """The package of the API under test, in :mod:`tether`."""

    def module(self, name: str) -> ModuleType:
        """The API's module ``name``, such as ``auth`` or ``router``."""
        return importlib.import_module(f"tether.{self.api}.{name}")

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

    server: Any = None
    """The API's own server of the innermost :meth:`serve` block."""

    @asynccontextmanager
    async def serve(self, handler: Handler, **options: Any) -> AsyncIterator[int]:
        """A server on 127.0.0.1 and a free port, with the API's ``serve``; yield its port."""
        async with self.listen(self.module("server").serve, self.native(handler), options) as port:
            yield port

    @asynccontextmanager
    async def route(self, routes: dict[str, RouteHandler], **options: Any) -> AsyncIterator[int]:
        """A server routing by path, with the API's ``route``; yield its port.

        Each handler gets the connection and the path's parameters as keywords.
        """
        native = {path: self.native(handler) for path, handler in routes.items()}
        async with self.listen(self.module("router").route, native, options) as port:
            yield port

    def native(self, handler: RouteHandler) -> Callable[..., Any]:
        """``handler`` as a handler of the API's server."""
        raise NotImplementedError

    def unix_serve(
        self, handler: Handler, path: str, **options: Any
    ) -> AbstractAsyncContextManager[None]:
        """A server on the Unix socket at ``path``, with the API's ``unix_serve``.

        With ``unix=True``, the API's ``serve(..., unix=True, path=path)``
        instead (tether.asyncio and tether.sync have that spelling too).
        """
        raise NotImplementedError

    def listen(
        self, start: Callable[..., Any], handling: Any, options: dict[str, Any]
    ) -> AbstractAsyncContextManager[int]:
        """Run ``start(handling, ...)`` on 127.0.0.1 and a free port; yield the port.

        ``start`` is the API's ``serve`` or ``route``, given the API's own
        handler or routes (see :meth:`native`), for what :meth:`serve` and
        :meth:`route` cannot say, such as a subclass of the API's router.
        """
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

    @asynccontextmanager
    async def raw_pair(self, side: Side, **options: Any) -> AsyncIterator[tuple[Face, RawPeer]]:
        """A connection of this API on ``side`` and a hand-driven peer on the other end.

        ``options`` go to ``connect`` or ``serve``, whichever makes ours. The
        peer's methods block: call them through :meth:`in_thread`.
        """
        if side == "server":
            handed: list[Face] = []

            async def hold(ws: Face) -> None:
                handed.append(ws)
                await ws.wait_closed()

            async with self.serve(hold, **options) as port:
                peer = await self.in_thread(lambda: raw_client(port))
                try:
                    await self.until(lambda: handed)
                    yield handed[0], peer
                finally:
                    peer.close()
                    if handed:
                        await self.within(handed[0].wait_closed())
            return

        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(TIMEOUT)
            port = listener.getsockname()[1]
            peers: list[RawPeer] = []
            clients: list[Face] = []

            async def accept() -> None:
                peers.append(await self.in_thread(lambda: accept_raw(listener)))

            async def connect() -> None:
                clients.append(await self.connect(f"ws://127.0.0.1:{port}/", **options))

            await self.together(accept, connect)
        try:
            yield clients[0], peers[0]
        finally:
            peers[0].close()
            await self.within(clients[0].wait_closed())


class AsyncioBackend(Backend):
    """:mod:`tether.asyncio`."""

    kind: Kind = "asyncio"
    api: Api = "asyncio"

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

    def native(self, handler: RouteHandler) -> Callable[..., Any]:
        async def native(ws: tether.ServerConnection, **params: str) -> None:
            await handler(Face(ws), **params)

        return native

    @asynccontextmanager
    async def listen(
        self, start: Callable[..., Any], handling: Any, options: dict[str, Any]
    ) -> AsyncIterator[int]:
        async with start(handling, "127.0.0.1", 0, **options) as server:
            self.server = server
            yield next(iter(server.sockets)).getsockname()[1]

    @asynccontextmanager
    async def unix_serve(self, handler: Handler, path: str, **options: Any) -> AsyncIterator[None]:
        server_module = self.module("server")
        native = self.native(handler)
        if options.pop("unix", False):
            server = server_module.serve(native, unix=True, path=path, **options)
        else:
            server = server_module.unix_serve(native, path, **options)
        async with server as self.server:
            yield

    async def connect(self, uri: str, **options: Any) -> Face:
        return Face(await tether.connect(uri, **options))

    async def unix_connect(self, path: str, uri: str | None = None, **options: Any) -> Face:
        return Face(await tether.unix_connect(path, uri, **options))

    async def reconnect(self, uri: str, **options: Any) -> AsyncGenerator[Face, None]:
        connections = cast(AsyncGenerator[Any, None], tether.connect(uri, **options).__aiter__())
        async with aclosing(connections):
            async for ws in connections:
                yield Face(ws)


class UvloopBackend(AsyncioBackend):
    """:mod:`tether.asyncio` on uvloop's event loop."""

    kind: Kind = "uvloop"

    def run(self, body: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            await asyncio.wait_for(body(), TIMEOUT * 3)

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())


class ThreadsBackend(AsyncioBackend):
    """:mod:`tether.sync`: bodies on asyncio, blocking calls in threads."""

    kind: Kind = "threads"
    api: Api = "sync"

    def native(self, handler: RouteHandler) -> Callable[..., Any]:
        def native(ws: tether.sync.ServerConnection, **params: str) -> None:
            asyncio.run(handler(ThreadFace(ws), **params))

        return native

    @asynccontextmanager
    async def listen(
        self, start: Callable[..., Any], handling: Any, options: dict[str, Any]
    ) -> AsyncIterator[int]:
        server = self.server = start(handling, "127.0.0.1", 0, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            await asyncio.to_thread(server.shutdown)
            await asyncio.to_thread(thread.join, TIMEOUT)
            assert not thread.is_alive()

    @asynccontextmanager
    async def unix_serve(self, handler: Handler, path: str, **options: Any) -> AsyncIterator[None]:
        native = self.native(handler)
        if options.pop("unix", False):
            server = tether.sync.serve(native, unix=True, path=path, **options)
        else:
            server = tether.sync.unix_serve(native, path, **options)
        self.server = server
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield
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
    api: Api = "trio"

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

    def native(self, handler: RouteHandler) -> Callable[..., Any]:
        async def native(ws: tether.trio.ServerConnection, **params: str) -> None:
            await handler(Face(ws), **params)

        return native

    @asynccontextmanager
    async def listen(
        self, start: Callable[..., Any], handling: Any, options: dict[str, Any]
    ) -> AsyncIterator[int]:
        try:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(
                    lambda task_status: start(
                        handling, 0, host="127.0.0.1", task_status=task_status, **options
                    )
                )
                async with server:
                    self.server = server
                    yield server.sockets[0].getsockname()[1]
        except BaseExceptionGroup as group:
            # The body raises as it would on the other backends, not in a group.
            while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
                group = group.exceptions[0]
            raise group from None

    @asynccontextmanager
    async def unix_serve(self, handler: Handler, path: str, **options: Any) -> AsyncIterator[None]:
        native = self.native(handler)
        try:
            async with trio.open_nursery() as nursery:
                server = await nursery.start(
                    lambda task_status: tether.trio.unix_serve(
                        native, path, task_status=task_status, **options
                    )
                )
                async with server:
                    self.server = server
                    yield
        except BaseExceptionGroup as group:
            while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
                group = group.exceptions[0]
            raise group from None

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
    backends: dict[Kind, type[Backend]] = {
        "asyncio": AsyncioBackend,
        "uvloop": UvloopBackend,
        "threads": ThreadsBackend,
        "trio": TrioBackend,
    }
    return backends[kind]()
