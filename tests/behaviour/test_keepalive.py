"""Keepalive pings, on every API: answered pings keep the connection, unanswered ones end it."""

from __future__ import annotations

from tests.backends import Backend, Face
from tests.behaviour.raw import RawClient


def test_keepalive_pings_keep_an_idle_connection_open(backend: Backend) -> None:
    async def body() -> None:
        options = {"ping_interval": 0.05, "ping_timeout": 0.5}
        async with backend.pair(client=options, server=options) as (client, server):
            await backend.sleep(0.4)
            await client.send("still here")
            assert await server.recv() == "still here"
            # Pongs came back: the latency was measured.
            assert client.latency > 0.0
            assert server.latency > 0.0

    backend.run(body)


def test_unanswered_keepalive_ping_fails_with_1011(backend: Backend) -> None:
    async def body() -> None:
        handed: list[Face] = []

        async def hold(ws: Face) -> None:
            handed.append(ws)
            await ws.wait_closed()

        async with backend.serve(hold, ping_interval=0.05, ping_timeout=0.1) as port:
            # The raw client reads nothing and answers no ping.
            raw = await backend.in_thread(lambda: RawClient(port))
            try:
                await backend.until(lambda: handed)
                await handed[0].wait_closed()
                assert handed[0].close_code == 1006
                assert await backend.in_thread(raw.read_close_code) == 1011
            finally:
                raw.close()

    backend.run(body)
