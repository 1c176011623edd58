"""Real peers of tether.trio: echoes that record how the connection closed.

Each peer echoes every message back, client or server, and records the close
code and reason it received. websockets' trio API runs in the test's own
trio run; websockets' asyncio API and aiohttp run on an event loop in a
thread of their own; Node's ``ws`` runs the scripts of ``tests/interop/node``
in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import queue
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import trio
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.exceptions
import websockets.trio.client
import websockets.trio.server
from aiohttp import web

__all__ = ["LIBRARIES", "TIMEOUT", "Record", "peer_client", "peer_server"]

TIMEOUT = 10.0
NODE_DIR = Path(__file__).parent / "node"
MAX_SIZE = 16 * 1024 * 1024

LIBRARIES = ["websockets-trio", "websockets-asyncio", "aiohttp", "node-ws"]


class Record:
    """What a peer saw of the closing handshake; filled from any thread."""

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.code: int | None = None
        self.reason: str | None = None

    def close(self, code: int | None, reason: str | None) -> None:
        """Note the close frame received, once."""
        if not self.closed.is_set():
            self.code, self.reason = code, reason
            self.closed.set()

    async def wait(self) -> None:
        """Wait, without blocking trio, until the peer saw the closure."""
        with trio.fail_after(TIMEOUT):
            while not self.closed.is_set():
                await trio.sleep(0.005)


# websockets, trio and asyncio


async def _websockets_echo(ws: Any, record: Record) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.exceptions.ConnectionClosed:
        pass
    record.close(ws.close_code, ws.close_reason)


async def _aiohttp_echo(ws: Any, record: Record) -> None:
    while True:
        message = await ws.receive()
        if message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.CLOSE:
            record.close(message.data, message.extra)
            return
        else:
            record.close(ws.close_code, None)
            return


# Threads running an asyncio peer: started with what to run, stopped by an event.


@contextlib.asynccontextmanager
async def _asyncio_thread(
    main: Callable[[queue.Queue[Any], threading.Event], Coroutine[Any, Any, None]],
) -> AsyncIterator[Any]:
    """Run ``main(ready, stop)`` on an event loop in a thread; yield what it puts in ``ready``."""
    ready: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(main(ready, stop))
        except BaseException as exc:
            errors.append(exc)
            ready.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        value = await trio.to_thread.run_sync(ready.get, True, TIMEOUT)
        if isinstance(value, BaseException):
            raise value
        yield value
    finally:
        stop.set()
        await trio.to_thread.run_sync(thread.join, TIMEOUT)
        assert not thread.is_alive()
    if errors:
        raise errors[0]


async def _until(stop: threading.Event) -> None:
    await asyncio.to_thread(stop.wait)


# Node's ws


@contextlib.asynccontextmanager
async def _node(script: str, record: Record, **options: str) -> AsyncIterator[str]:
    """Run a Node script; record its close event; yield its first line (or "")."""
    arguments = [f"--{name}={value}" for name, value in options.items()]
    process = await trio.lowlevel.open_process(
        ["node", str(NODE_DIR / script), *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    lines = _lines(process.stdout)
    try:
        async with trio.open_nursery() as nursery:
            first = ""
            if script == "echo_server.js":
                with trio.fail_after(TIMEOUT):
                    first = await anext(lines)

            async def watch() -> None:
                async for line in lines:
                    event = json.loads(line)
                    if event["event"] == "close":
                        record.close(event["code"], event["reason"])

            nursery.start_soon(watch)
            yield first
            nursery.cancel_scope.cancel()
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while True:
        chunk = await stream.receive_some()
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode()


# Servers and clients of every library


@contextlib.asynccontextmanager
async def peer_server(library: str, compression: bool, record: Record) -> AsyncIterator[str]:
    """Start ``library``'s echo server; yield its URI."""
    deflate = "deflate" if compression else None
    if library == "websockets-trio":
        handler = functools.partial(_websockets_echo, record=record)
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                functools.partial(
                    websockets.trio.server.serve,
                    handler,
                    0,
                    host="127.0.0.1",
                    compression=deflate,
                    max_size=MAX_SIZE,
                )
            )
            async with server:
                yield f"ws://127.0.0.1:{server.listeners[0].socket.getsockname()[1]}/"
        return
    if library == "websockets-asyncio":

        async def websockets_main(ready: queue.Queue[Any], stop: threading.Event) -> None:
            handler = functools.partial(_websockets_echo, record=record)
            async with websockets.asyncio.server.serve(
                handler, "127.0.0.1", 0, compression=deflate, max_size=MAX_SIZE
            ) as server:
                ready.put(next(iter(server.sockets)).getsockname()[1])
                await _until(stop)

        async with _asyncio_thread(websockets_main) as port:
            yield f"ws://127.0.0.1:{port}/"
        return
    if library == "aiohttp":

        async def aiohttp_main(ready: queue.Queue[Any], stop: threading.Event) -> None:
            async def handler(request: web.Request) -> web.WebSocketResponse:
                ws = web.WebSocketResponse(compress=compression, max_msg_size=MAX_SIZE)
                await ws.prepare(request)
                await _aiohttp_echo(ws, record)
                return ws

            app = web.Application()
            app.router.add_get("/", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                ready.put(runner.addresses[0][1])
                await _until(stop)
            finally:
                await runner.cleanup()

        async with _asyncio_thread(aiohttp_main) as port:
            yield f"ws://127.0.0.1:{port}/"
        return
    assert library == "node-ws", library
    async with _node("echo_server.js", record, port="0", deflate=str(compression).lower()) as first:
        assert first.startswith("READY "), first
        yield f"ws://127.0.0.1:{int(first.split()[1])}/"


@contextlib.asynccontextmanager
async def peer_client(
    library: str, uri: str, compression: bool, record: Record
) -> AsyncIterator[None]:
    """Connect ``library``'s echo client to ``uri`` for the duration of the block."""
    deflate = "deflate" if compression else None
    if library == "websockets-trio":

        async def run() -> None:
            async with websockets.trio.client.connect(
                uri, compression=deflate, max_size=MAX_SIZE
            ) as ws:
                await _websockets_echo(ws, record)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            yield
        return
    if library == "websockets-asyncio":

        async def websockets_main(ready: queue.Queue[Any], stop: threading.Event) -> None:
            async with websockets.asyncio.client.connect(
                uri, compression=deflate, max_size=MAX_SIZE
            ) as ws:
                ready.put(None)
                await _websockets_echo(ws, record)

        async with _asyncio_thread(websockets_main):
            yield
        return
    if library == "aiohttp":

        async def aiohttp_main(ready: queue.Queue[Any], stop: threading.Event) -> None:
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(uri, compress=15 if compression else 0, max_msg_size=0) as ws,
            ):
                ready.put(None)
                await _aiohttp_echo(ws, record)

        async with _asyncio_thread(aiohttp_main):
            yield
        return
    assert library == "node-ws", library
    async with _node("client.js", record, url=uri, deflate=str(compression).lower()):
        yield
