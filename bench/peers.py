"""One echo server and one client adapter per library.

Every server echoes each message with its type (text stays text) and switches
to the one-way sink of :class:`bench.workloads.Sink` when a text message asks
for it. Servers run with their library's defaults (compression on where the
library has it), except for a 16 MiB message limit; clients offer
permessage-deflate only when the workload asks for it.

Library names: ``tether``, ``websockets`` and ``aiohttp`` run on asyncio's
default loop, a ``-uvloop`` suffix puts them on uvloop, ``-sync`` is the
threading API, ``-trio`` the trio API; ``picows`` runs on uvloop (its
recommended set-up); ``websocket-client`` is a client only. ``uvicorn-sansio``,
``uvicorn-wsproto`` and ``uvicorn-tether`` are servers only: the same
Starlette app under uvicorn with each ``--ws`` (:mod:`bench.asgi`), and
``granian`` the same app under granian, where it is installed.
``tether-listener`` is a server only: tether's callback API
(:func:`tether.listen`, a :class:`tether.Listener` echoing from
``on_message``) on uvloop. ``tether-nowait`` is a client only, on uvloop:
tether's client sending with ``send_nowait``, the callback API's send, as
picows' client sends (see :func:`tether_nowait_client`).

Each process imports only the library it runs, so one library's import cost
and memory never show up in another's figures: hence the imports inside
functions.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.asgi import GRANIAN
from bench.workloads import (
    MAX_SIZE,
    AsyncConn,
    AsyncConnect,
    BenchError,
    Data,
    Sink,
    SyncConn,
    SyncConnect,
    is_sink,
)

Ready = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Library:
    """A library set-up under test."""

    name: str
    flavor: str  # asyncio | uvloop | sync | asgi | trio
    server: bool = True
    client: bool = True
    deflate: bool = True


LIBRARIES = {
    lib.name: lib
    for lib in [
        Library("tether", "asyncio"),
        Library("tether-uvloop", "uvloop"),
        Library("tether-listener", "uvloop", client=False),
        Library("tether-nowait", "uvloop", server=False),
        Library("tether-sync", "sync"),
        Library("websockets", "asyncio"),
        Library("websockets-uvloop", "uvloop"),
        Library("websockets-sync", "sync"),
        Library("tether-trio", "trio"),
        Library("websockets-trio", "trio"),
        Library("aiohttp", "asyncio"),
        Library("picows", "uvloop", deflate=False),
        Library("websocket-client", "sync", server=False, deflate=False),
        Library("uvicorn-sansio", "asgi", client=False),
        Library("uvicorn-wsproto", "asgi", client=False),
        Library("uvicorn-tether", "asgi", client=False),
        *([Library("granian", "asgi", client=False)] if GRANIAN else []),
    ]
}


def run_loop(main: Coroutine[Any, Any, T], uvloop: bool, trio: bool = False) -> T:
    """Run ``main`` on a new default or uvloop event loop, or with :func:`trio.run`."""
    if trio:
        import trio as trio_module

        return trio_module.run(lambda: main)
    if uvloop:
        import uvloop as uvloop_module

        with asyncio.Runner(loop_factory=uvloop_module.new_event_loop) as runner:
            return runner.run(main)
    with asyncio.Runner() as runner:
        return runner.run(main)


# servers


async def async_echo_handler(ws: Any) -> None:
    """Echo every message; the first one may ask for the sink instead."""
    async for first in ws:
        if is_sink(first):
            sink = Sink(first)
            async for message in ws:
                if isinstance(message, str):
                    break
                sink.feed(message)
            await ws.send(sink.summary())
            return
        await ws.send(first)
        break
    async for message in ws:
        await ws.send(message)


def sync_echo_handler(ws: Any) -> None:
    """The threading twin of :func:`async_echo_handler`."""
    for first in ws:
        if is_sink(first):
            sink = Sink(first)
            for message in ws:
                if isinstance(message, str):
                    break
                sink.feed(message)
            ws.send(sink.summary())
            return
        ws.send(first)
        break
    for message in ws:
        ws.send(message)


async def serve_tether(ready: Ready) -> None:
    """tether's asyncio server."""
    import tether.asyncio

    async with tether.asyncio.serve(
        async_echo_handler, "127.0.0.1", 0, max_size=MAX_SIZE
    ) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


async def serve_websockets(ready: Ready) -> None:
    """websockets' asyncio server."""
    import websockets.asyncio.server

    async with websockets.asyncio.server.serve(
        async_echo_handler, "127.0.0.1", 0, max_size=MAX_SIZE
    ) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


