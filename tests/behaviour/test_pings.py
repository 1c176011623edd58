"""ping and pong, on every API and either end: latency, payloads, and which pong answers what."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import Backend, Side, sided
from tether.exceptions import ConcurrencyError, ConnectionClosedError
from tether.protocol.connection import State
from tether.protocol.events import Message, Ping, Pong


def test_ping_gives_latency(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, _ = sided(side, *ends)
            assert ours.latency == 0.0
            latency = await ours.ping()
            assert type(latency) is float
            assert latency > 0
            assert ours.latency == latency
            # A loopback pong takes less than a millisecond: uvloop's loop.time()
            # ticks in milliseconds, so a latency measured with it would often be 0.
            latencies = [await ours.ping() for _ in range(5)]
            assert all(latency > 0 for latency in latencies), latencies
            datas: list[Any] = ["héllo", b"bytes", bytearray(b"ba"), memoryview(b"mv")]
            for data in datas:
                assert await ours.ping(data) >= 0
            with pytest.raises(ValueError, match="125"):
                await ours.start_ping(b"x" * 126)

    backend.run(body)


def test_pong_is_ignored_by_the_peer(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await ours.pong(b"heartbeat")
            await ours.pong("text heartbeat")
            await ours.pong()
            await ours.send("after")
            assert await theirs.recv() == "after"
            assert theirs.state is State.OPEN

    backend.run(body)


def test_pings_are_answered_without_recv(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("unread")  # Ours never reads it.
            assert await theirs.ping() >= 0.0
            assert await ours.ping() >= 0.0

    backend.run(body)


def test_raw_peer_pings_pongs_and_messages(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side) as (ours, peer):
            peer.engine.send_pong(b"unsolicited")
            peer.engine.send_ping(b"are you there")
            peer.engine.send_text(b"hello")
            await backend.in_thread(peer.flush)
            # The ping is answered without anybody calling recv for it.
            assert await backend.in_thread(peer.next_event) == Pong(b"are you there")
            assert await ours.recv() == "hello"
            await ours.pong(b"beat")
            await ours.pong("é")
            await ours.send("back")
            assert await backend.in_thread(peer.next_event) == Pong(b"beat")
            assert await backend.in_thread(peer.next_event) == Pong("é".encode())
            assert await backend.in_thread(peer.next_event) == Message("back")

    backend.run(body)


def test_ping_default_data_and_str_data(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side, ping_interval=None) as (ours, peer):
            waiter = await ours.start_ping()
            event = await backend.in_thread(peer.next_event)
            assert isinstance(event, Ping)
            assert len(event.data) == 4
            peer.engine.send_pong(event.data)
            await backend.in_thread(peer.flush)
            assert await waiter.wait() >= 0

            waiter = await ours.start_ping("hé")
            assert await backend.in_thread(peer.next_event) == Ping("hé".encode())
            peer.engine.send_pong("hé".encode())
            await backend.in_thread(peer.flush)
            assert await waiter.wait() >= 0

    backend.run(body)


def test_pong_answers_every_earlier_ping(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side, ping_interval=None) as (ours, peer):
            first = await ours.start_ping(b"1")
            # The same payload while its ping waits would make the pong ambiguous.
            with pytest.raises(ConcurrencyError):
                await ours.start_ping(b"1")
            with pytest.raises(ConcurrencyError):
                await ours.start_ping("1")
            second = await ours.start_ping(b"2")
            third = await ours.start_ping(b"3")
            for data in (b"1", b"2", b"3"):
                assert await backend.in_thread(peer.next_event) == Ping(data)
            # A pong that matches no ping answers nothing.
            peer.engine.send_pong(b"unknown")
            peer.engine.send_pong(b"2")
            await backend.in_thread(peer.flush)
            await backend.until(second.done)
            assert first.done()
            assert not third.done()
            assert await first.wait() >= await second.wait() >= 0
            assert ours.latency == await second.wait()
            peer.engine.send_pong(b"3")
            await backend.in_thread(peer.flush)
            assert await third.wait() >= 0
            # Once answered, the payload may be used again.
            again = await ours.start_ping(b"1")
            assert await backend.in_thread(peer.next_event) == Ping(b"1")
            peer.engine.send_pong(b"1")
            await backend.in_thread(peer.flush)
            assert await again.wait() >= 0

    backend.run(body)


def test_pending_pings_fail_when_the_connection_drops(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side, ping_interval=None) as (ours, peer):
            waiters = [await ours.start_ping(), await ours.start_ping(b"x")]
            assert isinstance(await backend.in_thread(peer.next_event), Ping)
            peer.abort()
            for waiter in waiters:
                with pytest.raises(ConnectionClosedError):
                    await waiter.wait()

    backend.run(body)
