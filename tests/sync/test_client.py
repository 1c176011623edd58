"""The threading client: connect's options, TLS, Unix sockets, refusals, reconnect."""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tether.exceptions import ConnectionClosedError, InvalidStatus, InvalidURI
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.handshake import USER_AGENT
from tether.protocol.http11 import Request, Response
from tether.sync import ClientConnection, Server, ServerConnection, connect, reconnect, serve

from .conftest import TIMEOUT, ServerFactory, bounded, run_server, stop_server, uri_of


class Seen:
    """A handler that records its connection's request and echoes."""

    def __init__(self) -> None:
        self.connections: list[ServerConnection] = []

    def __call__(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        for message in ws:
            ws.send(message)

    @property
    def last(self) -> ServerConnection:
        assert self.connections, "no connection reached the handler"
        return self.connections[-1]


@pytest.fixture
def seen(start_server: ServerFactory) -> tuple[Seen, Server]:
    handler = Seen()
    return handler, start_server(handler)


def echo_once(ws: ClientConnection, message: str = "ping") -> None:
    ws.send(message)
    assert ws.recv(timeout=TIMEOUT) == message


def test_connect_directly(seen: tuple[Seen, Server]) -> None:
    handler, server = seen
    ws = connect(uri_of(server, "/path?query=1"), open_timeout=TIMEOUT)
    try:
        echo_once(ws)
        assert isinstance(ws.request, Request)
        assert isinstance(ws.response, Response)
        assert ws.request.path == "/path?query=1"
        assert ws.response.status_code == 101
        assert ws.request_headers["Host"] == "{}:{}".format(*server.socket.getsockname()[:2])
        assert ws.response_headers["Upgrade"].lower() == "websocket"
        assert ws.remote_address == server.socket.getsockname()
        assert ws.local_address[0] == "127.0.0.1"
        assert ws.state.name == "OPEN"
        assert ws.subprotocol is None
        assert ws.close_code is None
        assert handler.last.request is not None
        assert handler.last.request.path == "/path?query=1"
    finally:
        bounded(ws.close)
    assert ws.state.name == "CLOSED"
    assert ws.close_code == 1000


def test_connect_as_context_manager(echo_server: Server) -> None:
    with connect(uri_of(echo_server)) as ws:
        echo_once(ws)
    assert ws.wait_closed(0)
    assert ws.close_code == 1000


def test_additional_headers(seen: tuple[Seen, Server]) -> None:
    handler, server = seen
    with connect(uri_of(server), additional_headers={"Authorization": "Bearer x"}) as ws:
        echo_once(ws)
        assert handler.last.request_headers["Authorization"] == "Bearer x"
    with connect(uri_of(server), extra_headers=[("X-Old-Name", "still works")]) as ws:
        echo_once(ws)
        assert handler.last.request_headers["X-Old-Name"] == "still works"
    with pytest.raises(TypeError):
        connect(uri_of(server), additional_headers={"A": "1"}, extra_headers={"B": "2"})


def test_origin_and_subprotocols(start_server: ServerFactory) -> None:
    handler = Seen()
    server = start_server(
        handler, origins=["https://good.example"], subprotocols=["chat.v2", "chat.v1"]
    )
    with connect(
        uri_of(server), origin="https://good.example", subprotocols=["chat.v1", "chat.v2"]
    ) as ws:
        echo_once(ws)
        assert handler.last.request_headers["Origin"] == "https://good.example"
        assert ws.subprotocol == "chat.v2"
        assert handler.last.subprotocol == "chat.v2"


def test_compression(seen: tuple[Seen, Server]) -> None:
    _, server = seen
    with connect(uri_of(server)) as ws:
        echo_once(ws, "compressible " * 100)
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        assert ws.protocol.extensions
    with connect(uri_of(server), compression=None) as ws:
        echo_once(ws)
        assert "Sec-WebSocket-Extensions" not in ws.request_headers
        assert "Sec-WebSocket-Extensions" not in ws.response_headers
        assert not ws.protocol.extensions
    with pytest.raises(ValueError, match="compression"):
        connect(uri_of(server), compression="gzip")  # type: ignore[arg-type]


def test_explicit_extensions(seen: tuple[Seen, Server]) -> None:
    _, server = seen
    factory = ClientPerMessageDeflateFactory(client_max_window_bits=10)
    with connect(uri_of(server), compression=None, extensions=[factory]) as ws:
        echo_once(ws, "abc" * 1000)
        assert "client_max_window_bits=10" in ws.request_headers["Sec-WebSocket-Extensions"]
        assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]


def test_user_agent_header(seen: tuple[Seen, Server]) -> None:
    handler, server = seen
    with connect(uri_of(server)) as ws:
        echo_once(ws)
        assert handler.last.request_headers["User-Agent"] == USER_AGENT
    with connect(uri_of(server), user_agent_header="custom/1.0") as ws:
        echo_once(ws)
        assert handler.last.request_headers["User-Agent"] == "custom/1.0"
    with connect(uri_of(server), user_agent_header=None) as ws:
        echo_once(ws)
        assert "User-Agent" not in handler.last.request_headers


def test_open_timeout_with_silent_server() -> None:
    # The kernel completes the TCP handshake from the backlog; nobody answers.
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        with pytest.raises(TimeoutError):
            bounded(lambda: connect(f"ws://127.0.0.1:{port}/", open_timeout=0.1))
    finally:
        listener.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def test_tls(start_server: ServerFactory, ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = start_server(ssl=server_context)
    port = server.socket.getsockname()[1]
    with connect(f"wss://localhost:{port}/", ssl=client_context, open_timeout=TIMEOUT) as ws:
        echo_once(ws)
        echo_once(ws, "x" * 100_000)
        assert isinstance(ws.socket, ssl.SSLSocket)
    # An untrusted certificate fails the handshake.
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(f"wss://localhost:{port}/", open_timeout=TIMEOUT)
    with pytest.raises(ValueError, match="ssl"):
        connect(f"ws://localhost:{port}/", ssl=client_context)


def test_preconnected_socket(echo_server: Server) -> None:
    sock = socket.create_connection(echo_server.socket.getsockname()[:2], timeout=TIMEOUT)
    with connect("ws://example.test/", sock=sock) as ws:
        echo_once(ws)
        assert ws.request_headers["Host"] == "example.test"


@pytest.fixture
def socket_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield str(Path(directory) / "ws.sock")


def test_unix_socket(start_server: ServerFactory, socket_path: str) -> None:
    start_server(unix=True, path=socket_path)
    with connect("ws://localhost/", unix=True, path=socket_path) as ws:
        echo_once(ws)
        assert ws.socket.family == socket.AF_UNIX


def test_process_request_403_readable(start_server: ServerFactory) -> None:
    def refuse(ws: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != "Bearer good":
            return ws.respond(403, "Forbidden: bad token\n")
        return None

    server = start_server(process_request=refuse)
    with pytest.raises(InvalidStatus) as info:
        connect(uri_of(server), additional_headers={"Authorization": "Bearer bad"})
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"Forbidden: bad token\n"
    with connect(uri_of(server), additional_headers={"Authorization": "Bearer good"}) as ws:
        echo_once(ws)


def test_invalid_uri() -> None:
    with pytest.raises(InvalidURI):
        connect("http://127.0.0.1/")


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