async def serve_aiohttp(ready: Ready) -> None:
    """aiohttp's web server with one WebSocket route."""
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_SIZE)
        await ws.prepare(request)
        sink: Sink | None = None
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                if sink is None:
                    await ws.send_bytes(msg.data)
                else:
                    sink.feed(msg.data)
            elif msg.type == WSMsgType.TEXT:
                if sink is not None:
                    await ws.send_str(sink.summary())
                    break
                if is_sink(msg.data):
                    sink = Sink(msg.data)
                else:
                    await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ready(runner.addresses[0][1])
        await asyncio.Future()
    finally:
        await runner.cleanup()


async def serve_picows(ready: Ready) -> None:
    """picows: a listener per connection, called back for each frame."""
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    binary, text, close = WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CLOSE
    continuation = WSMsgType.CONTINUATION

    class Echo(WSListener):
        def __init__(self) -> None:
            self.sink: Sink | None = None
            self.parts: list[bytes] = []
            self.parts_type = binary

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if frame.fin and not self.parts:
                if kind == binary:
                    if self.sink is None:
                        transport.send(binary, frame.get_payload_as_memoryview())
                    else:
                        # A memoryview compares with bytes item by item, 15x slower than
                        # copying first: the copy keeps the sink's cost in line with the others'.
                        self.sink.feed(frame.get_payload_as_bytes())
                    return
                if kind == text:
                    self.on_text(transport, frame.get_payload_as_utf8_text())
                    return
            if kind == close:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif kind in (binary, text):
                self.parts, self.parts_type = [frame.get_payload_as_bytes()], kind
            elif kind == continuation:
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    payload, self.parts = b"".join(self.parts), []
                    if self.parts_type == text:
                        self.on_text(transport, payload.decode())
                    elif self.sink is None:
                        transport.send(binary, payload)
                    else:
                        self.sink.feed(payload)

        def on_text(self, transport: WSTransport, message: str) -> None:
            if self.sink is not None:
                transport.send(text, self.sink.summary().encode())
                self.sink = None
            elif is_sink(message):
                self.sink = Sink(message)
            else:
                transport.send(text, message.encode())

    server = await ws_create_server(
        lambda _request: Echo(), "127.0.0.1", 0, max_frame_size=MAX_SIZE
    )
    ready(server.sockets[0].getsockname()[1])
    await asyncio.Future()


async def serve_tether_listener(ready: Ready) -> None:
    """tether's callback server: a :class:`tether.Listener` per connection, on uvloop."""
    import tether.asyncio

    class Echo(tether.asyncio.Listener):
        def __init__(self) -> None:
            self.sink: Sink | None = None

        def on_message(self, ws: tether.asyncio.Connection, message: str | bytes) -> None:
            sink = self.sink
            if sink is None:
                if isinstance(message, str) and is_sink(message):
                    self.sink = Sink(message)
                else:
                    ws.send_nowait(message)
            elif isinstance(message, str):
                ws.send_nowait(sink.summary())
                self.sink = None
            else:
                sink.feed(message)

    async with tether.asyncio.listen(Echo, "127.0.0.1", 0, max_size=MAX_SIZE) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


def serve_tether_sync(ready: Ready) -> None:
    """tether's threading server."""
    import tether.sync

    with tether.sync.serve(sync_echo_handler, "127.0.0.1", 0, max_size=MAX_SIZE) as server:
        ready(server.socket.getsockname()[1])
        server.serve_forever()


def serve_websockets_sync(ready: Ready) -> None:
    """websockets' threading server."""
    import websockets.sync.server

    with websockets.sync.server.serve(
        sync_echo_handler, "127.0.0.1", 0, max_size=MAX_SIZE
    ) as server:
        ready(server.socket.getsockname()[1])
        server.serve_forever()


async def serve_tether_trio(ready: Ready) -> None:
    """tether's trio server."""
    import functools

    import trio

    import tether.trio

    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            tether.trio.serve, async_echo_handler, 0, host="127.0.0.1", max_size=MAX_SIZE
        )
        server = await nursery.start(serve)
        ready(server.sockets[0].getsockname()[1])
        await trio.sleep_forever()


async def serve_websockets_trio(ready: Ready) -> None:
    """websockets' trio server."""
    import functools

    import trio
    import websockets.trio.server

    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            websockets.trio.server.serve,
            async_echo_handler,
            0,
            host="127.0.0.1",
            max_size=MAX_SIZE,
        )
        server = await nursery.start(serve)
        ready(server.listeners[0].socket.getsockname()[1])
        await trio.sleep_forever()


