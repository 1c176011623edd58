"""send: single messages, fragments from iterables, bad input, on every API and either end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.backends import Backend, Face, Side, sided
from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import Close
from tether.protocol.connection import State


def kinds_of(backend: Backend) -> list[str]:
    """The iterables each API sends as fragments: the threading API has no async ones."""
    kinds = ["list", "generator"]
    return kinds if backend.api == "sync" else [*kinds, "async generator"]


def pieces_of(kind: str, items: list[Any]) -> Any:
    """The same pieces as a list, a generator or an async generator."""
    if kind == "list":
        return list(items)
    if kind == "generator":
        return (item for item in items)

    async def agen() -> AsyncIterator[Any]:
        for item in items:
            yield item

    return agen()


class Boom(Exception):
    pass


def failing(items: list[Any]) -> Iterator[Any]:
    yield from items
    raise Boom("the source broke")


async def failing_async(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
    raise Boom("the source broke")


def makers_of(backend: Backend) -> list[Any]:
    """Iterables that fail after their items, in each kind the API sends."""
    return [failing] if backend.api == "sync" else [failing, failing_async]


async def assert_open(ours: Face, theirs: Face) -> None:
    """The connection still carries messages."""
    assert ours.state is State.OPEN
    await ours.send("still open")
    assert await theirs.recv() == "still open"


def test_send_one_message(backend: Backend, side: Side) -> None:
    cases: list[tuple[Any, str | bytes]] = [
        ("text", "text"),
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"_memoryview_")[1:-1], b"memoryview"),
        ("", ""),
        (b"", b""),
    ]

    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for message, expected in cases:
                await ours.send(message)
                received = await theirs.recv()
                assert (type(received), received) == (type(expected), expected)

    backend.run(body)


def test_text_option_forces_the_opcode(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await ours.send(b"caf\xc3\xa9", text=True)
            await ours.send(memoryview(b"mv"), text=True)
            await ours.send("café", text=False)
            assert await theirs.recv() == "café"
            assert await theirs.recv() == "mv"
            assert await theirs.recv() == b"caf\xc3\xa9"

    backend.run(body)


def test_send_fragments(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for kind in kinds_of(backend):
                await ours.send(pieces_of(kind, ["tê", "", "xt"]))
                await ours.send(pieces_of(kind, [b"by", bytearray(b"te"), memoryview(b"s")]))
                await ours.send(pieces_of(kind, [b"as ", b"text"]), text=True)
                await ours.send(pieces_of(kind, ["as ", "binary"]), text=False)
                assert await theirs.recv() == "têxt"
                assert await theirs.recv() == b"bytes"
                assert await theirs.recv() == "as text"
                assert await theirs.recv() == b"as binary"
                # Each piece is a frame, and an empty final frame ends the message.
                await ours.send(pieces_of(kind, ["a", "b", "c"]))
                assert [piece async for piece in theirs.recv_streaming()] == ["a", "b", "c", ""]
                # Like websockets: no frame at all, not an empty message.
                await ours.send(pieces_of(kind, []))
                await assert_open(ours, theirs)

    backend.run(body)


@pytest.mark.parametrize("items", [["a", b"b"], [b"a", "b"], [b"a", 1]])
def test_send_mixed_fragments_fail_the_connection(
    backend: Backend, side: Side, items: list[Any]
) -> None:
    async def body() -> None:
        for kind in kinds_of(backend):
            async with backend.pair() as ends:
                ours, theirs = sided(side, *ends)
                with pytest.raises(TypeError):
                    await ours.send(pieces_of(kind, items))
                # The first fragment is out: the message cannot be finished.
                with pytest.raises(ConnectionClosedError) as raised:
                    await theirs.recv()
                assert raised.value.rcvd == Close(1011, "error in fragmented message")
                await ours.wait_closed()

    backend.run(body)


def test_send_invalid_first_fragment_raises_and_keeps_the_connection(
    backend: Backend, side: Side
) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for kind in kinds_of(backend):
                with pytest.raises(TypeError):
                    await ours.send(pieces_of(kind, [1, 2]))
                # Nothing was sent: the connection goes on.
                await assert_open(ours, theirs)

    backend.run(body)


def test_send_error_mid_message_fails_with_1011(backend: Backend, side: Side) -> None:
    async def body() -> None:
        for make in makers_of(backend):
            async with backend.pair() as ends:
                ours, theirs = sided(side, *ends)
                with pytest.raises(Boom, match="the source broke"):
                    await ours.send(make(["a", "b"]))
                with pytest.raises(ConnectionClosedError) as raised:
                    await theirs.recv()
                assert raised.value.rcvd == Close(1011, "error in fragmented message")
                await ours.wait_closed()
                assert ours.close_code in (1011, 1006)
                assert theirs.close_code == 1011
                with pytest.raises(ConnectionClosedError):
                    await ours.send("too late")

    backend.run(body)


def test_send_error_before_first_fragment_keeps_the_connection(
    backend: Backend, side: Side
) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for make in makers_of(backend):
                with pytest.raises(Boom):
                    await ours.send(make([]))
                await assert_open(ours, theirs)

    backend.run(body)


def test_send_unsupported_type_raises_type_error(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for message in [{"a": 1}, {"key": "value"}, 42, None, 1.5]:
                with pytest.raises(TypeError):
                    await ours.send(message)
                await assert_open(ours, theirs)

    backend.run(body)


def test_send_after_close_raises(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, _ = sided(side, *ends)
            await ours.close()
            messages: list[Any] = ["text", b"bytes", ["a", "b"]]
            if backend.api != "sync":
                messages.append(pieces_of("async generator", ["a"]))
            for message in messages:
                with pytest.raises(ConnectionClosedOK):
                    await ours.send(message)

    backend.run(body)


def test_send_after_peer_failed_raises_error(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.close(1011)
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.send("late")
            assert raised.value.code == 1011

    backend.run(body)
