"""The options of every API's connect, against live local servers."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import pytest
import trio
import trustme

from tests.backends import Backend, Face, echo_until_closed
from tests.behaviour.tls import client_context, over_tls, server_context
from tether.exceptions import InvalidStatus, InvalidURI
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.handshake import USER_AGENT
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request


class Seen:
    """A handler that keeps each connection's request headers and echoes."""

    def __init__(self) -> None:
        self.headers: list[Headers] = []
        self.paths: list[str] = []

    async def __call__(self, ws: Face) -> None:
        self.headers.append(ws.native.request_headers)
        self.paths.append(ws.native.request.path)
        await echo_until_closed(ws)

    @property
    def last(self) -> Headers:
        return self.headers[-1]


async def echo_once(ws: Face, message: str = "ping") -> None:
    await ws.send(message)
    assert await ws.recv() == message


async def connected(backend: Backend, uri: str, message: str = "ping", **options: Any) -> Face:
    """Connect, check an echo and close; return the connection."""
    ws = await backend.connect(uri, **options)
    await echo_once(ws, message)
    await ws.close()
    return ws


def test_connect_and_close(backend: Backend) -> None:
    seen = Seen()

    async def body() -> None:
        async with backend.serve(seen) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/path?query=1")
            assert isinstance(ws.native, backend.module("client").ClientConnection)
            assert (ws.state.name, ws.subprotocol, ws.close_code) == ("OPEN", None, None)
            await echo_once(ws)
            assert ws.native.request.path == "/path?query=1"
            assert ws.native.request_headers["Host"] == f"127.0.0.1:{port}"
            assert ws.native.remote_address[:2] == ("127.0.0.1", port)
            assert seen.paths == ["/path?query=1"]
            await ws.close()
            assert (ws.state.name, ws.close_code) == ("CLOSED", 1000)
            await ws.close()  # Closing twice is harmless.

    backend.run(body)


def test_compression_and_extensions(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(Seen()) as port:
            uri = f"ws://127.0.0.1:{port}/"
            ws = await connected(backend, uri, "a" * 10_000)
            assert [ext.name for ext in ws.native.protocol.extensions] == ["permessage-deflate"]
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
            ws = await connected(backend, uri, "a" * 10_000, compression=None)
            assert ws.native.protocol.extensions == []
            assert "Sec-WebSocket-Extensions" not in ws.native.request_headers
            assert "Sec-WebSocket-Extensions" not in ws.response_headers
            factory = ClientPerMessageDeflateFactory(client_max_window_bits=10)
            options = {"compression": None, "extensions": [factory]}
            ws = await connected(backend, uri, "abc" * 1000, **options)
            offer = ws.native.request_headers["Sec-WebSocket-Extensions"]
            assert "client_max_window_bits=10" in offer
            assert "permessage-deflate" in ws.response_headers["Sec-WebSocket-Extensions"]
        with pytest.raises(ValueError, match="unsupported compression"):
            backend.module("client").connect("ws://localhost/", compression="br")

    backend.run(body)


def test_origin_subprotocols_and_user_agent(backend: Backend) -> None:
    seen = Seen()

    async def body() -> None:
        options = {"origins": ["https://good.example"], "subprotocols": ["v2.chat", "v1.chat"]}
        async with backend.serve(seen, **options) as port:
            uri = f"ws://127.0.0.1:{port}/"
            origin = "https://good.example"
            # The server's preference wins.
            both = ["v1.chat", "v2.chat"]
            ws = await connected(backend, uri, origin=origin, subprotocols=both)
            assert ws.subprotocol == "v2.chat"
            assert seen.last["Origin"] == origin
            assert seen.last["User-Agent"] == USER_AGENT
            ws = await connected(backend, uri, origin=origin, subprotocols=["v1.chat"])
            assert ws.subprotocol == "v1.chat"
            # As websockets: a server with subprotocols refuses a client without one.
            with pytest.raises(InvalidStatus) as info:
                await backend.connect(uri, origin=origin)
            assert info.value.response.status_code == 400
            assert info.value.response.body == (
                b"Failed to open a WebSocket connection: missing subprotocol.\n"
            )
            await connected(backend, uri, origin=origin, subprotocols=both, user_agent_header="c/1")
            assert seen.last["User-Agent"] == "c/1"
            await connected(backend, uri, origin=origin, subprotocols=both, user_agent_header=None)
            assert "User-Agent" not in seen.last

    backend.run(body)


def test_additional_headers(backend: Backend) -> None:
    seen = Seen()

    async def body() -> None:
        async with backend.serve(seen) as port:
            uri = f"ws://127.0.0.1:{port}/"
            await connected(backend, uri, additional_headers={"Authorization": "Bearer x"})
            assert seen.last["Authorization"] == "Bearer x"
            await connected(backend, uri, additional_headers=[("X-A", "1"), ("X-A", "2")])
            assert seen.last.get_all("X-A") == ["1", "2"]
            await connected(backend, uri, extra_headers=Headers({"X-B": "3"}))
            assert seen.last["X-B"] == "3"
            await connected(backend, uri, extra_headers=[("X-Old-Name", "still works")])
            assert seen.last["X-Old-Name"] == "still works"
        with pytest.raises(TypeError):
            backend.module("client").connect(
                "ws://localhost/", extra_headers={"A": "1"}, additional_headers={"B": "2"}
            )

    backend.run(body)


def test_open_timeout(backend: Backend) -> None:
    async def slow(connection: Any, request: Request) -> None:
        await backend.sleep(0.05)

    def slow_sync(connection: Any, request: Request) -> None:
        import time  # noqa: PLC0415

        time.sleep(0.05)

    async def body() -> None:
        # The kernel completes the TCP handshake from the backlog; nobody answers.
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(10)
            port = listener.getsockname()[1]
            with pytest.raises(TimeoutError):
                await backend.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.05)
            # The client gave up and closed TCP.
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(10)
                while await backend.in_thread(lambda: sock.recv(4096)):
                    pass
        hook = slow_sync if backend.api == "sync" else slow
        async with backend.serve(Seen(), process_request=hook) as port:
            await connected(backend, f"ws://127.0.0.1:{port}/", "late", open_timeout=None)

    backend.run(body)


