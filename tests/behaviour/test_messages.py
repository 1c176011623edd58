"""Messages cross the connection whole, in order and typed, on every API."""

from __future__ import annotations

import pytest

from tests.backends import Backend

TEXT = "tether: héllo wörld, 1 € = 😀"


def test_text_and_binary_round_trip(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            for message in [TEXT, b"\x00\xff" * 100, "", b"", "x" * 70_000, bytes(200_000)]:
                await client.send(message)
                assert await server.recv() == message
                await server.send(message)
                assert await client.recv() == message

    backend.run(body)


def test_decode_converts_both_ways(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            await client.send(TEXT.encode())
            assert await server.recv(decode=True) == TEXT
            await client.send(TEXT)
            assert await server.recv(decode=False) == TEXT.encode()

    backend.run(body)


def test_text_option_forces_the_opcode(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            await client.send(TEXT.encode(), text=True)
            assert await server.recv() == TEXT
            await client.send(TEXT, text=False)
            assert await server.recv() == TEXT.encode()

    backend.run(body)


def test_fragmented_messages_arrive_whole(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            await client.send(["héllo ", "", "wörld"])
            assert await server.recv() == "héllo wörld"
            await server.send([b"a", b"b" * 70_000, b"c"])
            assert await client.recv() == b"a" + b"b" * 70_000 + b"c"

    backend.run(body)


def test_many_messages_keep_their_order(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair(server={"max_queue": 2}) as (client, server):
            for index in range(200):
                await client.send(str(index))
            assert [await server.recv() for _ in range(200)] == [str(i) for i in range(200)]

    backend.run(body)


def test_recv_timeout_loses_no_message(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            with pytest.raises(TimeoutError):
                await server.recv(timeout=0.05)
            await client.send("late")
            assert await server.recv() == "late"

    backend.run(body)


def test_compression_is_negotiated_and_transparent(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            assert "permessage-deflate" in client.response_headers["Sec-WebSocket-Extensions"]
            message = "compressible " * 10_000
            await client.send(message)
            assert await server.recv() == message
            await server.send(message.encode())
            assert await client.recv() == message.encode()

    backend.run(body)


def test_ping_measures_latency_and_pong_goes_out(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            assert await client.ping(b"client") >= 0.0
            assert await server.ping("server") >= 0.0
            assert client.latency >= 0.0
            await client.pong(b"heartbeat")
            await client.send("after the pong")
            assert await server.recv() == "after the pong"

    backend.run(body)
