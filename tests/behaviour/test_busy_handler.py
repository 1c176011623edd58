"""A handler busy elsewhere, not receiving: its connection still answers, on every API.

While no task reads a connection, something else must (tether.sync's
background reader or watcher, tether.trio's watcher, asyncio's protocol
callbacks): pings are answered, keepalive pongs are seen, and a closing
handshake completes. Each test keeps the server's handler away from the
connection for longer than the client would wait.
"""

from __future__ import annotations

from tests.backends import Backend, Face, echo_until_closed
from tether.exceptions import ConnectionClosed

BUSY = 1.0
"""How long the server's handler does something else before it reads."""


def test_pings_and_keepalive_are_answered_while_the_handler_does_not_read(
    backend: Backend,
) -> None:
    async def busy_then_echo(ws: Face) -> None:
        await backend.sleep(BUSY)
        await echo_until_closed(ws)

    async def body() -> None:
        # The server's keepalive pings wait 0.2 s at most for their pong: it
        # fails the connection unless the pongs are read while the handler
        # sleeps.
        keepalive = {"ping_interval": 0.05, "ping_timeout": 0.2}
        async with backend.serve(busy_then_echo, **keepalive) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/", ping_interval=None)
            # Pongs come while the handler sleeps, several times over.
            for _ in range(3):
                assert await backend.within(ws.ping(), BUSY / 2) >= 0.0
                await backend.sleep(0.1)
            await ws.send("after")
            assert await ws.recv() == "after"
            assert ws.state.name == "OPEN"
            await ws.close()

    backend.run(body)


def test_closing_handshake_completes_while_the_handler_does_not_read(backend: Backend) -> None:
    codes: list[int | None] = []

    async def busy_then_read(ws: Face) -> None:
        await backend.sleep(BUSY)
        try:
            await ws.recv(timeout=None)
        except ConnectionClosed:
            codes.append(ws.close_code)

    async def body() -> None:
        async with backend.serve(busy_then_read) as port:
            # The client gives up on the closing handshake after 0.3 s: if the
            # server did not answer while its handler sleeps, it would see
            # no close frame (1006).
            ws = await backend.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.3)
            await ws.close(4000, "bye")
            assert ws.close_code == 4000
            assert ws.close_reason == "bye"
            await backend.until(lambda: codes)
        assert codes == [4000]

    backend.run(body)


def test_a_silent_handler_holds_messages_for_later(backend: Backend) -> None:
    received: list[str] = []

    async def busy_then_read(ws: Face) -> None:
        await backend.sleep(BUSY)
        received.extend([await ws.recv(), await ws.recv()])
        await ws.send("done")

    async def body() -> None:
        async with backend.serve(busy_then_read, max_queue=1) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/")
            await ws.send("one")
            await ws.send("two")
            assert await ws.recv() == "done"
            await ws.close()
        assert received == ["one", "two"]

    backend.run(body)
