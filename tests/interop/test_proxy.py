"""websockets and tether through the same real proxies, in both directions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import websockets.asyncio.client
import websockets.asyncio.server

import tether
from tether.asyncio.server import ServerConnection

from ..proxy_servers import pproxy, tinyproxy


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    directory = tmp_path_factory.mktemp("interop-proxies")
    with tinyproxy(directory) as http, pproxy(directory, "socks5") as socks:
        yield [http, f"socks5h://127.0.0.1:{socks}"]


async def tether_echo(ws: ServerConnection) -> None:
    async for message in ws:
        assert isinstance(message, str)
        await ws.send(f"tether: {message}")


async def websockets_echo(ws: websockets.asyncio.server.ServerConnection) -> None:
    async for message in ws:
        await ws.send(f"websockets: {message!s}")


async def test_websockets_client_to_tether_server(proxies: list[str]) -> None:
    async with tether.serve(tether_echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        for proxy in proxies:
            async with websockets.asyncio.client.connect(
                f"ws://127.0.0.1:{port}/", proxy=proxy
            ) as ws:
                await ws.send(proxy)
                assert await ws.recv() == f"tether: {proxy}"


async def test_tether_client_to_websockets_server(proxies: list[str]) -> None:
    async with websockets.asyncio.server.serve(websockets_echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        for proxy in proxies:
            async with tether.connect(f"ws://127.0.0.1:{port}/", proxy=proxy) as ws:
                await ws.send(proxy)
                assert await ws.recv() == f"websockets: {proxy}"
