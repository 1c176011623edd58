"""What a server does when its handler returns or raises, on every API."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.backends import Backend, Face
from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.connection import State


def test_handler_return_closes_with_1000(backend: Backend) -> None:
    async def handler(ws: Face) -> None:
        await ws.send("bye")

    async def body() -> None:
        async with backend.serve(handler) as port:
            client = await backend.connect(f"ws://127.0.0.1:{port}/")
            assert await client.recv() == "bye"
            with pytest.raises(ConnectionClosedOK):
                await client.recv()
            await client.wait_closed()
            assert client.close_code == 1000

    backend.run(body)


def test_handler_error_closes_with_1011_and_is_logged(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async def handler(ws: Face) -> None:
        while (message := await ws.recv(timeout=None)) != "boom":
            await ws.send(message)
        raise RuntimeError("handler exploded")

    caplog.set_level(logging.ERROR, logger="tether.server")

    async def body() -> None:
        async with backend.serve(handler) as port:
            good = await backend.connect(f"ws://127.0.0.1:{port}/")
            bad = await backend.connect(f"ws://127.0.0.1:{port}/")
            await bad.send("boom")
            await good.send("fine")
            with pytest.raises(ConnectionClosedError):
                await bad.recv()
            await bad.wait_closed()
            assert bad.close_code == 1011
            assert bad.state is State.CLOSED
            # Only the connection whose handler failed is closed.
            assert await good.recv() == "fine"
            await good.close()
            assert good.close_code == 1000

    backend.run(body)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].name == "tether.server"
    assert "connection handler failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)


def test_connection_closed_in_handler_is_no_error(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    # A peer that leaves, cleanly or not, is no bug of the handler.
    ended: list[str] = []

    async def handler(ws: Face) -> None:
        try:
            await ws.messages()  # Ends quietly on a close, raises on a drop.
        finally:
            ended.append("ended")

    caplog.set_level(logging.DEBUG, logger="tether.server")

    async def body() -> None:
        async with backend.serve(handler) as port:
            clean = await backend.connect(f"ws://127.0.0.1:{port}/")
            await clean.send("one")
            await clean.close()
            dropped = await backend.connect(f"ws://127.0.0.1:{port}/")
            await dropped.send("one")
            dropped.abort()
            await backend.until(lambda: len(ended) == 2)
            # The server forgets both.
            await backend.until(lambda: not backend.server._connections)
            if backend.api == "asyncio":  # And its tasks.
                await backend.until(lambda: not backend.server._handlers)

    backend.run(body)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("ended by the closure" in r.getMessage() for r in caplog.records)


def test_other_connection_closed_in_handler_is_an_error(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    async def close(ws: Face) -> None:
        await ws.close()

    caplog.set_level(logging.ERROR, logger="tether.server")

    async def body() -> None:
        async with backend.serve(close) as other:
            peer = await backend.connect(f"ws://127.0.0.1:{other}/")
            await peer.wait_closed()

            async def relay(ws: Face) -> None:
                await peer.send("to a closed peer")  # Raises ConnectionClosed about *peer*.

            async with backend.serve(relay) as port:
                ws = await backend.connect(f"ws://127.0.0.1:{port}/")
                with pytest.raises(ConnectionClosedError):
                    await ws.recv()
                assert ws.close_code == 1011

    backend.run(body)
    messages: list[Any] = [r.getMessage() for r in caplog.records]
    assert any("connection handler failed" in message for message in messages)
