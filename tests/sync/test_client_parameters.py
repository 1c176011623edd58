"""websockets 17's parameters in the threading API: create_connection, reconnect_delays, pairs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

import tether.sync
from tether.exceptions import ConnectionClosedError, HeaderLineTooLong, InvalidStatus
from tether.protocol.http11 import Limits, Request, Response
from tether.sync.client import ClientConnection
from tether.sync.server import ServerConnection

from .conftest import ServerFactory, uri_of


class Recording(ClientConnection):
    made: ClassVar[list[Recording]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Recording.made.append(self)


def test_create_connection(echo_server: Any) -> None:
    with tether.sync.connect(uri_of(echo_server), create_connection=Recording) as ws:
        assert isinstance(ws, Recording)
        ws.send("mine")
        assert ws.recv(timeout=5) == "mine"
    assert Recording.made[-1] is ws


def test_reconnect_delays(start_server: ServerFactory) -> None:
    refusals = 2

    def hook(connection: ServerConnection, request: Request) -> Response | None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            return connection.respond(503, "Later.")
        return None

    server = start_server(process_request=hook)
    given: list[float] = []

    def delays() -> Iterator[float]:
        for delay in itertools.count(1):
            given.append(delay / 1000)
            yield delay / 1000

    for ws in tether.sync.reconnect(uri_of(server), reconnect_delays=delays):
        ws.send("back")
        assert ws.recv(timeout=5) == "back"
        break
    assert given == [0.001, 0.002]


def test_max_size_and_max_queue_pairs(start_server: ServerFactory) -> None:
    def fragments(ws: ServerConnection) -> None:
        ws.send(str((ws._messages.full_at, ws._messages.low_at)))
        ws.send(["abcd", "efgh"])
        ws.send("x" * 10)

    server = start_server(fragments, max_queue=(6, 1))
    with tether.sync.connect(uri_of(server), max_size=(100, 8), max_queue=(4, 0)) as ws:
        assert (ws._messages.full_at, ws._messages.low_at) == (4, 0)
        assert ws.recv(timeout=5) == "(6, 1)"
        assert ws.recv(timeout=5) == "abcdefgh"
        with pytest.raises(ConnectionClosedError) as caught:
            ws.recv(timeout=5)
    assert caught.value.sent is not None
    assert caught.value.sent.code == 1009


def test_limits_of_the_http_parsers(start_server: ServerFactory) -> None:
    loud = start_server(server_header="x" * 200)
    with pytest.raises(HeaderLineTooLong):
        tether.sync.connect(uri_of(loud), limits=Limits(max_line=100))
    strict = start_server(limits=Limits(max_headers=8))
    many = {f"X-Header-{index}": "1" for index in range(10)}
    with pytest.raises(InvalidStatus) as caught:
        tether.sync.connect(uri_of(strict), additional_headers=many)
    assert caught.value.response.status_code == 431
