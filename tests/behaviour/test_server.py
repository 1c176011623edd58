"""The server on every API: its list of connections, stopping while keeping them, a given socket.

And on the async APIs, a 503 for a handshake whose hook runs while the server closes.

The rest of how each API's server starts and stops (``close`` and
``wait_closed``, ``shutdown``, a nursery, ``host=None``) stays in each API's
own tests.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest
import trio

from tests.backends import TIMEOUT, Backend, Face, echo_until_closed
from tether.exceptions import InvalidStatus


def test_connections_lists_open_connections(backend: Backend) -> None:
    seen: list[Face] = []

    async def handler(ws: Face) -> None:
        seen.append(ws)
        await echo_until_closed(ws)

    async def body() -> None:
        async with backend.serve(handler) as port:
            server = backend.server
            assert set(server.connections) == set()
            uri = f"ws://127.0.0.1:{port}/"
            one = await backend.connect(uri)
            two = await backend.connect(uri)
            await one.send("a")
            await two.send("b")
            assert await one.recv() == "a"
            assert await two.recv() == "b"
            assert set(server.connections) == {ws.native for ws in seen}
            assert len(seen) == 2
            assert all(ws.native.server is server for ws in seen)
            await one.close()
            await two.close()
            await backend.until(lambda: not server.connections)

    backend.run(body)


def test_refused_connection_is_never_listed(backend: Backend) -> None:
    async def hold(ws: Face) -> None:
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(hold, origins=["https://ok"]) as port:
            with pytest.raises(InvalidStatus):
                await backend.connect(f"ws://127.0.0.1:{port}/", origin="https://bad")
            assert set(backend.server.connections) == set()

    backend.run(body)


def test_stop_listening_and_keep_connections_open(backend: Backend) -> None:
    release = threading.Event()

    async def handler(ws: Face) -> None:
        await backend.in_thread(lambda: release.wait(TIMEOUT))
        await ws.send("bye")

    async def body() -> None:
        async with backend.serve(handler) as port:
            server = backend.server
            uri = f"ws://127.0.0.1:{port}/"
            ws = await backend.connect(uri)
            await backend.until(lambda: server.connections)

            async def stop() -> None:
                # Each API's spelling: close (asyncio, trio) or shutdown (sync).
                if backend.api == "sync":
                    await backend.in_thread(lambda: server.shutdown(close_connections=False))
                else:
                    server.close(close_connections=False)
                    await server.wait_closed()
                # It returned only once the handler did.
                assert release.is_set()

            async def talk() -> None:
                if backend.api == "sync":
                    await backend.until(lambda: server.socket.fileno() == -1)
                else:
                    await backend.until(lambda: not server.is_serving())
                # Refused: trio's client says so after trying every address.
                refused = (
                    (OSError, "all attempts")
                    if backend.api == "trio"
                    else (ConnectionRefusedError, None)
                )
                with pytest.raises(refused[0], match=refused[1]):
                    await backend.connect(uri, open_timeout=TIMEOUT)
                # The open connection is still served; stopping waits for its handler.
                release.set()
                assert await ws.recv() == "bye"
                await ws.wait_closed()
                assert ws.close_code == 1000

            await backend.together(stop, talk)
            assert set(server.connections) == set()

    backend.run(body)


@pytest.mark.apis("asyncio", "trio")
@pytest.mark.parametrize("hook", ["process_request", "process_response"])
def test_closing_during_a_handshake_hook_refuses_with_503(backend: Backend, hook: str) -> None:
    entered = threading.Event()
    release = threading.Event()

    async def hold(ws: Face) -> None:
        await ws.wait_closed()

    async def slow(*args: Any) -> None:
        entered.set()
        await backend.in_thread(lambda: release.wait(TIMEOUT))

    async def body() -> None:
        async with backend.serve(hold, **{hook: slow}) as port:
            server = backend.server

            async def attempt() -> None:
                with pytest.raises(InvalidStatus) as caught:
                    await backend.connect(f"ws://127.0.0.1:{port}/")
                assert caught.value.response.status_code == 503

            async def stop() -> None:
                await backend.in_thread(lambda: entered.wait(TIMEOUT))
                # The server closes while the hook runs: the 101 becomes a 503.
                server.close()
                release.set()
                await server.wait_closed()

            await backend.together(attempt, stop)
            assert set(server.connections) == set()

    backend.run(body)


def test_serve_on_a_given_socket(backend: Backend) -> None:
    """A listening socket made by the caller: ``sock=`` (``listeners=`` in tether.trio)."""
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()

    def start(handling: Any, *host_and_port: Any, **options: Any) -> Any:
        options.pop("host", None)
        serve = backend.module("server").serve
        if backend.api == "trio":
            given = trio.SocketListener(trio.socket.from_stdlib_socket(listener))
            return serve(handling, listeners=[given], **options)
        return serve(handling, sock=listener, **options)

    async def echo(ws: Face) -> None:
        await ws.send(await ws.recv())

    async def body() -> None:
        async with backend.listen(start, backend.native(echo), {}) as port:
            server = backend.server
            if backend.api == "sync":
                assert server.socket is listener
            else:
                assert [s.getsockname() for s in server.sockets] == [address]
            assert port == address[1]
            ws = await backend.connect(f"ws://127.0.0.1:{port}/")
            await ws.send("given")
            assert await ws.recv() == "given"
            await ws.close()

    try:
        backend.run(body)
    finally:
        listener.close()
