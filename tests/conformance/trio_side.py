"""tether.trio in a thread of its own, for the conformance harness's trio roles.

The adversarial peer runs on the test's asyncio loop; tether.trio runs in a
``trio.run`` of its own thread, and :class:`TrioConnection` gives the cases
its connection with the asyncio API's coroutine methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

import tether.trio
from tether.exceptions import ConnectionClosed

__all__ = ["TrioConnection", "TrioSide"]

T = TypeVar("T")


async def _echo(ws: tether.trio.Connection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


class TrioSide:
    """A trio run in a thread, with a nursery for tether's servers and clients."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await trio.sleep_forever()

    def call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``function(*args)`` in the trio run; block until it returns."""
        return trio.from_thread.run(function, *args, trio_token=self._token)

    async def run(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`call`, awaited from an asyncio loop."""
        return await asyncio.to_thread(self.call, function, *args)

    async def serve(self, deliver: Callable[[TrioConnection], None], **options: Any) -> int:
        """Start an echo server; hand each connection to ``deliver``; return the port."""

        async def handler(ws: tether.trio.ServerConnection) -> None:
            deliver(TrioConnection(self, ws))
            await _echo(ws)

        async def start() -> tether.trio.Server:
            assert self._nursery is not None
            serve = functools.partial(tether.trio.serve, handler, 0, host="127.0.0.1", **options)
            server: tether.trio.Server = await self._nursery.start(serve)
            return server

        server = await self.run(start)
        return int(server.sockets[0].getsockname()[1])

    def connect(
        self,
        uri: str,
        deliver: Callable[[TrioConnection], None],
        fail: Callable[[Exception], None],
        **options: Any,
    ) -> None:
        """Connect a client that echoes; hand it to ``deliver``, or its error to ``fail``."""

        async def client() -> None:
            try:
                ws = await tether.trio.connect(uri, **options)
            except Exception as exc:
                fail(exc)
                return
            deliver(TrioConnection(self, ws))
            await _echo(ws)

        assert self._nursery is not None
        trio.from_thread.run_sync(self._nursery.start_soon, client, trio_token=self._token)

    def stop(self) -> None:
        """Cancel everything (open connections close with 1001) and end the run."""
        assert self._nursery is not None
        trio.from_thread.run_sync(self._nursery.cancel_scope.cancel, trio_token=self._token)
        self._thread.join(20)
        assert not self._thread.is_alive()


class TrioConnection:
    """A tether.trio connection, seen from asyncio: attributes as they are, methods awaited."""

    def __init__(self, side: TrioSide, ws: tether.trio.Connection) -> None:
        self.side = side
        self.ws = ws

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ws, name)

    async def send(self, message: Any, text: bool | None = None) -> None:
        """Send a message."""
        await self.side.run(self.ws.send, message, text)

    async def recv(self, decode: bool | None = None, timeout: float | None = None) -> Any:
        """Receive a message."""
        return await self.side.run(self.ws.recv, decode, timeout)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close and wait until closed."""
        await self.side.run(self.ws.close, code, reason)

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self.side.run(self.ws.wait_closed)
