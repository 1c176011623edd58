"""recv, recv_streaming and iteration, on every API and either end of the connection."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import Backend, Face, Side, sided
from tether.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
)
from tether.protocol.close import Close
from tether.protocol.connection import State
from tether.protocol.events import Pong


async def collect(ws: Face, decode: bool | None = None) -> list[Any]:
    """The pieces of the next message, read with recv_streaming."""
    return [piece async for piece in ws.recv_streaming(decode)]


async def arrived(theirs: Face) -> None:
    """Return once what ``theirs`` sent before has reached its peer.

    The peer answers the ping after it has read everything sent before it.
    """
    await theirs.ping()


# recv()


def test_recv_text_gives_str_and_binary_gives_bytes(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("café")
            await theirs.send(b"\x00\xff")
            text = await ours.recv()
            binary = await ours.recv()
            assert (type(text), text) == (str, "café")
            assert (type(binary), binary) == (bytes, b"\x00\xff")

    backend.run(body)


def test_recv_decode(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for message in [b"caf\xc3\xa9", b"\xff\xfe", "next", "café", b"raw"]:
                await theirs.send(message)
            assert await ours.recv(decode=True) == "café"
            with pytest.raises(UnicodeDecodeError):
                await ours.recv(decode=True)
            # The undecodable message was consumed; the connection goes on.
            assert await ours.recv(decode=True) == "next"
            assert await ours.recv(decode=False) == b"caf\xc3\xa9"
            assert await ours.recv(decode=False) == b"raw"

    backend.run(body)


def test_recv_timeout_loses_no_message(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            with pytest.raises(TimeoutError):
                await ours.recv(timeout=0.01)
            with pytest.raises(TimeoutError):
                await ours.recv(timeout=0)
            await theirs.send("late")
            assert await ours.recv() == "late"

    backend.run(body)


def test_recv_timeout_zero_returns_a_waiting_message(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("here")
            await arrived(theirs)
            assert await ours.recv(timeout=0) == "here"

    backend.run(body)


def test_recv_timeout_with_half_a_message_keeps_it(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side) as (ours, peer):
            peer.engine.send_text(b"he", fin=False)
            peer.engine.send_ping(b"after the first half")
            await backend.in_thread(peer.flush)
            # The pong says that the first half was read.
            assert await backend.in_thread(peer.next_event) == Pong(b"after the first half")
            with pytest.raises(TimeoutError):
                await ours.recv(timeout=0.01)
            peer.engine.send_continuation(b"llo", fin=True)
            await backend.in_thread(peer.flush)
            assert await ours.recv() == "hello"

    backend.run(body)


def test_concurrent_receivers_are_refused(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            received: list[Any] = []

            # Neither API says which of two tasks or threads starts first: each
            # tries until the first holds the connection and the second is refused.
            async def first() -> None:
                while True:
                    try:
                        received.append(await ours.recv())
                        return
                    except ConcurrencyError:
                        await backend.sleep(0.001)

            async def second() -> None:
                while True:
                    try:
                        await ours.recv(timeout=0.01)
                    except TimeoutError:
                        await backend.sleep(0.005)
                        continue
                    except ConcurrencyError:
                        break
                with pytest.raises(ConcurrencyError):
                    await anext(ours.recv_streaming())
                await theirs.send("for the first")

            await backend.together(first, second)
            assert received == ["for the first"]

    backend.run(body)


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        (1000, ConnectionClosedOK),
        (1001, ConnectionClosedOK),
        (1011, ConnectionClosedError),
        (4000, ConnectionClosedError),
    ],
)
def test_recv_after_close_reads_every_message_then_raises(
    backend: Backend, side: Side, code: int, exc_type: type[ConnectionClosed]
) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("one")
            await theirs.send(b"two")
            await theirs.close(code, "bye")
            # The threading API's reader thread may see the end of TCP after
            # the closer's close() returned: wait for it.
            await ours.wait_closed()
            assert ours.state is State.CLOSED
            assert (ours.close_code, ours.close_reason) == (code, "bye")
            assert await ours.recv() == "one"
            assert await ours.recv() == b"two"
            for _ in range(2):  # Raised again on each call.
                with pytest.raises(exc_type) as raised:
                    await ours.recv()
                assert type(raised.value) is exc_type
                assert raised.value.rcvd == Close(code, "bye")
                # The close is echoed whole: code and reason.
                assert raised.value.sent == Close(code, "bye")
                assert raised.value.rcvd_then_sent is True
                assert (raised.value.code, raised.value.reason) == (code, "bye")
            with pytest.raises(exc_type):
                await ours.send("too late")
            with pytest.raises(exc_type):
                await ours.start_ping()
            with pytest.raises(exc_type):
                await ours.pong()

    backend.run(body)


def test_recv_after_our_close_raises_ok(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, _ = sided(side, *ends)
            await ours.close()
            with pytest.raises(ConnectionClosedOK) as raised:
                await ours.recv()
            assert raised.value.sent == Close(1000, "")
            assert raised.value.rcvd == Close(1000, "")
            assert raised.value.rcvd_then_sent is False

    backend.run(body)


def test_recv_after_abnormal_drop_raises_1006(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("before")
            await arrived(theirs)
            theirs.abort()
            await ours.wait_closed()
            assert await ours.recv() == "before"
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.recv()
            assert (raised.value.rcvd, raised.value.sent, raised.value.code) == (None, None, 1006)
            assert ours.close_code == 1006
            assert ours.close_reason == ""

    backend.run(body)


def test_waiting_recv_is_woken_by_the_close(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)

            async def receive() -> None:
                with pytest.raises(ConnectionClosedOK):
                    await ours.recv()

            async def close() -> None:
                await backend.sleep(0.01)
                await theirs.close(1001)

            await backend.together(receive, close)

    backend.run(body)


# recv_streaming()


def test_recv_streaming_yields_fragments_as_they_arrive(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side) as (ours, peer):
            peer.engine.send_text(b"first ", fin=False)
            await backend.in_thread(peer.flush)
            pieces = ours.recv_streaming()
            # The second fragment is not even sent yet.
            assert await anext(pieces) == "first "
            peer.engine.send_continuation(b"second", fin=False)
            peer.engine.send_continuation(b"", fin=True)
            await backend.in_thread(peer.flush)
            # The message ends with an empty final frame, which arrives as an empty piece.
            assert [piece async for piece in pieces] == ["second", ""]

    backend.run(body)


def test_recv_streaming_decode(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("whole")
            await theirs.send(b"bin")
            await theirs.send([b"ab", b"cd"])
            await theirs.send(["é", "f"])
            await theirs.send(b"whole")
            # "é" is C3 A9: the first fragment ends in the middle of it.
            await theirs.send([b"caf\xc3", b"\xa9!"])
            await theirs.send([b"ok", b"\xff"])
            assert await collect(ours) == ["whole"]
            assert await collect(ours) == [b"bin"]
            assert await collect(ours, decode=True) == ["ab", "cd", ""]
            assert await collect(ours, decode=False) == [b"\xc3\xa9", b"f", b""]
            assert await collect(ours, decode=True) == ["whole"]
            assert "".join(await collect(ours, decode=True)) == "café!"
            with pytest.raises(UnicodeDecodeError):
                await collect(ours, decode=True)

    backend.run(body)


def test_recv_streaming_decodes_across_fragments(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side) as (ours, peer):
            data = "été €".encode()
            # Binary fragments cut inside the two-byte é and the three-byte €.
            peer.engine.send_binary(data[:1], fin=False)
            peer.engine.send_continuation(data[1:6], fin=False)
            peer.engine.send_continuation(data[6:], fin=True)
            await backend.in_thread(peer.flush)
            pieces = await collect(ours, decode=True)
            assert "".join(pieces) == "été €"
            assert len(pieces) == 3
            assert all(isinstance(piece, str) for piece in pieces)

    backend.run(body)


def test_recv_streaming_then_recv(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send(["a", "b"])
            await theirs.send("c")
            await theirs.send(["x", "y"])
            assert await collect(ours) == ["a", "b", ""]
            assert await ours.recv() == "c"
            # Streaming and whole reads share the queue in order.
            assert await ours.recv() == "xy"

    backend.run(body)


def test_recv_during_recv_streaming_is_refused(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side) as (ours, peer):
            peer.engine.send_text(b"a", fin=False)
            await backend.in_thread(peer.flush)
            pieces = ours.recv_streaming()
            assert await anext(pieces) == "a"
            with pytest.raises(ConcurrencyError):
                await ours.recv()
            peer.engine.send_continuation(b"b", fin=True)
            await backend.in_thread(peer.flush)
            assert [piece async for piece in pieces] == ["b"]

    backend.run(body)


def test_recv_streaming_after_close_raises(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.close()
            with pytest.raises(ConnectionClosedOK):
                await collect(ours)

    backend.run(body)


# Iteration


@pytest.mark.parametrize("code", [1000, 1001])
def test_iteration_ends_quietly_on_normal_closure(backend: Backend, side: Side, code: int) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("a")
            await theirs.send(b"b")
            await theirs.close(code)
            assert await ours.messages() == ["a", b"b"]
            assert ours.close_code == code

    backend.run(body)


@pytest.mark.parametrize(("code", "reason"), [(1011, "crash"), (4000, "custom")])
def test_iteration_raises_on_an_error_close(
    backend: Backend, side: Side, code: int, reason: str
) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("a")
            await theirs.close(code, reason)
            received: list[Any] = []
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.messages(received)
            assert received == ["a"]
            assert raised.value.rcvd == Close(code, reason)
            assert (raised.value.code, raised.value.reason) == (code, reason)
            assert (ours.close_code, ours.close_reason) == (code, reason)

    backend.run(body)


def test_iteration_raises_on_abnormal_drop(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("a")
            await arrived(theirs)
            theirs.abort()
            received: list[Any] = []
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.messages(received)
            assert received == ["a"]
            assert raised.value.code == 1006

    backend.run(body)
