"""tether.trio servers: nurseries, closing, timeouts, TLS and Unix sockets."""

from __future__ import annotations

import functools
import ssl

import pytest
import trio
import trustme

import tether.trio
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response
from tether.trio import ServerConnection

from .conftest import echo, hold, serving, trio_test, uri_of


@trio_test
async def test_cancelling_the_nursery_closes_connections_with_1001() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(functools.partial(tether.trio.serve, hold, 0))
        clients = [await tether.trio.connect(uri_of(server)) for _ in range(3)]
        while len(server.connections) < 3:
            await trio.sleep(0.001)
        nursery.cancel_scope.cancel()
    for ws in clients:
        await ws.wait_closed()
        assert ws.close_code == 1001
        assert [m async for m in ws] == []


@trio_test
async def test_async_hooks_and_select_subprotocol() -> None:
    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        await trio.sleep(0)
        if request.path == "/teapot":
            return connection.respond(418, "I'm a teapot.")
        return None

    def select(connection: ServerConnection, offered: object) -> str:
        return "second"

    async with serving(
        echo,
        process_request=process_request,
        subprotocols=["first", "second"],
        select_subprotocol=select,
    ) as server:
        with pytest.raises(InvalidStatus) as caught:
            await tether.trio.connect(uri_of(server, "/teapot"))
        assert caught.value.response.status_code == 418
        async with tether.trio.connect(uri_of(server), subprotocols=["first", "second"]) as ws:
            assert ws.subprotocol == "second"


@trio_test
async def test_silent_client_is_dropped_after_open_timeout() -> None:
    async with serving(hold, open_timeout=0.05) as server:
        port = server.sockets[0].getsockname()[1]
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        # Nothing sent: the server closes after open_timeout.
        assert await stream.receive_some() == b""
        await stream.aclose()


@trio_test
async def test_open_timeout_bounds_the_tls_handshake() -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        with pytest.raises(TimeoutError):
            await tether.trio.connect(
                f"wss://localhost:{port}/", host="127.0.0.1", open_timeout=0.1
            )
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for localhost, and a client context trusting it."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def test_tls(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_context, client_context = tls

    @trio_test
    async def run() -> None:
        async with serving(echo, ssl=server_context) as server:
            port = server.sockets[0].getsockname()[1]
            uri = f"wss://localhost:{port}/"
            async with tether.trio.connect(uri, ssl=client_context, host="127.0.0.1") as ws:
                assert isinstance(ws.stream, trio.SSLStream)
                for message in ("secret", b"\x00" * 100_000):
                    await ws.send(message)
                    assert await ws.recv() == message
                assert ws.remote_address[1] == port
            assert ws.close_code == 1000
            with pytest.raises(ssl.SSLCertVerificationError):
                await tether.trio.connect(uri, host="127.0.0.1")

    run()


def test_serve_needs_a_port_or_listeners() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="port"):
            await tether.trio.serve(echo)

    trio.run(main)


def test_close_drops_connections_in_their_tls_handshake(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    # A client that connects and never starts TLS holds its handshake until
    # open_timeout: never, here. Closing the server must not wait for it.
    server_context, _ = tls

    @trio_test
    async def run() -> None:
        async with serving(echo, ssl=server_context, open_timeout=None) as server:
            port = server.sockets[0].getsockname()[1]
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            # Until the server's task for it waits in the TLS handshake.
            await trio.sleep(0.1)
            with trio.fail_after(5):
                await server.aclose()
            # Dropped without a TLS answer.
            assert await stream.receive_some() == b""
            await stream.aclose()

    run()
