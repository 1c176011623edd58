"""Servers that run a handler on a free loopback port in a thread of their own.

The server has its own thread (and, for asyncio, its own event loop), so a
test of any kind can use it: a plain function with the threading client, a
coroutine under any asyncio test runner, on any event loop. Stop it with
:meth:`LocalServer.stop`, or let the pytest fixtures do it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tether.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from tether.asyncio.client import connect as asyncio_connect
    from tether.sync.client import ClientConnection as SyncClientConnection

__all__ = ["LocalServer", "start_server", "start_sync_server"]

HOST = "127.0.0.1"

_STOP_TIMEOUT = 10.0


class LocalServer:
    """A server running in a background thread on ``127.0.0.1`` and a free port.

    :attr:`errors` collects the exceptions that the handler raised (other than
    :class:`~tether.exceptions.ConnectionClosed`, which only says the client
    went away): the pytest fixtures fail the test when there is one, since
    the server itself only logs them.
    """

    def __init__(self, port: int, stop: Callable[[], None], errors: list[BaseException]) -> None:
        self.host = HOST
        """The address the server listens on."""
        self.port = port
        """The port the server listens on."""
        self.errors = errors
        """Exceptions raised by the handler so far."""
        self._stop = stop
        self._stopped = False

    def uri(self, path: str = "/") -> str:
        """The ``ws://`` URI of ``path`` on this server."""
        return f"ws://{self.host}:{self.port}{path}"

    def connect(self, path: str = "/", **options: Any) -> asyncio_connect:
        """Connect with the asyncio client: ``async with server.connect() as websocket``.

        ``options`` are those of :func:`tether.asyncio.client.connect`.
        """
        from tether.asyncio.client import connect  # noqa: PLC0415

        return connect(self.uri(path), **options)

    def connect_sync(self, path: str = "/", **options: Any) -> SyncClientConnection:
        """Connect with the threading client; ``options`` are those of
        :func:`tether.sync.client.connect`."""
        from tether.sync.client import connect  # noqa: PLC0415

        return connect(self.uri(path), **options)

    def stop(self) -> None:
        """Close every connection with 1001, stop the server and its thread."""
        if not self._stopped:
            self._stopped = True
            self._stop()


def _recording(
    handler: Callable[..., Any], errors: list[BaseException], asynchronous: bool
) -> Callable[..., Any]:
    """Wrap ``handler`` so that its exceptions are kept in ``errors``, then raised as usual."""
    if asynchronous:

        async def recorded_async(*args: Any, **kwargs: Any) -> None:
            try:
                await handler(*args, **kwargs)
            except ConnectionClosed:
                raise
            except Exception as exc:
                errors.append(exc)
                raise

        return recorded_async

    def recorded(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except ConnectionClosed:
            raise
        except Exception as exc:
            errors.append(exc)
            raise

    return recorded


def start_server(handler: Callable[..., Awaitable[None]], **options: Any) -> LocalServer:
    """Run an asyncio server with ``handler`` in a thread; return once it listens.

    ``options`` are those of :func:`tether.asyncio.server.serve`, such as
    ``process_request`` or ``subprotocols``.
    """
    from tether.asyncio.server import Server, serve  # noqa: PLC0415

    errors: list[BaseException] = []
    started = threading.Event()
    outcome: list[Server | BaseException] = []
    loop = asyncio.new_event_loop()

    async def run() -> None:
        try:
            server = await serve(_recording(handler, errors, True), HOST, 0, **options)
        except BaseException as exc:
            outcome.append(exc)
            started.set()
            return
        outcome.append(server)
        started.set()
        await server.wait_closed()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(run(),), name="tether-test-server", daemon=True
    )
    thread.start()
    started.wait()
    result = outcome[0]
    if isinstance(result, BaseException):
        thread.join()
        loop.close()
        raise result
    server = result

    def stop() -> None:
        loop.call_soon_threadsafe(server.close)
        thread.join(_STOP_TIMEOUT)
        if not thread.is_alive():
            loop.close()

    port: int = next(iter(server.sockets)).getsockname()[1]
    return LocalServer(port, stop, errors)


def start_sync_server(handler: Callable[..., None], **options: Any) -> LocalServer:
    """Run a threading server with ``handler``; return once it listens.

    ``options`` are those of :func:`tether.sync.server.serve`.
    """
    from tether.sync.server import serve  # noqa: PLC0415

    errors: list[BaseException] = []
    server = serve(_recording(handler, errors, False), HOST, 0, **options)
    thread = threading.Thread(target=server.serve_forever, name="tether-test-server", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(_STOP_TIMEOUT)

    port: int = server.socket.getsockname()[1]
    return LocalServer(port, stop, errors)