def test_timeouts_are_kept(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(Seen()) as port:
            options: dict[str, Any] = {
                "ping_interval": 0.5,
                "ping_timeout": 0.25,
                "close_timeout": 0.125,
            }
            ws = await connected(backend, f"ws://127.0.0.1:{port}/", **options)
            native = ws.native
            assert (native.ping_interval, native.ping_timeout, native.close_timeout) == (
                0.5,
                0.25,
                0.125,
            )

    backend.run(body)


class Adapter(logging.LoggerAdapter[logging.Logger]):
    """A user's adapter that adds a field of its own."""


@pytest.mark.parametrize("kind", ["logger", "adapter", "name", "default"])
def test_logger(backend: Backend, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    name = "tether.client" if kind == "default" else f"app.websocket.{kind}"
    caplog.set_level(logging.DEBUG, logger=name)
    option: Any = {
        "logger": logging.getLogger(name),
        "adapter": Adapter(logging.getLogger(name), {"tenant": "blue"}),
        "name": name,
    }.get(kind)
    made: list[Face] = []

    async def body() -> None:
        async with backend.serve(Seen()) as port:
            options = {} if option is None else {"logger": option}
            made.append(await connected(backend, f"ws://127.0.0.1:{port}/", **options))

    backend.run(body)
    records = [record for record in caplog.records if record.name == name]
    assert records
    assert any(getattr(record, "websocket", None) is made[0].native for record in records)
    if kind != "default":
        assert all(getattr(record, "websocket", None) is made[0].native for record in records)
        assert any("connected" in record.getMessage() for record in records)
    if kind == "adapter":
        assert all(getattr(record, "tenant", None) == "blue" for record in records)


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost/",
        "https://localhost/",
        "localhost:8000",
        "ws://",
        "ws://localhost:0/",
        "ws://localhost:65536/",
        "ws://local host/",
        "ws://localhost/#fragment",
        "ws+unix://%00/",
        "ws+unix://%FF/",
        "ws+unix://%2Ftmp%2Fa b.sock/",
        "ws+unix:///no-socket-path",
        "ws+tcp://localhost/",
    ],
)
def test_invalid_uri(backend: Backend, uri: str) -> None:
    with pytest.raises(InvalidURI):
        backend.module("client").connect(uri)


def test_ssl_option_and_tls(backend: Backend, server_ca: trustme.CA) -> None:
    connect = backend.module("client").connect
    for uri, option in [
        ("ws://localhost/", ssl.create_default_context()),
        ("ws://localhost/", True),
        ("wss://localhost/", False),
    ]:
        with pytest.raises(ValueError, match="ssl"):
            connect(uri, ssl=option)

    async def body() -> None:
        async with backend.serve(Seen()) as port:
            # ssl=False with ws:// is fine.
            await connected(backend, f"ws://127.0.0.1:{port}/", ssl=False)
        async with backend.serve(Seen(), ssl=server_context(server_ca, "localhost")) as port:
            uri = f"wss://localhost:{port}/"
            ws = await backend.connect(uri, ssl=client_context(server_ca))
            assert over_tls(ws)
            await echo_once(ws)
            await echo_once(ws, "x" * 100_000)
            await ws.close()
            # An untrusted certificate fails the handshake.
            with pytest.raises(ssl.SSLCertVerificationError):
                await backend.connect(uri)

    backend.run(body)


def test_preconnected_socket(backend: Backend) -> None:
    seen = Seen()

    async def body() -> None:
        async with backend.serve(seen) as port:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            options: dict[str, Any] = {"sock": sock}
            if backend.api == "trio":
                options = {"stream": trio.SocketStream(trio.socket.from_stdlib_socket(sock))}
            await connected(backend, "ws://example.test/", **options)
            assert seen.last["Host"] == "example.test"

    backend.run(body)


def test_invalid_status_carries_the_response(backend: Backend) -> None:
    def forbid(connection: Any, request: Request) -> Any:
        if request.headers.get("Authorization") != "Bearer good":
            return connection.respond(403, "No token, no entry.\n")
        return None

    async def body() -> None:
        async with backend.serve(Seen(), process_request=forbid) as port:
            uri = f"ws://127.0.0.1:{port}/"
            with pytest.raises(InvalidStatus) as caught:
                await backend.connect(uri, additional_headers={"Authorization": "Bearer bad"})
            response = caught.value.response
            assert response.status_code == 403
            assert response.body == b"No token, no entry.\n"
            assert "403" in str(caught.value)
            await connected(backend, uri, additional_headers={"Authorization": "Bearer good"})

    backend.run(body)
