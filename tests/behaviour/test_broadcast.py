"""broadcast, on every API: one message to many connections."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from tests.backends import Backend, Face


async def hold(ws: Face) -> None:
    await ws.wait_closed()


async def broadcast(backend: Backend, *args: Any, **kwargs: Any) -> Any:
    """The API's broadcast (a coroutine function in tether.trio, as in websockets.trio)."""
    result = backend.module("broadcast").broadcast(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize(
    ("message", "text", "expected"),
    [
        ("é", None, "é"),
        ("é", False, "é".encode()),
        (b'{"a": 1}', True, '{"a": 1}'),
        (b"\x00", None, b"\x00"),
        (memoryview(b"\x00\x01"), None, b"\x00\x01"),
    ],
)
def test_broadcast_text_option(
    backend: Backend, message: str | bytes, text: bool | None, expected: str | bytes
) -> None:
    async def body() -> None:
        async with backend.serve(hold) as port:
            clients = [await backend.connect(f"ws://127.0.0.1:{port}/") for _ in range(3)]
            await backend.until(lambda: len(backend.server.connections) == 3)
            assert await broadcast(backend, backend.server.connections, message, text=text) == 3
            for ws in clients:
                assert await ws.recv() == expected
                await ws.close()

    backend.run(body)


def test_broadcast_arguments(backend: Backend) -> None:
    async def body() -> None:
        with pytest.raises(TypeError):
            await broadcast(backend, [], "x", True)  # raise_exceptions is keyword-only
        with pytest.raises(TypeError, match="cannot broadcast int"):
            await broadcast(backend, [], 42)

    backend.run(body)
