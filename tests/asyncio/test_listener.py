"""Listener connections: messages by callback (``tether.listen``, ``connect(listener=...)``).

Each test runs a real server and client over loopback, on asyncio's loop
and on uvloop; the peers are tether's coroutine API, tether's own listener
side, a hand-driven peer (:mod:`tests.asyncio.raw_peer`) or websockets.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme
import websockets.asyncio.client
import websockets.asyncio.server

import tether
from tests.behaviour.tls import client_context, server_context
from tether.asyncio.connection import Connection
from tether.asyncio.listener import ListenerConnection, ListenerServerConnection
from tether.asyncio.server import Server, ServerConnection
from tether.exceptions import ConcurrencyError, ConnectionClosed
from tether.protocol.close import CloseCode
from tether.protocol.connection import Connection as ProtocolConnection
from tether.protocol.connection import Role, State
from tether.protocol.events import CloseReceived, Message, Pong

from .pairs import until, uri_of
from .raw_peer import RawPeer, raw_client


class Recorder(tether.Listener):
    """Records every call; echoes each message unless told otherwise."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.calls: list[str] = []
        self.messages: list[str | bytes] = []
        self.ws: Connection | None = None
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()

    def on_open(self, ws: Connection) -> None:
        self.calls.append("open")
        self.ws = ws
        self.opened.set()

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        self.calls.append("message")
        self.messages.append(message)
        if self.echo:
            ws.send_nowait(message)

    def on_close(self, ws: Connection) -> None:
        self.calls.append("close")
        self.closed.set()


@asynccontextmanager
async def listening(
    factory: Callable[[], tether.Listener] = Recorder, **options: Any
) -> AsyncIterator[Server]:
    """A listener server on loopback, closed at the end."""
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    async with tether.listen(factory, **options) as server:
        yield server


async def raw_peer(server: Server) -> RawPeer:
    """A hand-driven client of ``server``, its handshake done."""
    host, port = next(iter(server.sockets)).getsockname()[:2]
    return await raw_client(host, port)


class Made:
    """A factory that keeps every listener it made."""

    def __init__(self, cls: type[Recorder] = Recorder, **kwargs: Any) -> None:
        self.cls = cls
        self.kwargs = kwargs
        self.made: list[Recorder] = []

    def __call__(self) -> Recorder:
        listener = self.cls(**self.kwargs)
        self.made.append(listener)
        return listener

    async def first(self) -> Recorder:
        await until(lambda: self.made)
        listener = self.made[0]
        await asyncio.wait_for(listener.opened.wait(), 5)
        return listener


async def test_echo_text_and_binary() -> None:
    made = Made()
    async with listening(made) as server, tether.connect(uri_of(server)) as ws:
        messages: list[str | bytes] = ["hello", b"\x00binary", "", b"", "é" * 1000, bytes(99_999)]
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
        listener = await made.first()
        assert isinstance(listener.ws, ListenerServerConnection)
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.calls == ["open"] + ["message"] * 6 + ["close"]
    assert listener.ws is not None
    assert listener.ws.close_code == 1000


async def test_messages_sent_with_the_handshake_come_after_on_open() -> None:
    made = Made()
    async with listening(made) as server:
        # The frame goes out in the same write as the request's end: the
        # server reads both at once.
        peer = await raw_peer(server)
        peer.engine.send_text(b"first")
        await peer.flush()
        event = await peer.next_event()
        assert isinstance(event, Message)
        assert event.data == "first"
        assert (await made.first()).calls[:2] == ["open", "message"]
        peer.abort()


async def test_frame_logs_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    # With DEBUG on, the engine logs every frame: messages take its general path.
    caplog.set_level(logging.DEBUG, logger="tether")
    made = Made()
    async with (
        listening(made, compression=None) as server,
        tether.connect(uri_of(server), compression=None) as ws,
    ):
        await ws.send("logged")
        assert await ws.recv() == "logged"
    frames = [r.getMessage() for r in caplog.records if r.name.startswith("tether.server")]
    assert any(frame.endswith("< TEXT 'logged' [6 bytes]") for frame in frames)
    assert any(frame.endswith("> TEXT 'logged' [6 bytes]") for frame in frames)


