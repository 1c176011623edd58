"""tether.trio.route and basic_auth."""

from __future__ import annotations

import functools

import pytest
import trio

import tether.trio
from tether.exceptions import InvalidStatus
from tether.trio import ServerConnection, basic_auth, route

from .conftest import trio_test


@trio_test
async def test_route_dispatches_by_path_and_refuses_others() -> None:
    async def room(ws: ServerConnection, name: str) -> None:
        await ws.send(f"room {name} for {ws.username}")

    async def files(ws: ServerConnection, rest: str) -> None:
        await ws.send(rest)

    auth = basic_auth(credentials=("bob", "pw"))
    routes = {"/room/{name}": room, "/files/{rest:path}": files}
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(route, routes, 0, host="127.0.0.1", process_request=auth)
        )
        port = server.sockets[0].getsockname()[1]
        headers = {"Authorization": "Basic Ym9iOnB3"}
        async with tether.trio.connect(
            f"ws://127.0.0.1:{port}/room/caf%C3%A9", additional_headers=headers
        ) as ws:
            assert await ws.recv() == "room café for bob"
        async with tether.trio.connect(
            f"ws://127.0.0.1:{port}/files/a/b.txt", additional_headers=headers
        ) as ws:
            assert await ws.recv() == "a/b.txt"
        with pytest.raises(InvalidStatus) as caught:
            await tether.trio.connect(f"ws://127.0.0.1:{port}/nowhere", additional_headers=headers)
        assert caught.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as caught:
            await tether.trio.connect(f"ws://127.0.0.1:{port}/room/x")
        assert caught.value.response.status_code == 401
        await server.aclose()
