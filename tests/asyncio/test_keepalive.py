"""Keepalive pings of the asyncio connection, for both roles.

A hand-driven peer that never answers shows the timeout; a tether peer, which
answers every ping, shows that keepalive keeps the connection up.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tether.exceptions import ConnectionClosedError
from tether.protocol.close import Close
from tether.protocol.connection import State
from tether.protocol.events import CloseReceived, Ping

from .conftest import ServerFactory
from .pairs import Side, open_pair, open_raw_pair, until

INTERVAL = 0.05


async def test_silent_peer_is_detected(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side, ping_interval=INTERVAL, ping_timeout=INTERVAL) as (
        ours,
        peer,
    ):
        event = await peer.next_event()
        assert isinstance(event, Ping)
        with pytest.raises(ConnectionClosedError) as raised:
            async with asyncio.timeout(5):
                await ours.recv()
        assert raised.value.sent == Close(1011, "keepalive ping timeout")
        assert raised.value.rcvd is None
        assert await peer.next_event() == CloseReceived(Close(1011, "keepalive ping timeout"))
        # A failed connection closes TCP without waiting for the peer's close frame.
        await peer.wait_eof()
        await ours.wait_closed()
        assert ours.state is State.CLOSED
        assert ours.close_code == 1006


async def test_answering_peer_stays_connected(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side, ping_interval=INTERVAL, ping_timeout=INTERVAL) as (
        ours,
        peer,
    ):
        for _ in range(4):
            event = await peer.next_event()
            assert isinstance(event, Ping)
            peer.engine.send_pong(event.data)
            await peer.flush()
        await until(lambda: ours.latency > 0)
        assert ours.state is State.OPEN


async def test_live_peer_keeps_the_connection_up(start_server: ServerFactory, side: Side) -> None:
    options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL}
    async with open_pair(start_server, side, both=options) as pair:
        await until(lambda: pair.ours.latency > 0 and pair.theirs.latency > 0)
        # Several intervals go by: each ping is answered in time.
        await asyncio.sleep(INTERVAL * 6)
        assert pair.ours.state is State.OPEN
        assert pair.theirs.state is State.OPEN
        await pair.ours.send("still here")
        assert await pair.theirs.recv() == "still here"


async def test_ping_interval_none_sends_no_ping(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side, ping_interval=None) as (ours, peer):
        with pytest.raises(TimeoutError):
            await peer.next_event(timeout=INTERVAL * 6)
        assert ours.state is State.OPEN


async def test_ping_timeout_none_never_gives_up(start_server: ServerFactory, side: Side) -> None:
    async with open_raw_pair(start_server, side, ping_interval=INTERVAL, ping_timeout=None) as (
        ours,
        peer,
    ):
        payloads = set()
        for _ in range(3):
            event = await peer.next_event()
            assert isinstance(event, Ping)
            payloads.add(event.data)
        # Unanswered pings pile up under distinct payloads; nothing fails.
        assert len(payloads) == 3
        assert ours.state is State.OPEN


async def test_keepalive_stops_when_the_connection_closes(
    start_server: ServerFactory, side: Side
) -> None:
    options = {"ping_interval": INTERVAL, "ping_timeout": INTERVAL}
    async with open_pair(start_server, side, both=options) as pair:
        await asyncio.sleep(INTERVAL * 2)
        assert pair.ours._keepalive is not None
        await pair.ours.close()
        # The pending timer is cancelled (or fired and found the connection
        # closing), and no new one is set.
        assert pair.ours._keepalive is None
        await asyncio.sleep(INTERVAL * 2)
        assert pair.ours._keepalive is None


async def test_drop_while_waiting_for_a_pong_is_not_a_timeout(
    start_server: ServerFactory, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    async with open_raw_pair(start_server, side, ping_interval=INTERVAL, ping_timeout=10) as (
        ours,
        peer,
    ):
        assert isinstance(await peer.next_event(), Ping)
        peer.abort()
        await ours.wait_closed()
        assert ours._keepalive is None
        await asyncio.sleep(INTERVAL * 2)
        assert ours._keepalive is None
    assert ours.close_code == 1006
    assert not [r for r in caplog.records if "no pong" in r.getMessage()]
