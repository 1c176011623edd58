"""Keepalive pings, on every API and either end: answered pings keep the connection, unanswered
ones end it."""

from __future__ import annotations

import pytest

from tests.backends import Backend, Side, sided
from tether.exceptions import ConnectionClosedError
from tether.protocol.close import Close
from tether.protocol.connection import State
from tether.protocol.events import CloseReceived, Ping

INTERVAL = 0.05


def test_silent_peer_is_detected(backend: Backend, side: Side) -> None:
    async def body() -> None:
        options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL}
        async with backend.raw_pair(side, **options) as (ours, peer):
            # The peer reads the ping and answers nothing.
            assert isinstance(await backend.in_thread(peer.next_event), Ping)
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.recv()
            assert raised.value.sent == Close(1011, "keepalive ping timeout")
            assert raised.value.rcvd is None
            closing = await backend.in_thread(peer.next_event)
            assert closing == CloseReceived(Close(1011, "keepalive ping timeout"))
            # A failed connection closes TCP without waiting for the peer's close frame.
            await backend.in_thread(peer.wait_eof)
            await ours.wait_closed()
            assert ours.state is State.CLOSED
            assert ours.close_code == 1006

    backend.run(body)


def test_answering_peer_stays_connected(backend: Backend, side: Side) -> None:
    async def body() -> None:
        options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL}
        async with backend.raw_pair(side, **options) as (ours, peer):
            for _ in range(4):
                event = await backend.in_thread(peer.next_event)
                assert isinstance(event, Ping)
                peer.engine.send_pong(event.data)
                await backend.in_thread(peer.flush)
            await backend.until(lambda: ours.latency > 0)
            assert ours.state is State.OPEN

    backend.run(body)


def test_live_peer_keeps_the_connection_up(backend: Backend, side: Side) -> None:
    async def body() -> None:
        options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL * 10}
        async with backend.pair(client=options, server=options) as ends:
            ours, theirs = sided(side, *ends)
            await backend.until(lambda: ours.latency > 0 and theirs.latency > 0)
            # Several intervals go by: each ping is answered in time.
            await backend.sleep(INTERVAL * 2)
            assert ours.state is State.OPEN
            assert theirs.state is State.OPEN
            for index in range(5):
                await ours.send(str(index))
                assert await theirs.recv() == str(index)
                assert await ours.ping() > 0

    backend.run(body)


def test_ping_interval_none_sends_no_ping(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side, ping_interval=None) as (ours, peer):
            with pytest.raises(TimeoutError):
                await backend.in_thread(lambda: peer.next_event(timeout=INTERVAL * 2))
            assert ours.state is State.OPEN
            assert ours.latency == 0

    backend.run(body)


def test_ping_timeout_none_never_gives_up(backend: Backend, side: Side) -> None:
    async def body() -> None:
        options = {"ping_interval": INTERVAL, "ping_timeout": None}
        async with backend.raw_pair(side, **options) as (ours, peer):
            payloads = set()
            for _ in range(3):
                event = await backend.in_thread(peer.next_event)
                assert isinstance(event, Ping)
                payloads.add(event.data)
            # Unanswered pings pile up under distinct payloads; nothing fails.
            assert len(payloads) == 3
            assert ours.state is State.OPEN

    backend.run(body)
