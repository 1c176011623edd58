"""The attributes of a connection, on every API and either end."""

from __future__ import annotations

import logging
import uuid

from tests.backends import Backend, Side, sided
from tether.log import ConnectionLogger
from tether.protocol.connection import State


def test_id_state_addresses_and_logger(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            assert isinstance(ours.native.id, uuid.UUID)
            assert isinstance(theirs.native.id, uuid.UUID)
            assert ours.native.id != theirs.native.id
            assert ours.native.local_address == theirs.native.remote_address
            assert ours.native.remote_address == theirs.native.local_address
            assert ours.native.local_address[0] == "127.0.0.1"
            assert ours.native.local_address != ours.native.remote_address
            assert isinstance(ours.native.logger, ConnectionLogger)
            inner = ours.native.logger.logger
            assert isinstance(inner, logging.Logger)
            assert inner.name == f"tether.{side}"
            assert ours.native.logger.extra == {"websocket": ours.native}
            states = [ours.state]
            await ours.close()
            states.append(ours.state)
            assert states == [State.OPEN, State.CLOSED]

    backend.run(body)


def test_request_and_response(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            for ws in (ours.native, theirs.native):
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
            assert ours.native.request_headers == theirs.native.request_headers
            assert ours.native.response_headers == theirs.native.response_headers

    backend.run(body)


def test_subprotocol(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            assert ours.subprotocol is None
            assert theirs.subprotocol is None
        options = {"subprotocols": ["chat", "superchat"]}
        async with backend.pair(client=options, server=options) as ends:
            ours, theirs = sided(side, *ends)
            assert ours.subprotocol == "chat"
            assert theirs.subprotocol == "chat"

    backend.run(body)
