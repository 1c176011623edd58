"""tether.trio servers behind proxies (trusted_proxies, PROXY protocol), limits, route(Map)."""

from __future__ import annotations

import functools
import uuid

import pytest
import trio
from werkzeug.routing import Map, Rule

import tether.trio
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Limits
from tether.trio import ServerConnection
from tether.trio.router import route

from .conftest import serving, trio_test, uri_of

PROXY_V1 = b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"
PROXY_V2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x01\x7f\x00\x00\x01\x15\xb3\x00\x50"


async def tell_address(ws: ServerConnection) -> None:
    host, port = ws.remote_address[:2]
    await ws.send(f"{host} {port}")


async def ask(uri: str, **options: object) -> str:
    async with tether.trio.connect(uri, proxy=None, **options) as ws:  # type: ignore[arg-type]
        answer = await ws.recv()
        assert isinstance(answer, str)
        return answer


@trio_test
async def test_trusted_proxies_headers() -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    async with serving(tell_address, trusted_proxies=["127.0.0.1"]) as server:
        # The peer, 127.0.0.1, is trusted: the rightmost untrusted address is the client.
        assert await ask(uri_of(server), additional_headers=forwarded) == "198.51.100.1 0"
        assert await ask(uri_of(server), additional_headers={"X-Real-IP": "192.0.2.7"}) == (
            "192.0.2.7 0"
        )
        assert (await ask(uri_of(server))).startswith("127.0.0.1 ")
    async with serving(tell_address, trusted_proxies=["10.0.0.0/8"]) as server:
        # An untrusted peer's headers are ignored.
        assert (await ask(uri_of(server), additional_headers=forwarded)).startswith("127.0.0.1 ")


async def connected(server: tether.trio.Server, header: bytes) -> trio.SocketStream:
    host, port = server.sockets[0].getsockname()[:2]
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(header)
    return stream


@pytest.mark.parametrize("header", [PROXY_V1, PROXY_V2], ids=["v1", "v2"])
@trio_test
async def test_proxy_protocol(header: bytes) -> None:
    async with serving(tell_address, trusted_proxies=["127.0.0.1"], proxy_protocol=True) as server:
        stream = await connected(server, header)
        assert await ask(uri_of(server), stream=stream) == "198.51.100.1 5555"


@pytest.mark.parametrize(
    ("trusted", "header"),
    [(["10.0.0.1"], PROXY_V1), (["127.0.0.1"], b"GET / HTTP/1.1\r\n"), (["127.0.0.1"], b"")],
    ids=["untrusted-peer", "no-header", "nothing"],
)
@trio_test
async def test_proxy_protocol_refused(trusted: list[str], header: bytes) -> None:
    async with serving(tell_address, trusted_proxies=trusted, proxy_protocol=True) as server:
        stream = await connected(server, header)
        if not header:
            await stream.send_eof()
        # The server drops the connection at once, without a word.
        assert await stream.receive_some(1024) == b""
        await stream.aclose()


@trio_test
async def test_proxy_protocol_needs_trusted_proxies() -> None:
    with pytest.raises(ValueError, match="needs trusted_proxies"):
        await tether.trio.serve(tell_address, 0, proxy_protocol=True)


@trio_test
async def test_limits() -> None:
    headers = {f"X-Header-{i}": "x" for i in range(10)}
    async with serving(tell_address, limits=Limits(max_headers=12)) as server:
        with pytest.raises(InvalidStatus) as caught:
            await ask(uri_of(server), additional_headers=headers)
        assert caught.value.response.status_code == 431
        assert (await ask(uri_of(server))).startswith("127.0.0.1 ")


async def channel(ws: ServerConnection, channel_id: uuid.UUID) -> None:
    await ws.send(f"channel {channel_id.hex} {type(channel_id).__name__}")


async def index(ws: ServerConnection) -> None:
    await ws.send("index")


@trio_test
async def test_route_with_a_werkzeug_map() -> None:
    url_map = Map(
        [
            Rule("/", endpoint=index),
            Rule("/channel/<uuid:channel_id>", endpoint=channel),
            Rule("/old", redirect_to="/"),
        ]
    )
    channel_id = uuid.uuid4()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(route, url_map, 0, host="127.0.0.1"))
        async with server:
            assert await ask(uri_of(server, f"/channel/{channel_id}")) == (
                f"channel {channel_id.hex} UUID"
            )
            # The rule's redirect, followed by the client.
            assert await ask(uri_of(server, "/old")) == "index"
            with pytest.raises(InvalidStatus, match="404"):
                await ask(uri_of(server, "/nowhere"))
