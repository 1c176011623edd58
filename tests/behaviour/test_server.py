"""The server's list of connections, on every API.

How each API's server starts and stops (``close`` and ``wait_closed``,
``shutdown``, a nursery) stays in each API's own tests.
"""

from __future__ import annotations

import pytest

from tests.backends import Backend, Face
from tether.exceptions import ConnectionClosed, InvalidStatus


def test_connections_lists_open_connections(backend: Backend) -> None:
    seen: list[Face] = []

    async def handler(ws: Face) -> None:
        seen.append(ws)
        try:
            while True:
                await ws.send(await ws.recv(timeout=None))
        except ConnectionClosed:
            pass

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