async def test_fragmented_messages_arrive_whole() -> None:
    made = Made()
    async with listening(made) as server:
        peer = await raw_peer(server)
        peer.engine.send_text("hé".encode()[:2], fin=False)
        await peer.flush()
        peer.engine.send_continuation("hé".encode()[2:] + b"llo", fin=False)
        peer.engine.send_ping(b"between")
        peer.engine.send_continuation(b"!", fin=True)
        peer.engine.send_binary(b"a", fin=False)
        peer.engine.send_continuation(b"b", fin=True)
        await peer.flush()
        listener = await made.first()
        await until(lambda: len(listener.messages) == 2)
        assert listener.messages == ["héllo!", b"ab"]
        peer.abort()


async def test_fragmented_send_from_a_listener_client() -> None:
    listener = Recorder(echo=False)
    async with (
        tether.serve(_echo, "127.0.0.1", 0) as server,
        tether.connect(uri_of(server), listener=listener) as ws,
    ):
        await ws.send(["frag", "ments"])
        await ws.send(iter([b"x", b"y"]))
        await until(lambda: len(listener.messages) == 2)
        assert listener.messages == ["fragments", b"xy"]


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def test_message_over_max_size_closes_with_1009() -> None:
    made = Made()
    async with listening(made, max_size=1000) as server, tether.connect(uri_of(server)) as ws:
        await ws.send(bytes(1000))
        assert await ws.recv() == bytes(1000)
        await ws.send(bytes(1001))
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == CloseCode.MESSAGE_TOO_BIG
    listener = made.made[0]
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.messages == [bytes(1000)]


async def test_fragmented_message_over_max_size_closes_with_1009() -> None:
    made = Made()
    async with listening(made, max_size=10) as server:
        peer = await raw_peer(server)
        peer.engine.send_binary(bytes(6), fin=False)
        peer.engine.send_continuation(bytes(6), fin=True)
        await peer.flush()
        event = await peer.next_event()
        assert isinstance(event, CloseReceived)
        assert event.close.code == CloseCode.MESSAGE_TOO_BIG
        listener = await made.first()
        peer.abort()
        await asyncio.wait_for(listener.closed.wait(), 5)
        assert listener.messages == []


async def test_invalid_utf8_closes_with_1007() -> None:
    made = Made()
    async with listening(made) as server:
        peer = await raw_peer(server)
        peer.engine.send_text(b"fine")
        await peer.flush()
        event = await peer.next_event()
        assert isinstance(event, Message)
        assert event.data == "fine"
        peer.engine.send_text(b"\xff\xfe")
        await peer.flush()
        event = await peer.next_event()
        assert isinstance(event, CloseReceived)
        assert event.close.code == CloseCode.INVALID_DATA
        listener = await made.first()
        peer.abort()
        await asyncio.wait_for(listener.closed.wait(), 5)
        assert listener.messages == ["fine"]


@pytest.mark.parametrize("max_queue", [1, 16, None])
async def test_compressed_messages(max_queue: int | None) -> None:
    # Many small compressed messages in one read: the engine inflates at most
    # max_queue of them at a time, and every one reaches the listener in order.
    made = Made()
    async with (
        listening(made, max_queue=max_queue) as server,
        tether.connect(uri_of(server)) as ws,
    ):
        assert ws.protocol.extensions
        messages = [f"message {i} " * (i % 7) for i in range(300)]
        for message in messages:
            ws.send_nowait(message)
        assert [await ws.recv() for _ in messages] == messages
        listener = await made.first()
        assert listener.ws is not None
        assert listener.ws.protocol.extensions
        assert listener.messages == messages


async def test_compressed_messages_to_a_listener_client() -> None:
    listener = Recorder(echo=False)
    async with (
        tether.serve(_echo, "127.0.0.1", 0) as server,
        tether.connect(uri_of(server), listener=listener, max_queue=2) as ws,
    ):
        messages = [bytes([i]) * 1000 for i in range(100)]
        for message in messages:
            await ws.send(message)
        await until(lambda: len(listener.messages) == len(messages))
        assert listener.messages == messages


async def test_ping_and_pong_both_ways() -> None:
    listener = Recorder(echo=False)
    made = Made()
    async with (
        listening(made) as server,
        tether.connect(uri_of(server), listener=listener) as ws,
    ):
        latency = await asyncio.wait_for(await ws.ping(b"client"), 5)
        assert latency >= 0
        server_side = (await made.first()).ws
        assert server_side is not None
        await asyncio.wait_for(await server_side.ping(b"server"), 5)
        # Pongs are no messages.
        assert listener.messages == []


