"""The asyncio connection that both roles share: receiving, sending, pings, closing, attributes.

Every test runs with ``ours`` on the client side and on the server side.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any

import pytest

from tether.asyncio.connection import Connection
from tether.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)
from tether.log import ConnectionLogger
from tether.protocol.close import Close
from tether.protocol.connection import State
from tether.protocol.events import CloseReceived, Ping, Pong

from .conftest import ServerFactory
from .pairs import Pair, Side, open_pair, open_raw_pair, until


async def gated(pieces: list[Any], gate: asyncio.Event, after: int = 1) -> AsyncIterator[Any]:
    """Yield ``pieces``, waiting for ``gate`` after the first ``after`` of them."""
    for index, piece in enumerate(pieces):
        if index == after:
            await gate.wait()
        yield piece


async def collect(ws: Connection, **kwargs: Any) -> list[str | bytes]:
    return [piece async for piece in ws.recv_streaming(**kwargs)]


async def iterate(ws: Connection, received: list[str | bytes]) -> None:
    """Run ``async for`` over ``ws``, keeping what it gives even if it raises."""
    async for message in ws:
        received.append(message)


def future(waiter: Awaitable[float]) -> asyncio.Future[float]:
    """What ping() returns is a future: check and say so."""
    assert isinstance(waiter, asyncio.Future)
    return waiter


def state_of(ws: Connection) -> State:
    """The state, read through a call so that type narrowing does not stick across awaits."""
    return ws.state


# recv()


async def test_recv_text_gives_str_and_binary_gives_bytes(pair: Pair) -> None:
    await pair.theirs.send("café")
    await pair.theirs.send(b"\x00\xff")
    text = await pair.ours.recv()
    binary = await pair.ours.recv()
    assert (type(text), text) == (str, "café")
    assert (type(binary), binary) == (bytes, b"\x00\xff")


async def test_recv_decode_true_decodes_binary(pair: Pair) -> None:
    await pair.theirs.send(b"caf\xc3\xa9")
    await pair.theirs.send(b"\xff\xfe")
    await pair.theirs.send("next")
    assert await pair.ours.recv(decode=True) == "café"
    with pytest.raises(UnicodeDecodeError):
        await pair.ours.recv(decode=True)
    # The undecodable message was consumed; the connection goes on.
    assert await pair.ours.recv(decode=True) == "next"


async def test_recv_decode_false_encodes_text(pair: Pair) -> None:
    await pair.theirs.send("café")
    await pair.theirs.send(b"raw")
    assert await pair.ours.recv(decode=False) == b"caf\xc3\xa9"
    assert await pair.ours.recv(decode=False) == b"raw"


async def test_recv_timeout_loses_no_message(pair: Pair) -> None:
    with pytest.raises(TimeoutError):
        await pair.ours.recv(timeout=0.01)
    await pair.theirs.send("late")
    assert await pair.ours.recv() == "late"


async def test_recv_timeout_zero_returns_a_waiting_message(pair: Pair) -> None:
    await pair.theirs.send("here")
    await until(lambda: len(pair.ours._messages) == 1)
    assert await pair.ours.recv(timeout=0) == "here"


async def test_recv_timeout_with_half_a_message_keeps_it(pair: Pair) -> None:
    gate = asyncio.Event()
    sending = asyncio.create_task(pair.theirs.send(gated(["he", "llo"], gate)))
    await until(lambda: pair.ours._messages.pending)
    with pytest.raises(TimeoutError):
        await pair.ours.recv(timeout=0.01)
    gate.set()
    assert await pair.ours.recv() == "hello"
    await sending


async def test_concurrent_recv_raises_concurrency_error(pair: Pair) -> None:
    first = asyncio.create_task(pair.ours.recv())
    await asyncio.sleep(0)
    with pytest.raises(ConcurrencyError):
        await pair.ours.recv()
    await pair.theirs.send("for the first")
    assert await first == "for the first"


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        (1000, ConnectionClosedOK),
        (1001, ConnectionClosedOK),
        (1011, ConnectionClosedError),
        (4000, ConnectionClosedError),
    ],
)
async def test_recv_after_close_reads_every_message_then_raises(
    pair: Pair, code: int, exc_type: type[ConnectionClosed]
) -> None:
    await pair.theirs.send("one")
    await pair.theirs.send(b"two")
    await pair.theirs.close(code, "bye")
    assert pair.ours.state is State.CLOSED
    assert await pair.ours.recv() == "one"
    assert await pair.ours.recv() == b"two"
    for _ in range(2):  # Raised again on each call.
        with pytest.raises(exc_type) as raised:
            await pair.ours.recv()
        assert type(raised.value) is exc_type
        assert raised.value.rcvd == Close(code, "bye")
        # The engine echoes the close whole: code and reason.
        assert raised.value.sent == Close(code, "bye")
        assert raised.value.rcvd_then_sent is True
        assert (raised.value.code, raised.value.reason) == (code, "bye")


async def test_recv_after_our_close_raises_ok(pair: Pair) -> None:
    await pair.ours.close()
    with pytest.raises(ConnectionClosedOK) as raised:
        await pair.ours.recv()
    assert raised.value.sent == Close(1000, "")
    assert raised.value.rcvd == Close(1000, "")
    assert raised.value.rcvd_then_sent is False


async def test_recv_after_abnormal_drop_raises_1006(pair: Pair) -> None:
    await pair.theirs.send("before")
    assert pair.theirs.transport is not None
    pair.theirs.transport.abort()
    await pair.ours.wait_closed()
    assert await pair.ours.recv() == "before"
    with pytest.raises(ConnectionClosedError) as raised:
        await pair.ours.recv()
    assert (raised.value.rcvd, raised.value.sent, raised.value.code) == (None, None, 1006)
    assert pair.ours.close_code == 1006
    assert pair.ours.close_reason == ""


async def test_waiting_recv_is_woken_by_the_close(pair: Pair) -> None:
    receiving = asyncio.create_task(pair.ours.recv())
    await asyncio.sleep(0)
    await pair.theirs.close(1001)
    with pytest.raises(ConnectionClosedOK):
        await receiving


# recv_streaming()


async def test_recv_streaming_yields_fragments_as_they_arrive(pair: Pair) -> None:
    gate = asyncio.Event()
    sending = asyncio.create_task(pair.theirs.send(gated(["first ", "second"], gate)))
    pieces = pair.ours.recv_streaming()
    assert await anext(pieces) == "first "
    # The second fragment is not even produced yet.
    assert not sending.done()
    gate.set()
    # The message ends with an empty final frame, which arrives as an empty piece.
    assert [piece async for piece in pieces] == ["second", ""]
    await sending


async def test_recv_streaming_gives_a_whole_message_as_one_piece(pair: Pair) -> None:
    await pair.theirs.send("whole")
    await pair.theirs.send(b"bin")
    assert await collect(pair.ours) == ["whole"]
    assert await collect(pair.ours) == [b"bin"]


async def test_recv_streaming_decode(pair: Pair) -> None:
    await pair.theirs.send([b"ab", b"cd"])
    await pair.theirs.send(["é", "f"])
    await pair.theirs.send(b"whole")
    assert await collect(pair.ours, decode=True) == ["ab", "cd", ""]
    assert await collect(pair.ours, decode=False) == [b"\xc3\xa9", b"f", b""]
    assert await collect(pair.ours, decode=True) == ["whole"]


async def test_recv_streaming_decodes_a_character_split_across_fragments(pair: Pair) -> None:
    # "é" is C3 A9: the first fragment ends in the middle of it.
    await pair.theirs.send([b"caf\xc3", b"\xa9!"])
    assert "".join(map(str, await collect(pair.ours, decode=True))) == "café!"


async def test_recv_streaming_invalid_utf8_raises(pair: Pair) -> None:
    await pair.theirs.send([b"ok", b"\xff"])
    with pytest.raises(UnicodeDecodeError):
        await collect(pair.ours, decode=True)


async def test_recv_streaming_then_recv(pair: Pair) -> None:
    await pair.theirs.send(["a", "b"])
    await pair.theirs.send("c")
    assert await collect(pair.ours) == ["a", "b", ""]
    assert await pair.ours.recv() == "c"


async def test_recv_during_recv_streaming_raises_concurrency_error(pair: Pair) -> None:
    gate = asyncio.Event()
    sending = asyncio.create_task(pair.theirs.send(gated(["a", "b"], gate)))
    pieces = pair.ours.recv_streaming()
    assert await anext(pieces) == "a"
    with pytest.raises(ConcurrencyError):
        await pair.ours.recv()
    gate.set()
    assert [piece async for piece in pieces] == ["b", ""]
    await sending


async def test_recv_streaming_during_recv_raises_concurrency_error(pair: Pair) -> None:
    receiving = asyncio.create_task(pair.ours.recv())
    await asyncio.sleep(0)
    with pytest.raises(ConcurrencyError):
        await anext(pair.ours.recv_streaming())
    await pair.theirs.send("x")
    assert await receiving == "x"


async def test_recv_streaming_after_close_raises(pair: Pair) -> None:
    await pair.theirs.close()
    with pytest.raises(ConnectionClosedOK):
        await collect(pair.ours)


# async for


@pytest.mark.parametrize("code", [1000, 1001])
async def test_iteration_ends_quietly_on_normal_closure(pair: Pair, code: int) -> None:
    await pair.theirs.send("a")
    await pair.theirs.send(b"b")
    await pair.theirs.close(code)
    assert [message async for message in pair.ours] == ["a", b"b"]


async def test_iteration_raises_on_1011(pair: Pair) -> None:
    await pair.theirs.send("a")
    await pair.theirs.close(1011, "crash")
    received: list[str | bytes] = []
    with pytest.raises(ConnectionClosedError) as raised:
        await iterate(pair.ours, received)
    assert received == ["a"]
    assert raised.value.code == 1011
    assert raised.value.reason == "crash"


async def test_iteration_raises_on_abnormal_drop(pair: Pair) -> None:
    await pair.theirs.send("a")
    assert pair.theirs.transport is not None
    pair.theirs.transport.abort()
    received: list[str | bytes] = []
    with pytest.raises(ConnectionClosedError) as raised:
        await iterate(pair.ours, received)
    assert received == ["a"]
    assert raised.value.code == 1006


# send()


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("text", "text"),
        (b"bytes", b"bytes"),
        (bytearray(b"bytearray"), b"bytearray"),
        (memoryview(b"_memoryview_")[1:-1], b"memoryview"),
        ("", ""),
        (b"", b""),
    ],
)
async def test_send_one_message(pair: Pair, message: Any, expected: str | bytes) -> None:
    await pair.ours.send(message)
    received = await pair.theirs.recv()
    assert (type(received), received) == (type(expected), expected)


async def test_send_text_true_sends_bytes_as_text(pair: Pair) -> None:
    await pair.ours.send(b"caf\xc3\xa9", text=True)
    await pair.ours.send(memoryview(b"mv"), text=True)
    assert await pair.theirs.recv() == "café"
    assert await pair.theirs.recv() == "mv"


async def test_send_text_false_sends_str_as_binary(pair: Pair) -> None:
    await pair.ours.send("café", text=False)
    assert await pair.theirs.recv() == b"caf\xc3\xa9"


def pieces_of(kind: str, items: list[Any]) -> Any:
    """The same pieces as a list, a generator or an async generator."""
    if kind == "list":
        return list(items)
    if kind == "generator":
        return (item for item in items)

    async def agen() -> AsyncIterator[Any]:
        for item in items:
            await asyncio.sleep(0)
            yield item

    return agen()


ITERABLE_KINDS = ["list", "generator", "async generator"]


@pytest.mark.parametrize("kind", ITERABLE_KINDS)
async def test_send_fragments(pair: Pair, kind: str) -> None:
    await pair.ours.send(pieces_of(kind, ["tê", "", "xt"]))
    await pair.ours.send(pieces_of(kind, [b"by", bytearray(b"te"), memoryview(b"s")]))
    await pair.ours.send(pieces_of(kind, [b"as ", b"text"]), text=True)
    await pair.ours.send(pieces_of(kind, ["as ", "binary"]), text=False)
    assert await pair.theirs.recv() == "têxt"
    assert await pair.theirs.recv() == b"bytes"
    assert await pair.theirs.recv() == "as text"
    assert await pair.theirs.recv() == b"as binary"


@pytest.mark.parametrize("kind", ITERABLE_KINDS)
async def test_send_fragments_arrive_as_frames(pair: Pair, kind: str) -> None:
    await pair.ours.send(pieces_of(kind, ["a", "b", "c"]))
    assert await collect(pair.theirs) == ["a", "b", "c", ""]


@pytest.mark.parametrize("kind", ITERABLE_KINDS)
async def test_send_empty_iterable_sends_nothing(pair: Pair, kind: str) -> None:
    # Like websockets: no frame at all, not an empty message.
    await pair.ours.send(pieces_of(kind, []))
    await pair.ours.send("next")
    assert await pair.theirs.recv() == "next"
    assert pair.ours.state is State.OPEN


@pytest.mark.parametrize("kind", ITERABLE_KINDS)
@pytest.mark.parametrize("items", [["a", b"b"], [b"a", "b"], [b"a", 1]])
async def test_send_mixed_fragments_fail_the_connection(
    pair: Pair, kind: str, items: list[Any]
) -> None:
    with pytest.raises(TypeError):
        await pair.ours.send(pieces_of(kind, items))
    # The first fragment is out: the message cannot be finished.
    with pytest.raises(ConnectionClosedError) as raised:
        await pair.theirs.recv()
    assert raised.value.rcvd == Close(1011, "error in fragmented message")
    await pair.ours.wait_closed()


@pytest.mark.parametrize("kind", ITERABLE_KINDS)
async def test_send_invalid_first_fragment_raises_and_keeps_the_connection(
    pair: Pair, kind: str
) -> None:
    with pytest.raises(TypeError):
        await pair.ours.send(pieces_of(kind, [1, 2]))
    # Nothing was sent: the connection goes on.
    assert pair.ours.state is State.OPEN
    await pair.ours.send("still open")
    assert await pair.theirs.recv() == "still open"


class Boom(Exception):
    pass


def failing(items: list[Any]) -> Iterator[Any]:
    yield from items
    raise Boom


async def failing_async(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item
    raise Boom


@pytest.mark.parametrize("make", [failing, failing_async])
async def test_send_error_mid_message_fails_with_1011(pair: Pair, make: Any) -> None:
    with pytest.raises(Boom):
        await pair.ours.send(make(["a", "b"]))
    with pytest.raises(ConnectionClosedError) as raised:
        await pair.theirs.recv()
    assert raised.value.rcvd == Close(1011, "error in fragmented message")
    await pair.ours.wait_closed()
    assert pair.ours.close_code in (1011, 1006)
    assert pair.theirs.close_code == 1011


@pytest.mark.parametrize("make", [failing, failing_async])
async def test_send_error_before_first_fragment_keeps_the_connection(pair: Pair, make: Any) -> None:
    with pytest.raises(Boom):
        await pair.ours.send(make([]))
    assert pair.ours.state is State.OPEN
    await pair.ours.send("fine")
    assert await pair.theirs.recv() == "fine"


@pytest.mark.parametrize("message", [{"a": 1}, {"key": "value"}, 42, None, 1.5])
async def test_send_unsupported_type_raises_type_error(pair: Pair, message: Any) -> None:
    with pytest.raises(TypeError):
        await pair.ours.send(message)
    assert pair.ours.state is State.OPEN
    await pair.ours.send("still open")
    assert await pair.theirs.recv() == "still open"


@pytest.mark.parametrize("message", ["text", b"bytes", ["a", "b"], "async"])
async def test_send_after_close_raises(pair: Pair, message: Any) -> None:
    await pair.ours.close()
    if message == "async":
        message = pieces_of("async generator", ["a"])
    with pytest.raises(ConnectionClosedOK):
        await pair.ours.send(message)


async def test_send_after_peer_failed_raises_error(pair: Pair) -> None:
    await pair.theirs.close(1011)
    with pytest.raises(ConnectionClosedError) as raised:
        await pair.ours.send("late")
    assert raised.value.code == 1011


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


# ping() and pong()


async def test_ping_gives_latency(pair: Pair) -> None:
    assert pair.ours.latency == 0.0
    waiter = await pair.ours.ping()
    latency = await waiter
    assert type(latency) is float
    assert latency >= 0
    assert pair.ours.latency == latency


async def test_ping_latency_is_measured_below_a_millisecond(pair: Pair) -> None:
    # uvloop's loop.time() ticks in milliseconds: a loopback pong measured
    # with it would often come out as exactly 0.
    latencies = [await (await pair.ours.ping()) for _ in range(5)]
    assert all(latency > 0 for latency in latencies), latencies


async def test_ping_with_str_and_bytes_data(pair: Pair) -> None:
    datas: list[str | bytes | bytearray | memoryview] = [
        "héllo",
        b"bytes",
        bytearray(b"ba"),
        memoryview(b"mv"),
    ]
    for data in datas:
        waiter = await pair.ours.ping(data)
        assert await waiter >= 0


async def test_ping_with_same_data_while_pending_raises(pair: Pair) -> None:
    waiter = await pair.ours.ping(b"same")
    # No await that yields in between: the pong cannot have come back yet.
    with pytest.raises(ConcurrencyError):
        await pair.ours.ping(b"same")
    with pytest.raises(ConcurrencyError):
        await pair.ours.ping("same")
    await waiter
    again = await pair.ours.ping(b"same")
    assert await again >= 0


async def test_ping_after_close_raises(pair: Pair) -> None:
    await pair.ours.close()
    with pytest.raises(ConnectionClosedOK):
        await pair.ours.ping()
    with pytest.raises(ConnectionClosedOK):
        await pair.ours.pong()


async def test_pong_is_ignored_by_the_peer(pair: Pair) -> None:
    await pair.ours.pong(b"heartbeat")
    await pair.ours.pong("text heartbeat")
    await pair.ours.pong()
    await pair.ours.send("after")
    assert await pair.theirs.recv() == "after"
    assert pair.theirs.state is State.OPEN


async def test_ping_default_data_and_str_data(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        waiter = await ours.ping()
        event = await peer.next_event()
        assert isinstance(event, Ping)
        assert len(event.data) == 4
        peer.engine.send_pong(event.data)
        await peer.flush()
        assert await waiter >= 0

        waiter = await ours.ping("hé")
        assert await peer.next_event() == Ping("hé".encode())
        peer.engine.send_pong("hé".encode())
        await peer.flush()
        assert await waiter >= 0


async def test_pong_answers_every_earlier_ping(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        first = future(await ours.ping(b"1"))
        second = future(await ours.ping(b"2"))
        third = future(await ours.ping(b"3"))
        for data in (b"1", b"2", b"3"):
            assert await peer.next_event() == Ping(data)
        # A pong that matches no ping answers nothing.
        peer.engine.send_pong(b"unknown")
        peer.engine.send_pong(b"2")
        await peer.flush()
        await until(second.done)
        assert first.done()
        assert not third.done()
        assert await first >= await second >= 0
        assert ours.latency == await second
        peer.engine.send_pong(b"3")
        await peer.flush()
        assert await third >= 0


async def test_pending_pings_fail_when_the_connection_drops(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        waiters = [await ours.ping(), await ours.ping(b"x")]
        assert isinstance(await peer.next_event(), Ping)
        peer.abort()
        for waiter in waiters:
            with pytest.raises(ConnectionClosedError):
                await waiter


async def test_pong_reaches_the_peer(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side) as (ours, peer):
        await ours.pong(b"beat")
        await ours.pong("é")
        assert await peer.next_event() == Pong(b"beat")
        assert await peer.next_event() == Pong("é".encode())


# close()


async def test_close_code_and_reason_on_both_sides(pair: Pair) -> None:
    assert (pair.ours.close_code, pair.ours.close_reason) == (None, None)
    assert (pair.theirs.close_code, pair.theirs.close_reason) == (None, None)
    await pair.ours.close(4321, "see you")
    await pair.theirs.wait_closed()
    assert (pair.theirs.close_code, pair.theirs.close_reason) == (4321, "see you")
    # The peer echoed the close whole, so our own reason comes back.
    assert (pair.ours.close_code, pair.ours.close_reason) == (4321, "see you")
    assert pair.ours.state is State.CLOSED
    assert pair.theirs.state is State.CLOSED


async def test_close_twice_and_from_both_sides(pair: Pair) -> None:
    await pair.ours.close()
    await pair.ours.close(1011)
    await pair.theirs.close()
    assert pair.ours.close_code == 1000
    assert pair.theirs.close_code == 1000


async def test_close_from_both_sides_at_once(pair: Pair) -> None:
    await asyncio.gather(pair.ours.close(4001), pair.theirs.close(4002))
    assert pair.ours.close_code == 4002
    assert pair.theirs.close_code == 4001


async def test_close_gives_up_after_close_timeout(start_server: ServerFactory, side: Side) -> None:
    close_timeout = 0.05
    async with open_raw_pair(start_server, side, close_timeout=close_timeout) as (ours, peer):
        # Safety bound only: close() must return by itself, whatever the peer does.
        async with asyncio.timeout(close_timeout * 20):
            await ours.close()
        assert ours.state is State.CLOSED
        assert ours.close_code == 1006
        assert await peer.next_event() == CloseReceived(Close(1000, ""))
        await peer.wait_eof()


async def test_wait_closed(pair: Pair) -> None:
    waiting = asyncio.create_task(pair.ours.wait_closed())
    await asyncio.sleep(0)
    assert not waiting.done()
    await pair.theirs.close()
    async with asyncio.timeout(5):
        await waiting
    assert pair.ours.state is State.CLOSED
    await pair.ours.wait_closed()  # Returns at once once closed.


async def test_async_with_closes(pair: Pair) -> None:
    async with pair.ours as ws:
        assert ws is pair.ours
        await ws.send("inside")
    assert pair.ours.state is State.CLOSED
    assert pair.ours.close_code == 1000
    assert await pair.theirs.recv() == "inside"


# Attributes


async def test_id_is_a_unique_uuid(pair: Pair) -> None:
    assert isinstance(pair.ours.id, uuid.UUID)
    assert isinstance(pair.theirs.id, uuid.UUID)
    assert pair.ours.id != pair.theirs.id


async def test_state_goes_from_open_to_closed(pair: Pair) -> None:
    assert state_of(pair.ours) is State.OPEN
    await pair.ours.close()
    assert state_of(pair.ours) is State.CLOSED


async def test_request_and_response(pair: Pair) -> None:
    for ws in (pair.ours, pair.theirs):
        assert ws.request is not None
        assert ws.response is not None
        assert ws.request.path == "/"
        assert ws.request_headers is ws.request.headers
        assert ws.response_headers is ws.response.headers
        assert ws.request_headers["Upgrade"] == "websocket"
        assert ws.request_headers["Sec-WebSocket-Version"] == "13"
        assert ws.response_headers["Upgrade"] == "websocket"
        assert ws.response.status_code == 101
        assert ws.response.reason_phrase == "Switching Protocols"
        assert ws.response.body == b""
    assert pair.ours.request_headers == pair.theirs.request_headers
    assert pair.ours.response_headers == pair.theirs.response_headers


async def test_subprotocol(start_server: ServerFactory, side: Side) -> None:
    options = {"subprotocols": ["chat", "superchat"]}
    async with open_pair(start_server, side, both=options) as pair:
        assert pair.ours.subprotocol == "chat"
        assert pair.theirs.subprotocol == "chat"


async def test_no_subprotocol(pair: Pair) -> None:
    assert pair.ours.subprotocol is None
    assert pair.theirs.subprotocol is None


async def test_addresses_mirror_each_other(pair: Pair) -> None:
    assert pair.ours.local_address == pair.theirs.remote_address
    assert pair.ours.remote_address == pair.theirs.local_address
    assert pair.ours.local_address[0] == "127.0.0.1"
    assert pair.ours.local_address != pair.ours.remote_address


async def test_logger(pair: Pair) -> None:
    assert isinstance(pair.ours.logger, ConnectionLogger)
    inner = pair.ours.logger.logger
    assert isinstance(inner, logging.Logger)
    assert inner.name == f"tether.{pair.side}"
    assert pair.ours.logger.extra == {"websocket": pair.ours}