ASYNC_SERVERS: dict[str, Callable[[Ready], Coroutine[Any, Any, None]]] = {
    "tether": serve_tether,
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
    "picows": serve_picows,
    "tether-listener": serve_tether_listener,
    "tether-trio": serve_tether_trio,
    "websockets-trio": serve_websockets_trio,
}
SYNC_SERVERS: dict[str, Callable[[Ready], None]] = {
    "tether-sync": serve_tether_sync,
    "websockets-sync": serve_websockets_sync,
}


def serve(name: str, ready: Ready) -> None:
    """Run library ``name``'s echo server until the process ends."""
    if name in SYNC_SERVERS:
        SYNC_SERVERS[name](ready)
        return
    if name == "granian":
        from bench.asgi import serve_granian

        serve_granian(ready)
        return
    if LIBRARIES[name].flavor == "asgi":
        from bench.asgi import serve_uvicorn

        serve_uvicorn(name, ready)
        return
    base = name.removesuffix("-uvloop")
    flavor = LIBRARIES[name].flavor
    run_loop(ASYNC_SERVERS[base](ready), flavor == "uvloop", flavor == "trio")


# asyncio clients


def _connecting(open_connection: Callable[..., Awaitable[Any]], url: str) -> AsyncConnect:
    """The adapter of a client whose connections have ``send``, ``recv`` and ``close``.

    ``open_connection(url, compression=..., max_size=...)`` opens one, as
    tether's and websockets' ``connect`` do.
    """

    async def connect(compress: bool) -> AsyncConn:
        ws = await open_connection(
            url, compression="deflate" if compress else None, max_size=MAX_SIZE
        )
        return AsyncConn(ws.send, ws.send, ws.recv, ws.close)

    return connect


@contextlib.asynccontextmanager
async def tether_client(url: str) -> AsyncIterator[AsyncConnect]:
    """tether's asyncio client."""
    import tether.asyncio

    yield _connecting(tether.asyncio.connect, url)


@contextlib.asynccontextmanager
async def tether_nowait_client(url: str) -> AsyncIterator[AsyncConnect]:
    """tether's asyncio client sending with ``send_nowait``, the callback API's send.

    Each send waits first while the write buffer is over ``write_limit``
    (the connection's own flag and wait, which ``send`` uses), then sends
    without a coroutine of tether's: the adapter of :func:`picows_client`,
    whose sends wait on its ``pause_writing`` the same way.
    """
    import tether.asyncio

    async def connect(compress: bool) -> AsyncConn:
        ws = await tether.asyncio.connect(
            url, compression="deflate" if compress else None, max_size=MAX_SIZE
        )
        send_nowait = ws.send_nowait

        async def send(message: Data) -> None:
            if ws._writing_paused:
                await ws._drain()
            send_nowait(message)

        return AsyncConn(send, send, ws.recv, ws.close)

    yield connect


@contextlib.asynccontextmanager
async def websockets_client(url: str) -> AsyncIterator[AsyncConnect]:
    """websockets' asyncio client."""
    import websockets.asyncio.client

    yield _connecting(websockets.asyncio.client.connect, url)


