"""max_size, max_queue and write_limit, on every API."""

from __future__ import annotations

import pytest

from tests.backends import Backend
from tether.exceptions import ConnectionClosedError


@pytest.mark.parametrize("compression", ["deflate", None])
def test_message_over_max_size_fails_with_1009(backend: Backend, compression: str | None) -> None:
    async def body() -> None:
        options = {"max_size": 1000, "compression": compression}
        async with backend.pair(server=options, client={"compression": compression}) as (
            client,
            server,
        ):
            await client.send("x" * 1000)
            assert await server.recv() == "x" * 1000
            await client.send("x" * 1001)
            await client.wait_closed()
            assert client.close_code == 1009
            with pytest.raises(ConnectionClosedError):
                await server.recv()

    backend.run(body)


def test_max_queue_pauses_reading_without_losing_messages(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair(server={"max_queue": 1}) as (client, server):
            big = b"q" * 10_000
            for _ in range(50):
                await client.send(big)
            # Nothing read yet: the server stopped reading after one message,
            # yet every message comes, in order, once read.
            await backend.sleep(0.05)
            for _ in range(50):
                assert await server.recv() == big
            assert await client.ping() >= 0.0

    backend.run(body)


def test_send_to_a_peer_that_does_not_read_waits_then_goes_on(backend: Backend) -> None:
    # The threading API has no write buffer of its own: sendall waits.
    limit = {} if backend.kind == "threads" else {"write_limit": 1024}

    async def body() -> None:
        async with backend.pair(client={"max_queue": 1}, server=limit) as (client, server):
            chunk = bytes(256 * 1024)
            count = 40  # 10 MiB: more than the socket buffers hold

            async def sender() -> None:
                for _ in range(count):
                    await server.send(chunk)

            async def reader() -> None:
                for _ in range(count):
                    assert await client.recv() == chunk

            # The sender blocks until the client reads: run both at once.
            await backend.within(backend.together(sender, reader))

    backend.run(body)