async def test_keepalive_closes_a_silent_peer_with_1011() -> None:
    made = Made()
    async with listening(made, ping_interval=0.05, ping_timeout=0.05) as server:
        peer = await raw_peer(server)
        # The peer reads pings but never answers them.
        while not isinstance(event := await peer.next_event(), CloseReceived):
            assert not isinstance(event, Message)
        assert event.close.code == CloseCode.INTERNAL_ERROR
        listener = await made.first()
        peer.abort()
        await asyncio.wait_for(listener.closed.wait(), 5)


async def test_keepalive_of_a_listener_client() -> None:
    listener = Recorder(echo=False)
    async with tether.serve(_hold, "127.0.0.1", 0) as server:
        async with tether.connect(
            uri_of(server), listener=listener, ping_interval=0.02, ping_timeout=5
        ) as ws:
            # The keepalive pings are answered: the latency is measured.
            await until(lambda: ws.latency > 0)
        assert ws.close_code == 1000


async def _hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


async def test_server_closes_from_on_message() -> None:
    class Closer(Recorder):
        def on_message(self, ws: Connection, message: str | bytes) -> None:
            super().on_message(ws, message)
            self.task = asyncio.get_running_loop().create_task(ws.close(4000, "bye"))

    made = Made(Closer, echo=False)
    async with listening(made) as server, tether.connect(uri_of(server)) as ws:
        await ws.send("please close")
        await ws.send("too late?")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
    listener = made.made[0]
    await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.calls.count("close") == 1
    assert listener.ws is not None
    assert listener.ws.close_code == 4000


async def test_client_closes_and_on_close_runs_once_on_both_sides() -> None:
    made = Made()
    listener = Recorder(echo=False)
    async with listening(made) as server:
        ws = await tether.connect(uri_of(server), listener=listener)
        ws.send_nowait("hi")
        await until(lambda: listener.messages == ["hi"])
        await ws.close(4001, "client done")
        await asyncio.wait_for(listener.closed.wait(), 5)
        server_listener = made.made[0]
        await asyncio.wait_for(server_listener.closed.wait(), 5)
        with pytest.raises(ConnectionClosed):
            ws.send_nowait("after close")
        await ws.close()
        await ws.wait_closed()
    assert listener.calls == ["open", "message", "close"]
    assert server_listener.calls == ["open", "message", "close"]
    assert server_listener.ws is not None
    assert (server_listener.ws.close_code, server_listener.ws.close_reason) == (
        4001,
        "client done",
    )


async def test_server_close_closes_listener_connections_with_1001() -> None:
    made = Made()
    async with listening(made) as server:
        listener = Recorder(echo=False)
        ws = await tether.connect(uri_of(server), listener=listener)
        await made.first()
        assert len(server.connections) == 1
        server.close()
        await server.wait_closed()
        await asyncio.wait_for(listener.closed.wait(), 5)
        assert ws.close_code == CloseCode.GOING_AWAY
        assert made.made[0].calls == ["open", "close"]


async def test_awaited_server_serves_forever_until_closed() -> None:
    made = Made()
    server = await tether.listen(made, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve_forever())
    async with tether.connect(uri_of(server)) as ws:
        await ws.send("served")
        assert await ws.recv() == "served"
        assert [connection.id for connection in server.connections] == [made.made[0].ws.id]  # type: ignore[union-attr]
        server.close()
        await asyncio.wait_for(serving, 5)
    assert ws.close_code == CloseCode.GOING_AWAY
    assert made.made[0].calls == ["open", "message", "close"]


async def test_dropped_tcp_calls_on_close() -> None:
    made = Made()
    async with listening(made) as server:
        peer = await raw_peer(server)
        listener = await made.first()
        peer.abort()
        await asyncio.wait_for(listener.closed.wait(), 5)
        assert listener.ws is not None
        assert listener.ws.close_code == CloseCode.ABNORMAL_CLOSURE


