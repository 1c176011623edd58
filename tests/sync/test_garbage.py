"""A closed threading connection is freed by reference counting, with the garbage collector off."""

from __future__ import annotations

import time
import weakref
from typing import Any, Literal

import pytest

from tether.sync import ServerConnection, connect

from .conftest import TIMEOUT, ServerFactory, uri_of


def freed(*refs: weakref.ref[Any]) -> bool:
    """Whether every referent goes away, waiting a bounded time for threads to let go."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if all(ref() is None for ref in refs):
            return True
        time.sleep(0.005)
    return False


@pytest.mark.parametrize("compression", ["deflate", None])
def test_closed_connections_are_freed(
    no_gc: None, start_server: ServerFactory, compression: Literal["deflate"] | None
) -> None:
    server_sides: list[weakref.ref[Any]] = []

    def handler(ws: ServerConnection) -> None:
        server_sides.append(weakref.ref(ws))
        for message in ws:
            ws.send(message)

    server = start_server(handler, compression=compression)
    client = connect(uri_of(server), compression=compression)
    client.send("hello")
    assert client.recv(timeout=TIMEOUT) == "hello"
    assert client.ping().wait(TIMEOUT)
    client.close()
    client_ref = weakref.ref(client)
    del client
    assert freed(client_ref, *server_sides)
    assert len(server_sides) == 1
