"""How connections end, on every API: codes, reasons, handlers, servers going away."""

from __future__ import annotations

import pytest

from tests.backends import Backend, Face
from tests.behaviour.raw import RawClient
from tether.exceptions import ConnectionClosedError, ConnectionClosedOK


@pytest.mark.parametrize("closer", ["client", "server"])
def test_close_code_and_reason_reach_both_sides(backend: Backend, closer: str) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            ours, theirs = (client, server) if closer == "client" else (server, client)
            await ours.close(4000, "bye")
            await theirs.wait_closed()
            assert theirs.close_code == 4000
            assert theirs.close_reason == "bye"
            assert ours.close_code == 4000
            with pytest.raises(ConnectionClosedError):
                await theirs.recv()

    backend.run(body)


def test_messages_sent_before_the_close_are_read_first(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            for index in range(5):
                await client.send(f"m{index}")
            await client.close()
            assert await server.messages() == [f"m{index}" for index in range(5)]
            with pytest.raises(ConnectionClosedOK):
                await server.recv()

    backend.run(body)


def test_handler_return_closes_with_1000(backend: Backend) -> None:
    async def handler(ws: Face) -> None:
        await ws.send(await ws.recv())

    async def body() -> None:
        async with backend.serve(handler) as port:
            client = await backend.connect(f"ws://127.0.0.1:{port}/")
            await client.send("once")
            assert await client.recv() == "once"
            await client.wait_closed()
            assert client.close_code == 1000

    backend.run(body)


def test_handler_error_closes_with_1011(backend: Backend) -> None:
    async def handler(ws: Face) -> None:
        raise RuntimeError("bug in the handler")

    async def body() -> None:
        async with backend.serve(handler) as port:
            client = await backend.connect(f"ws://127.0.0.1:{port}/")
            await client.wait_closed()
            assert client.close_code == 1011

    backend.run(body)


def test_server_closing_closes_connections_with_1001(backend: Backend) -> None:
    async def hold(ws: Face) -> None:
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(hold) as port:
            client = await backend.connect(f"ws://127.0.0.1:{port}/")
        await client.wait_closed()
        assert client.close_code == 1001
        assert await client.messages() == []

    backend.run(body)


def test_close_timeout_drops_a_peer_that_never_answers(backend: Backend) -> None:
    async def body() -> None:
        handed: list[Face] = []

        async def hold(ws: Face) -> None:
            handed.append(ws)
            await ws.close(1000)

        async with backend.serve(hold, close_timeout=0.2) as port:
            raw = await backend.in_thread(lambda: RawClient(port))
            try:
                # The raw client reads the close frame and never answers it.
                assert await backend.in_thread(raw.read_close_code) == 1000
                await backend.in_thread(raw.wait_eof)
                await backend.until(lambda: handed)
                await handed[0].wait_closed()
                assert handed[0].close_code == 1006
            finally:
                raw.close()

    backend.run(body)