async def test_receiving_is_the_listeners() -> None:
    made = Made()
    async with listening(made) as server, tether.connect(uri_of(server)) as ws:
        server_side = (await made.first()).ws
        assert server_side is not None
        with pytest.raises(ConcurrencyError, match="listener"):
            await server_side.recv()
        with pytest.raises(ConcurrencyError, match="listener"):
            async for _ in server_side:
                pass
        with pytest.raises(ConcurrencyError, match="listener"):
            async for _ in server_side.recv_streaming():
                pass
        # The connection is fine after those.
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_send_nowait_checks_its_argument_and_fragmented_sends() -> None:
    listener = Recorder(echo=False)
    async with (
        tether.serve(_echo, "127.0.0.1", 0) as server,
        tether.connect(uri_of(server), listener=listener) as ws,
    ):
        with pytest.raises(TypeError):
            ws.send_nowait(["a", "b"])  # type: ignore[arg-type]
        release = asyncio.Event()

        async def pieces() -> AsyncIterator[str]:
            yield "one "
            await release.wait()
            yield "message"

        sending = asyncio.create_task(ws.send(pieces()))
        await until(lambda: ws._send_lock is not None and ws._send_lock.locked())
        with pytest.raises(ConcurrencyError):
            ws.send_nowait("in the middle")
        release.set()
        await sending
        ws.send_nowait(b"after", text=True)
        await until(lambda: len(listener.messages) == 2)
        assert listener.messages == ["one message", "after"]


async def test_send_nowait_on_a_coroutine_connection() -> None:
    async with (
        tether.serve(_echo, "127.0.0.1", 0) as server,
        tether.connect(uri_of(server)) as ws,
    ):
        for i in range(10):
            ws.send_nowait(f"{i}")
        assert [await ws.recv() for _ in range(10)] == [f"{i}" for i in range(10)]


# Exceptions in callbacks.


class Failing(Recorder):
    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def on_open(self, ws: Connection) -> None:
        super().on_open(ws)
        if self.where == "on_open":
            raise RuntimeError("boom in on_open")

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        super().on_message(ws, message)
        if self.where == "on_message":
            raise RuntimeError("boom in on_message")

    def on_close(self, ws: Connection) -> None:
        super().on_close(ws)
        if self.where == "on_close":
            raise RuntimeError("boom in on_close")


def failure_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name.startswith("tether")
        and record.levelno == logging.ERROR
        and name in record.getMessage()
        and record.exc_info is not None
    ]


