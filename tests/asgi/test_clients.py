"""tether behind uvicorn, driven by four client libraries, under each HTTP parser and event loop.

The servers are real ``uvicorn`` processes (``--ws tether.asgi:WebSocketProtocol``)
serving the Starlette and FastAPI applications of :mod:`tests.asgi.apps`;
between them they cover ``--http h11`` and ``httptools`` on the default loop
and uvloop. Each client opens a connection, exchanges text and a binary
message large enough to be compressed, and closes; the application's own
record of what it received must match, message for message.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable

import aiohttp
import pytest
import websockets.asyncio.client

import tether
from tests.asgi.servers import MAIN_OPTIONS, Uvicorn, UvicornConfig
from tests.interop.peers import NodePeer

TETHER_CONFIGS = [
    UvicornConfig("tether", "h11", "asyncio", "starlette", MAIN_OPTIONS),
    UvicornConfig("tether", "httptools", "uvloop", "starlette", MAIN_OPTIONS),
    UvicornConfig("tether", "h11", "uvloop", "fastapi", MAIN_OPTIONS),
    UvicornConfig("tether", "httptools", "asyncio", "fastapi", MAIN_OPTIONS),
]
"""Every --http with every --loop, each application twice."""

CLIENTS = ["tether", "websockets", "aiohttp", "node-ws"]

TIMEOUT = 10.0

BINARY = os.urandom(1000) * 100
"""100 kB that compress well: permessage-deflate (uvicorn's default) has work to do."""

_names = itertools.count()

ACCEPT = {"send": "websocket.accept"}


def _name(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


@pytest.fixture(params=TETHER_CONFIGS, ids=str)
def server(
    request: pytest.FixtureRequest, uvicorn_server: Callable[[UvicornConfig], Uvicorn]
) -> Uvicorn:
    """A uvicorn process running tether, in each configuration."""
    return uvicorn_server(request.param)


def _expected(close_reason: str) -> list[object]:
    return [
        {"type": "websocket.connect"},
        ACCEPT,
        {"type": "websocket.receive", "text": "str:5"},
        {"type": "websocket.receive", "bytes": f"bytes:{len(BINARY)}"},
        {"type": "websocket.disconnect", "code": 1000, "reason": close_reason},
    ]


async def _seen(server: Uvicorn, name: str, count: int) -> list[object]:
    """What the application saw, once it saw ``count`` messages (its record lags the client)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            seen = await asyncio.to_thread(server.seen, name)
            if len(seen) >= count:
                return seen
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("client", CLIENTS)
async def test_echo(server: Uvicorn, client: str) -> None:
    name = _name(client)
    if client == "node-ws":
        await _node_exchange(server, name)
        return
    uri = server.uri(f"/echo?id={name}")
    async with asyncio.timeout(TIMEOUT):
        if client == "tether":
            async with tether.connect(uri) as ws:
                assert ws.response is not None
                assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
                await ws.send("hello")
                assert await ws.recv() == "hello"
                await ws.send(BINARY)
                assert await ws.recv() == BINARY
                await ws.close(1000, "tether done")
            assert ws.close_code == 1000
        elif client == "websockets":
            async with websockets.asyncio.client.connect(uri, max_size=None) as wsc:
                await wsc.send("hello")
                assert await wsc.recv() == "hello"
                await wsc.send(BINARY)
                assert await wsc.recv() == BINARY
                await wsc.close(1000, "websockets done")
        else:
            async with aiohttp.ClientSession() as session, session.ws_connect(uri) as wsa:
                await wsa.send_str("hello")
                assert await wsa.receive_str() == "hello"
                await wsa.send_bytes(BINARY)
                assert await wsa.receive_bytes() == BINARY
                await wsa.close(code=1000, message=b"aiohttp done")
    assert await _seen(server, name, 5) == _expected(f"{client} done")


async def _node_exchange(server: Uvicorn, name: str) -> None:
    # Node's peer script echoes everything it receives: /ack answers once.
    node, _ = await NodePeer.start(
        "client.js", ready=False, url=server.uri(f"/ack?id={name}"), deflate="true"
    )
    try:
        opened = await node.opened()
        assert "permessage-deflate" in opened["extensions"]
        await node.send_fragments([b"hello"], binary=False)
        assert await node.received(1) == [(False, len("ack:hello"))]
        await node.close(1000, "node-ws done")
        assert await node.seen_close() == (1000, "node-ws done")
        assert node.errors == []
    finally:
        await node.aclose()
    assert await _seen(server, name, 5) == [
        {"type": "websocket.connect"},
        ACCEPT,
        {"type": "websocket.receive", "text": "str:5"},
        {"type": "websocket.receive", "text": "str:9"},
        {"type": "websocket.disconnect", "code": 1000, "reason": "node-ws done"},
    ]


async def test_chat_broadcast(server: Uvicorn) -> None:
    room = _name("room")
    uri = server.uri(f"/chat?room={room}")
    async with (
        asyncio.timeout(TIMEOUT),
        tether.connect(uri) as alice,
        websockets.asyncio.client.connect(uri) as bob,
        aiohttp.ClientSession() as session,
        session.ws_connect(uri) as carol,
    ):
        # The room is complete once a message from the last comer reaches everyone.
        await carol.send_str("carol is here")
        assert await alice.recv() == "carol is here"
        assert await bob.recv() == "carol is here"
        assert await carol.receive_str() == "carol is here"
        await alice.send("hi from alice")
        await bob.send("hi from bob")
        for recv in (alice.recv, bob.recv, carol.receive_str):
            assert sorted([await recv(), await recv()]) == ["hi from alice", "hi from bob"]
        await carol.close()
        await alice.send("after carol left")
        assert await bob.recv() == "after carol left"
        assert await alice.recv() == "after carol left"
