"""tether.trio clients: the three ways to connect, reconnection, and the system reader."""

from __future__ import annotations

import functools
import threading

import pytest
import trio

import tether.sync
import tether.trio
from tether.exceptions import InvalidURI

from .conftest import echo, serving, trio_test, uri_of


@trio_test
async def test_await_then_close() -> None:
    async with serving() as server:
        ws = await tether.trio.connect(uri_of(server))
        await ws.send("awaited")
        assert await ws.recv() == "awaited"
        await ws.close(4001, "done")
        assert ws.close_code == 4001


@trio_test
async def test_async_for_reconnects_after_the_server_comes_back() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(tether.trio.serve, echo, 0))
        port = server.sockets[0].getsockname()[1]
        uri = f"ws://127.0.0.1:{port}/"
        seen = 0
        async for ws in tether.trio.connect(uri, backoff_initial_delay=0.01):
            seen += 1
            await ws.send(f"attempt {seen}")
            assert await ws.recv() == f"attempt {seen}"
            if seen == 2:
                break
            # Restart the server on the same port: the connection drops, the loop reconnects.
            await server.aclose()
            await ws.wait_closed()
            server = await nursery.start(
                functools.partial(tether.trio.serve, echo, port, host="127.0.0.1")
            )
        await server.aclose()


def test_leaving_trio_run_closes_the_connection_with_1001() -> None:
    codes: list[int | None] = []
    handled = threading.Event()

    def record(ws: tether.sync.ServerConnection) -> None:
        for _ in ws:
            pass
        codes.append(ws.close_code)
        handled.set()

    server = tether.sync.serve(record, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.socket.getsockname()[1]

    async def main() -> None:
        ws = await tether.trio.connect(f"ws://127.0.0.1:{port}/")
        await ws.send("then leave without closing")

    try:
        trio.run(main)
        assert handled.wait(10)
        assert codes == [1001]
    finally:
        server.shutdown()
        thread.join(10)


def test_bad_uri_and_options_raise_at_once() -> None:
    with pytest.raises(InvalidURI):
        tether.trio.connect("http://example.com/")
    with pytest.raises(ValueError, match="wss"):
        tether.trio.connect("ws://example.com/", ssl=True)
