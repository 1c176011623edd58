"""Messages cross the connection whole, in order and typed, on every API."""

from __future__ import annotations

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
