"""The threading client: Unix sockets and reconnect (the options of every API's connect:
tests/behaviour/test_client.py)."""

from __future__ import annotations

import socket
import threading

import pytest

from tether.exceptions import ConnectionClosedError, InvalidStatus, InvalidURI
from tether.protocol.http11 import Request, Response
from tether.sync import ClientConnection, Server, ServerConnection, reconnect, serve

from .conftest import TIMEOUT, ServerFactory, run_server, stop_server, uri_of


def echo_once(ws: ClientConnection, message: str = "ping") -> None:
    ws.send(message)
    assert ws.recv(timeout=TIMEOUT) == message


# Reconnecting


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record reconnect's delays instead of sleeping them."""
    delays: list[float] = []
    monkeypatch.setattr("tether.sync.client.time.sleep", delays.append)
    return delays


def test_reconnect_after_drops(start_server: ServerFactory) -> None:
    lock = threading.Lock()
    count = [0]

    def flaky(ws: ServerConnection) -> None:
        with lock:
            count[0] += 1
            number = count[0]
        if number <= 3:
            ws.close(1011, "dropped")
            return
        ws.send(f"connection {number}")
        ws.wait_closed(TIMEOUT)

    server = start_server(flaky)
    seen: list[str | bytes] = []
    codes: list[int | None] = []
    for attempt, ws in enumerate(reconnect(uri_of(server), open_timeout=TIMEOUT)):
        assert attempt < 10, "too many reconnections"
        try:
            seen.append(ws.recv(timeout=TIMEOUT))
        except ConnectionClosedError:
            codes.append(ws.close_code)
            continue
        break
    assert seen == ["connection 4"]
    assert codes == [1011, 1011, 1011]


def test_reconnect_waits_for_server(no_sleep: list[float]) -> None:
    # Reserve a port, and let the server come up on it after a few failures.
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    started: list[tuple[Server, threading.Thread]] = []
    real_sleep = no_sleep.append

    def sleep(delay: float) -> None:
        real_sleep(delay)
        if len(no_sleep) == 3:
            server = serve(lambda ws: ws.send("up"), "127.0.0.1", port)
            started.append((server, run_server(server)))

    mp = pytest.MonkeyPatch()
    mp.setattr("tether.sync.client.time.sleep", sleep)
    try:
        for ws in reconnect(
            f"ws://127.0.0.1:{port}/",
            open_timeout=TIMEOUT,
            backoff_initial_delay=0.5,
            backoff_factor=2.0,
            backoff_max_delay=1.5,
        ):
            assert ws.recv(timeout=TIMEOUT) == "up"
            break
    finally:
        mp.undo()
        for server, thread in started:
            stop_server(server, thread)
    assert len(no_sleep) == 3
    for attempt, delay in enumerate(no_sleep):
        full = min(1.5, 0.5 * 2.0**attempt)
        assert full / 2 <= delay <= full


def test_reconnect_backoff_bounds() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    attempts = 12

    def sleep(delay: float) -> None:
        no_sleep_record.append(delay)
        if len(no_sleep_record) >= attempts:
            raise KeyboardInterrupt  # Stops the endless retrying.

    no_sleep_record: list[float] = []
    mp = pytest.MonkeyPatch()
    mp.setattr("tether.sync.client.time.sleep", sleep)
    try:
        with pytest.raises(KeyboardInterrupt):
            next(reconnect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT))
    finally:
        mp.undo()
    for attempt, delay in enumerate(no_sleep_record):
        full = min(60.0, 1.0 * 1.618**attempt)
        assert full / 2 <= delay <= full
    assert no_sleep_record[-1] >= 30.0


def test_reconnect_raises_on_403(start_server: ServerFactory, no_sleep: list[float]) -> None:
    server = start_server(process_request=lambda ws, request: ws.respond(403, "no"))
    with pytest.raises(InvalidStatus) as info:
        next(reconnect(uri_of(server)))
    assert info.value.response.status_code == 403
    assert no_sleep == []


def test_reconnect_retries_503(start_server: ServerFactory, no_sleep: list[float]) -> None:
    count = [0]

    def busy(ws: ServerConnection, request: Request) -> Response | None:
        count[0] += 1
        return ws.respond(503, "busy") if count[0] <= 2 else None

    server = start_server(process_request=busy)
    for ws in reconnect(uri_of(server)):
        echo_once(ws)
        break
    assert len(no_sleep) == 2


def test_reconnect_raises_on_invalid_uri(no_sleep: list[float]) -> None:
    with pytest.raises(InvalidURI):
        next(reconnect("https://127.0.0.1/"))
    assert no_sleep == []


def test_reconnect_closes_connection_on_exit(echo_server: Server) -> None:
    iterator = reconnect(uri_of(echo_server))
    ws = next(iterator)
    echo_once(ws)
    iterator.close()
    assert ws.wait_closed(0)
    assert ws.close_code == 1000


def test_reconnect_honours_retry_after(start_server: ServerFactory, no_sleep: list[float]) -> None:
    count = [0]

    def busy(ws: ServerConnection, request: Request) -> Response | None:
        count[0] += 1
        if count[0] > 1:
            return None
        response = ws.respond(429, "slow down")
        response.headers["Retry-After"] = "12"
        return response

    server = start_server(process_request=busy)
    for ws in reconnect(uri_of(server)):
        echo_once(ws)
        break
    assert no_sleep == [12.0]
