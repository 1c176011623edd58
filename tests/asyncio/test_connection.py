"""What only the asyncio connection does: a fragmented send between other tasks' sends.

The behaviour every API shares (receiving, sending, pings, closing,
attributes) is tested once for all of them in ``tests/behaviour``.
Every test runs with ``ours`` on the client side and on the server side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tether.exceptions import ConnectionClosedOK

from .pairs import Pair


async def gated(pieces: list[Any], gate: asyncio.Event, after: int = 1) -> AsyncIterator[Any]:
    """Yield ``pieces``, waiting for ``gate`` after the first ``after`` of them."""
    for index, piece in enumerate(pieces):
        if index == after:
            await gate.wait()
        yield piece


async def test_ping_returns_a_future(pair: Pair) -> None:
    waiter = await pair.ours.ping()
    assert isinstance(waiter, asyncio.Future)
    assert await waiter >= 0


@pytest.mark.parametrize("more", [True, False])
async def test_fragmented_send_interrupted_by_the_close(pair: Pair, more: bool) -> None:
    gate = asyncio.Event()

    async def pieces() -> AsyncIterator[str]:
        yield "a"
        await gate.wait()
        if more:
            yield "b"

    sending = asyncio.create_task(pair.ours.send(pieces()))
    streaming = pair.theirs.recv_streaming()
    assert await anext(streaming) == "a"
    await pair.theirs.close(1001)
    gate.set()
    # Whether another piece or only the end of the message was left to send.
    with pytest.raises(ConnectionClosedOK):
        await sending
    with pytest.raises(ConnectionClosedOK):
        await anext(streaming)


@pytest.mark.parametrize("other", ["text", b"bytes", ["x", "y"]])
async def test_send_waits_for_a_fragmented_message_in_progress(pair: Pair, other: Any) -> None:
    gate = asyncio.Event()
    fragmented = asyncio.create_task(pair.ours.send(gated([b"frag", b"mented"], gate)))
    pieces = pair.theirs.recv_streaming()
    assert await anext(pieces) == b"frag"
    single = asyncio.create_task(pair.ours.send(other))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not single.done()
    gate.set()
    await fragmented
    await single
    assert [piece async for piece in pieces] == [b"mented", b""]
    expected = "xy" if isinstance(other, list) else other
    assert await pair.theirs.recv() == expected