@pytest.mark.parametrize("where", ["on_open", "on_message"])
async def test_exception_in_callback_closes_with_1011(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    made = Made(Failing, where=where)
    async with listening(made) as server, tether.connect(uri_of(server)) as ws:
        if where == "on_message":
            # Both leave before the server's close can arrive: no await yields.
            await ws.send("first")
            await ws.send("second")
        if where == "on_message":
            # The server never saw "second": its listener had failed.
            assert await ws.recv() == "first"
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == CloseCode.INTERNAL_ERROR
    listener = made.made[0]
    await asyncio.wait_for(listener.closed.wait(), 5)
    # No message reaches the listener after its failure.
    assert listener.messages == ([] if where == "on_open" else ["first"])
    assert listener.calls[-1] == "close"
    assert listener.calls.count("close") == 1
    records = failure_records(caplog, where)
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert str(records[0].exc_info[1]) == f"boom in {where}"


async def test_exception_in_on_close_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    made = Made(Failing, where="on_close")
    async with listening(made) as server:
        async with tether.connect(uri_of(server)) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        assert ws.close_code == 1000
        await asyncio.wait_for(made.made[0].closed.wait(), 5)
    assert len(failure_records(caplog, "on_close")) == 1


async def test_exception_in_a_client_listener(caplog: pytest.LogCaptureFixture) -> None:
    listener = Failing("on_message")
    async with tether.serve(_echo, "127.0.0.1", 0) as server:
        ws = await tether.connect(uri_of(server), listener=listener)
        await ws.send("echo me")
        await asyncio.wait_for(listener.closed.wait(), 5)
        assert ws.close_code == CloseCode.INTERNAL_ERROR
    assert len(failure_records(caplog, "on_message")) == 1


async def test_factory_that_fails_or_returns_no_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> tether.Listener:
        raise RuntimeError("no listener today")

    for factory in (broken, lambda: "not a listener"):
        async with listening(factory) as server, tether.connect(uri_of(server)) as ws:  # type: ignore[arg-type]
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == CloseCode.INTERNAL_ERROR
    assert len(failure_records(caplog, "factory")) == 2


# Backpressure.

CHUNK = 32 * 1024
WRITE_LIMIT = 64 * 1024
MAX_READ = 256 * 1024
"""The most either event loop reads from a socket at once."""


async def test_a_peer_that_never_reads_stops_being_read() -> None:
    made = Made()
    async with listening(made, write_limit=WRITE_LIMIT, compression=None) as server:
        peer = await raw_peer(server)
        listener = await made.first()
        ws = listener.ws
        assert ws is not None
        assert ws.transport is not None
        # Send until the kernel pushes back: the server stopped reading.
        sent = 0
        for sent in range(1, 2001):
            peer.engine.send_binary(sent.to_bytes(4, "big") + bytes(CHUNK - 4))
            # One write: writelines skips flow control on some CPythons (gh-127655).
            peer.writer.write(b"".join(peer.engine.data_to_send()))
            try:
                await asyncio.wait_for(peer.writer.drain(), 0.2)
            except TimeoutError:
                break
        else:
            pytest.fail("the server never stopped reading")
        assert not ws.transport.is_reading()
        # What waits to be written stays bounded: one read's echoes over the limit.
        assert ws.transport.get_write_buffer_size() <= WRITE_LIMIT + MAX_READ + CHUNK
        received_while_paused = len(listener.messages)
        assert received_while_paused < sent
        # Once the peer reads, everything comes back, in order.
        for index in range(1, sent + 1):
            event = await peer.next_event()
            assert isinstance(event, Message)
            assert event.data[:4] == index.to_bytes(4, "big")
        assert len(listener.messages) == sent
        await until(lambda: ws.transport is not None and ws.transport.is_reading())
        peer.abort()


async def test_close_reads_the_peers_close_while_paused() -> None:
    made = Made()
    async with listening(
        made, write_limit=WRITE_LIMIT, compression=None, close_timeout=5
    ) as server:
        peer = await raw_peer(server)
        listener = await made.first()
        ws = listener.ws
        assert ws is not None
        assert ws.transport is not None
        for _index in range(2000):
            peer.engine.send_binary(bytes(CHUNK))
            # One write: writelines skips flow control on some CPythons (gh-127655).
            peer.writer.write(b"".join(peer.engine.data_to_send()))
            try:
                await asyncio.wait_for(peer.writer.drain(), 0.2)
            except TimeoutError:
                break
        assert not ws.transport.is_reading()
        closing = asyncio.create_task(ws.close())
        # The peer reads now: the echoes, then the close frame, which it answers.
        while not isinstance(event := await peer.next_event(), CloseReceived):
            pass
        # The peer's engine made its answer already, and dropped it: a new one makes it again.
        answer = ProtocolConnection(Role.CLIENT)
        answer.send_close(event.close.code)
        await peer.write(b"".join(answer.data_to_send()))
        # The server ends TCP first (a half-close) and reads on until the
        # peer's end, which the peer, as a client does, sends once it sees it.
        await peer.wait_eof(5)
        await peer.close()
        await asyncio.wait_for(closing, 5)
        assert ws.close_code == 1000
        await asyncio.wait_for(listener.closed.wait(), 5)


# Many connections, other peers.


async def test_many_connections() -> None:
    made = Made()
    async with listening(made) as server:

        async def one(index: int) -> None:
            async with tether.connect(uri_of(server)) as ws:
                for n in range(20):
                    await ws.send(f"{index}:{n}")
                    assert await ws.recv() == f"{index}:{n}"

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 30)
        await until(lambda: all(listener.closed.is_set() for listener in made.made))
    assert len(made.made) == 50
    assert all(listener.calls.count("message") == 20 for listener in made.made)


async def test_listener_client_against_listener_server() -> None:
    class Pinger(Recorder):
        def on_open(self, ws: Connection) -> None:
            super().on_open(ws)
            ws.send_nowait("ping 0")

        def on_message(self, ws: Connection, message: str | bytes) -> None:
            super().on_message(ws, message)
            count = len(self.messages)
            if count < 100:
                ws.send_nowait(f"ping {count}")

    client = Pinger(echo=False)
    async with listening() as server, tether.connect(uri_of(server), listener=client):
        await until(lambda: len(client.messages) == 100)
    assert client.messages == [f"ping {i}" for i in range(100)]


async def test_unix_socket_and_hooks() -> None:
    made = Made()
    refused: list[str] = []

    def process_request(connection: ServerConnection, request: Any) -> Any:
        if request.path == "/refuse":
            refused.append(request.path)
            return connection.respond(403, "no\n")
        return None

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "sock")
        async with listening(
            made, host=None, port=None, unix=True, path=path, process_request=process_request
        ):
            with pytest.raises(tether.InvalidStatus):
                await tether.unix_connect(path, "ws://localhost/refuse")
            # A refused connection makes no listener.
            assert refused == ["/refuse"]
            assert made.made == []
            async with tether.unix_connect(path) as ws:
                await ws.send("over unix")
                assert await ws.recv() == "over unix"
    assert len(made.made) == 1


