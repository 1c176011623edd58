"""The keepalive timer of the asyncio connection, for both roles: gone once the connection closes.

What keepalive does on the wire is tested once for every API in
``tests/behaviour/test_keepalive.py``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tether.protocol.events import Ping

from .conftest import ServerFactory
from .pairs import Side, open_pair, open_raw_pair

INTERVAL = 0.05


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