@contextlib.asynccontextmanager
async def aiohttp_client(url: str) -> AsyncIterator[AsyncConnect]:
    """aiohttp's client, one session for all the connections of a workload."""
    import aiohttp

    data_types = (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def connect(compress: bool) -> AsyncConn:
            ws = await session.ws_connect(
                url, compress=15 if compress else 0, max_msg_size=MAX_SIZE
            )

            async def recv() -> Data:
                msg = await ws.receive()
                if msg.type in data_types:
                    data: Data = msg.data
                    return data
                raise BenchError(f"aiohttp received {msg.type}")

            return AsyncConn(ws.send_bytes, ws.send_str, recv, ws.close)

        yield connect


@contextlib.asynccontextmanager
async def picows_client(url: str) -> AsyncIterator[AsyncConnect]:
    """picows' client: frames arrive by callback and are queued for ``recv``."""
    from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    binary, text, close = WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CLOSE
    continuation = WSMsgType.CONTINUATION
    loop = asyncio.get_running_loop()

    class Client(WSListener):
        def __init__(self) -> None:
            self.transport: WSTransport | None = None
            self.messages: deque[Data] = deque()
            self.waiter: asyncio.Future[Data] | None = None
            self.writable: asyncio.Future[None] | None = None
            self.parts: list[bytes] = []
            self.parts_type = binary

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.transport = transport

        def deliver(self, message: Data) -> None:
            waiter = self.waiter
            if waiter is not None:
                self.waiter = None
                if not waiter.done():
                    waiter.set_result(message)
                    return
            self.messages.append(message)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if frame.fin and not self.parts:
                if kind == binary:
                    self.deliver(frame.get_payload_as_bytes())
                    return
                if kind == text:
                    self.deliver(frame.get_payload_as_utf8_text())
                    return
            if kind == close:
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif kind in (binary, text):
                self.parts, self.parts_type = [frame.get_payload_as_bytes()], kind
            elif kind == continuation:
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    payload, self.parts = b"".join(self.parts), []
                    self.deliver(payload.decode() if self.parts_type == text else payload)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            for future in (self.waiter, self.writable):
                if future is not None and not future.done():
                    future.set_exception(BenchError("picows: disconnected"))

        def pause_writing(self) -> None:
            self.writable = loop.create_future()

        def resume_writing(self) -> None:
            if self.writable is not None and not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

        async def recv(self) -> Data:
            if self.messages:
                return self.messages.popleft()
            self.waiter = loop.create_future()
            return await self.waiter

        async def send_bytes(self, message: bytes) -> None:
            if self.writable is not None:
                await self.writable
            assert self.transport is not None
            self.transport.send(binary, message)

        async def send_text(self, message: str) -> None:
            if self.writable is not None:
                await self.writable
            assert self.transport is not None
            self.transport.send(text, message.encode())

        async def close(self) -> None:
            assert self.transport is not None
            self.transport.send_close(WSCloseCode.OK)
            await asyncio.wait_for(self.transport.wait_disconnected(), 10)

    async def connect(compress: bool) -> AsyncConn:
        if compress:
            raise BenchError("picows has no permessage-deflate")
        _, client = await ws_connect(Client, url, max_frame_size=MAX_SIZE)
        assert isinstance(client, Client)
        return AsyncConn(client.send_bytes, client.send_text, client.recv, client.close)

    yield connect


@contextlib.asynccontextmanager
async def tether_trio_client(url: str) -> AsyncIterator[AsyncConnect]:
    """tether's trio client."""
    import tether.trio

    yield _connecting(tether.trio.connect, url)


@contextlib.asynccontextmanager
async def websockets_trio_client(url: str) -> AsyncIterator[AsyncConnect]:
    """websockets' trio client: each connection lives in a task of one nursery.

    Its ``connect`` is only an async context manager, which opens a nursery
    of its own: a task per connection enters it and leaves it.
    """
    import trio
    import websockets.trio.client

    async with trio.open_nursery() as nursery:

        async def hold(compress: bool, done: trio.Event, task_status: trio.TaskStatus[Any]) -> None:
            async with websockets.trio.client.connect(
                url, compression="deflate" if compress else None, max_size=MAX_SIZE
            ) as ws:
                task_status.started(ws)
                await done.wait()

        async def connect(compress: bool) -> AsyncConn:
            done, closed = trio.Event(), trio.Event()

            async def run(task_status: trio.TaskStatus[Any]) -> None:
                try:
                    await hold(compress, done, task_status)
                finally:
                    closed.set()

            ws = await nursery.start(run)

            async def close() -> None:
                done.set()
                await closed.wait()

            return AsyncConn(ws.send, ws.send, ws.recv, close)

        yield connect
        nursery.cancel_scope.cancel()


ASYNC_CLIENTS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[AsyncConnect]]] = {
    "tether": tether_client,
    "tether-nowait": tether_nowait_client,
    "websockets": websockets_client,
    "aiohttp": aiohttp_client,
    "picows": picows_client,
    "tether-trio": tether_trio_client,
    "websockets-trio": websockets_trio_client,
}


# threading clients


def tether_sync_client(url: str) -> SyncConnect:
    """tether's threading client."""
    import tether.sync

    def connect(compress: bool) -> SyncConn:
        ws = tether.sync.connect(
            url, compression="deflate" if compress else None, max_size=MAX_SIZE
        )
        return SyncConn(ws.send, ws.send, ws.recv, ws.close)

    return connect


def websockets_sync_client(url: str) -> SyncConnect:
    """websockets' threading client."""
    import websockets.sync.client

    def connect(compress: bool) -> SyncConn:
        ws = websockets.sync.client.connect(
            url, compression="deflate" if compress else None, max_size=MAX_SIZE
        )
        return SyncConn(ws.send, ws.send, ws.recv, ws.close)

    return connect


def websocket_client_client(url: str) -> SyncConnect:
    """websocket-client, with its defaults."""
    import websocket

    def connect(compress: bool) -> SyncConn:
        if compress:
            raise BenchError("websocket-client has no permessage-deflate")
        ws = websocket.create_connection(url)
        return SyncConn(ws.send_bytes, ws.send_text, ws.recv, ws.close)

    return connect


SYNC_CLIENTS: dict[str, Callable[[str], SyncConnect]] = {
    "tether-sync": tether_sync_client,
    "websockets-sync": websockets_sync_client,
    "websocket-client": websocket_client_client,
}