async def test_proxy_protocol_header_before_the_handshake() -> None:
    made = Made()
    async with listening(made, trusted_proxies=["127.0.0.1"], proxy_protocol=True) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        header = b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"
        # In two pieces: the server waits for the whole of it.
        sock.sendall(header[:10])
        await asyncio.sleep(0.01)
        sock.sendall(header[10:])
        async with tether.connect(uri_of(server), sock=sock) as ws:
            await ws.send("through a proxy")
            assert await ws.recv() == "through a proxy"
            listener = await made.first()
            assert listener.ws is not None
            assert listener.ws.remote_address == ("198.51.100.1", 5555)


async def test_tls_both_ways() -> None:
    ca = trustme.CA()
    made = Made()
    listener = Recorder(echo=False)
    async with listening(made, ssl=server_context(ca, "localhost")) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with tether.connect(
            f"wss://localhost:{port}/",
            ssl=client_context(ca),
            host="127.0.0.1",
            port=port,
            listener=listener,
        ) as ws:
            assert ws.transport is not None
            assert ws.transport.get_extra_info("ssl_object") is not None
            for index in range(50):
                ws.send_nowait(f"{index}" * index)
            await until(lambda: len(listener.messages) == 50)
    assert listener.messages == [f"{index}" * index for index in range(50)]


async def test_options_are_checked() -> None:
    with pytest.raises(TypeError):
        tether.listen("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tether.listen(Recorder, create_connection=ServerConnection)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tether.connect("ws://localhost/", listener="nope")  # type: ignore[arg-type]


async def test_websockets_client_against_a_listener_server() -> None:
    made = Made()
    async with listening(made) as server:
        async with websockets.asyncio.client.connect(uri_of(server)) as ws:
            messages: list[str | bytes] = ["text", b"bytes", "x" * 70_000]
            for message in messages:
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"
        assert ws.close_code == 1000
        await asyncio.wait_for(made.made[0].closed.wait(), 5)


async def test_listener_client_against_a_websockets_server() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    listener = Recorder(echo=False)
    async with websockets.asyncio.server.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with tether.connect(f"ws://127.0.0.1:{port}/", listener=listener) as ws:
            assert isinstance(ws, ListenerConnection)
            messages: list[str | bytes] = ["text", b"bytes", "y" * 70_000]
            for message in messages:
                ws.send_nowait(message)
            await until(lambda: len(listener.messages) == 3)
            assert listener.messages == ["text", b"bytes", "y" * 70_000]
        await asyncio.wait_for(listener.closed.wait(), 5)
    assert listener.calls == ["open", "message", "message", "message", "close"]


def received(listener: Recorder, count: int) -> bool:
    return len(listener.messages) == count


async def test_reconnecting_client_reuses_its_listener() -> None:
    listener = Recorder(echo=False)
    made = Made()
    async with listening(made) as server:
        connections = 0
        async for ws in tether.connect(uri_of(server), listener=listener):
            connections += 1
            ws.send_nowait(f"connection {connections}")
            await until(functools.partial(received, listener, connections))
            if connections == 2:
                await ws.close()
                break
            # The server drops the first connection: the client reconnects.
            first = await made.first()
            assert first.ws is not None
            assert first.ws.transport is not None
            first.ws.transport.abort()
            await ws.wait_closed()
    assert listener.messages == ["connection 1", "connection 2"]
    assert listener.calls.count("open") == 2
    await until(lambda: listener.calls.count("close") == 2)


async def test_a_ping_is_answered_before_the_echo_that_follows_it() -> None:
    made = Made()
    async with listening(made, compression=None) as server:
        peer = await raw_peer(server)
        peer.engine.send_ping(b"p")
        peer.engine.send_binary(b"payload")
        await peer.flush()
        first = await peer.next_event()
        second = await peer.next_event()
        assert isinstance(first, Pong)
        assert first.data == b"p"
        assert isinstance(second, Message)
        assert second.data == b"payload"
        listener = await made.first()
        assert listener.ws is not None
        assert listener.ws.state is State.OPEN
        peer.abort()
