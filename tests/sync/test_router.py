"""The threading route as a context manager (what every API's routing shares is tested in
tests/behaviour/test_routing.py)."""

from __future__ import annotations

from tether.sync import ServerConnection, connect, route

from .conftest import TIMEOUT, run_server, uri_of


def index(ws: ServerConnection) -> None:
    ws.send("index")


def test_route_as_context_manager() -> None:
    with route({"/": index}, "127.0.0.1", 0) as server:
        thread = run_server(server)
        with connect(uri_of(server), open_timeout=TIMEOUT) as ws:
            assert ws.recv(timeout=TIMEOUT) == "index"
    thread.join(TIMEOUT)
    assert not thread.is_alive()
