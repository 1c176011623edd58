"""broadcast, on every API: one message to many connections."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.backends import TIMEOUT, Backend, Face, echo_until_closed
from tether.exceptions import ConcurrencyError, ConnectionClosed


async def hold(ws: Face) -> None:
    await ws.wait_closed()


async def broadcast(backend: Backend, *args: Any, **kwargs: Any) -> Any:
    """The API's broadcast (a coroutine function in tether.trio, as in websockets.trio)."""
    result = backend.module("broadcast").broadcast(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize(
    ("message", "text", "expected"),
    [
        ("é", None, "é"),
        ("é", False, "é".encode()),
        (b'{"a": 1}', True, '{"a": 1}'),
        (b"\x00", None, b"\x00"),
        (memoryview(b"\x00\x01"), None, b"\x00\x01"),
    ],
)
def test_broadcast_text_option(
    backend: Backend, message: str | bytes, text: bool | None, expected: str | bytes
) -> None:
    async def body() -> None:
        async with backend.serve(hold) as port:
            clients = [await backend.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
            await backend.until(lambda: len(backend.server.connections) == 3)
            assert await broadcast(backend, backend.server.connections, message, text=text) == 3
            for ws in clients:
                assert await ws.recv() == expected
                await ws.close()

    backend.run(body)


def test_broadcast_arguments(backend: Backend) -> None:
    async def body() -> None:
        with pytest.raises(TypeError):
            await broadcast(backend, [], "x", True)  # raise_exceptions is keyword-only
        with pytest.raises(TypeError, match="cannot broadcast int"):
            await broadcast(backend, [], 42)
        assert await broadcast(backend, [], "nobody") == 0

    backend.run(body)


async def arrived(backend: Backend, clients: list[Face]) -> list[Any]:
    """The server side of each client, in the clients' order (handlers start in any order)."""
    await backend.until(lambda: len(backend.server.connections) == len(clients))
    by_peer = {conn.remote_address: conn for conn in backend.server.connections}
    return [by_peer[ws.native.local_address] for ws in clients]


def test_broadcast_reaches_every_open_connection(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(hold) as port:
            clients = [await backend.connect(f"ws://127.0.0.1:{port}/") for _ in range(20)]
            conns = await arrived(backend, clients)
            # Every connection negotiated permessage-deflate; the message goes anyway.
            assert all(conn.protocol.extensions for conn in conns)
            assert await broadcast(backend, backend.server.connections, "to all") == 20
            assert await broadcast(backend, backend.server.connections, b"\x01\x02") == 20
            for ws in clients:
                assert await ws.recv() == "to all"
                assert await ws.recv() == b"\x01\x02"
            await clients[0].close()
            await backend.until(lambda: len(backend.server.connections) == 19)
            # Closed connections are skipped silently, on either side.
            assert await broadcast(backend, conns, "fewer", raise_exceptions=True) == 19
            assert await broadcast(backend, [clients[0].native], "closed client") == 0
            for ws in clients[1:]:
                assert await ws.recv() == "fewer"
                await ws.close()

    backend.run(body)


def test_broadcast_from_clients(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            clients = [await backend.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
            # Each client masks its own frame; the server echoes what it unmasked.
            assert await broadcast(backend, [ws.native for ws in clients], "from clients") == 3
            assert await broadcast(backend, [ws.native for ws in clients], b"binary too") == 3
            for ws in clients:
                assert await ws.recv() == "from clients"
                assert await ws.recv() == b"binary too"
                await ws.close()

    backend.run(body)


def test_broadcast_skips_closed_and_fragmented(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    middle = threading.Event()
    resume = threading.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "frag"
        middle.set()
        while not resume.is_set():
            await backend.sleep(0.001)
        yield "ment"

    def thread_fragments() -> Iterator[str]:
        yield "frag"
        middle.set()
        assert resume.wait(TIMEOUT)
        yield "ment"

    async def handler(ws: Face) -> None:
        # The client asks for the fragmented message; the others never ask.
        try:
            await ws.recv(timeout=None)
        except ConnectionClosed:
            return
        await ws.send(thread_fragments() if backend.api == "sync" else fragments())
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(handler) as port:
            uri = f"ws://127.0.0.1:{port}/"
            closed = await backend.connect(uri)
            fragmented = await backend.connect(uri)
            other = await backend.connect(uri)
            conns = await arrived(backend, [closed, fragmented, other])
            await fragmented.send("fragment, please")
            await closed.close()
            await backend.until(lambda: len(backend.server.connections) == 2)
            await backend.within(backend.in_thread(lambda: middle.wait(TIMEOUT)))
            caplog.set_level(logging.WARNING, logger="tether")
            assert await broadcast(backend, conns, "news") == 1
            assert any("fragmented message" in r.getMessage() for r in caplog.records)
            with pytest.raises(ExceptionGroup) as caught:
                await broadcast(backend, conns, "more news", raise_exceptions=True)
            (error,) = caught.value.exceptions
            assert isinstance(error, ConcurrencyError)
            assert error.__notes__ == [f"connection {conns[1].id}"]
            resume.set()
            assert await fragmented.recv() == "fragment"
            assert await other.recv() == "news"
            assert await other.recv() == "more news"
            assert await broadcast(backend, conns, "welcome now") == 2
            assert await fragmented.recv() == "welcome now"
            assert await other.recv() == "welcome now"
            await fragmented.close()
            await other.close()

    backend.run(body)


@pytest.mark.apis("asyncio", "trio")
def test_broadcast_skips_a_connection_over_its_write_limit(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # tether.sync's broadcast never skips a slow connection: a thread of the
    # connection writes what its socket does not take at once.
    async def body() -> None:
        async with backend.serve(hold, write_limit=4096, max_size=None) as port:
            uri = f"ws://127.0.0.1:{port}/"
            # It reads nothing: once one message waits in its queue, it stops
            # reading the socket, and the server's buffer fills.
            slow_client = await backend.connect(uri, max_queue=1, max_size=None)
            clients = [await backend.connect(uri) for _ in range(3)]
            slow, *_ = await arrived(backend, [slow_client, *clients])
            big = "x" * 65536
            sent = skipped = 0
            last_skipped = False
            caplog.set_level(logging.DEBUG, logger="tether")
            # Fill its buffers until it is still over its limit after its
            # writer had time to write what the sockets would take.
            for _ in range(2000):
                try:
                    sent += await broadcast(backend, [slow], big, raise_exceptions=True)
                except ExceptionGroup as group:
                    (error,) = group.exceptions
                    assert isinstance(error, BlockingIOError)
                    skipped += 1
                    if skipped > 1 and last_skipped:
                        break
                    await backend.sleep(0.05)
                    last_skipped = True
                else:
                    last_skipped = False
            else:
                raise AssertionError("the slow connection never went over its limit")
            assert sent >= 1
            assert await broadcast(backend, backend.server.connections, "first") == 3
            assert await broadcast(backend, backend.server.connections, "second") == 3
            with pytest.raises(ExceptionGroup) as caught:
                await broadcast(backend, backend.server.connections, "third", raise_exceptions=True)
            (error,) = caught.value.exceptions
            assert isinstance(error, BlockingIOError)
            assert error.__notes__ == [f"connection {slow.id}"]
            for ws in clients:
                assert [await ws.recv() for _ in range(3)] == ["first", "second", "third"]
                await ws.close()
            # Warned once, then quietly.
            skips = [r for r in caplog.records if "write buffer full" in r.getMessage()]
            assert [r.levelno for r in skips] == [logging.WARNING] + [logging.DEBUG] * (skipped + 2)
            # The slow one still gets every message that was written, whole.
            for _ in range(sent):
                assert await slow_client.recv() == big
            await slow_client.close()

    backend.run(body)
