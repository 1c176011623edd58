"""A listener gets the same messages as ``recv()``, however the bytes are split into reads.

And the C ``deliver_messages`` does what its Python twin does, on any bytes.

Hypothesis draws a server's side of a connection (its handshake response,
messages whole or in fragments, pings, invalid UTF-8, messages over
``max_size``, a close frame, with or without permessage-deflate) and the
read boundaries; the same bytes then feed, in process and read by read
through ``buffer_updated``, a :class:`ListenerClientConnection` and a plain
:class:`ClientConnection`, which is then drained with ``recv()``. Both must
see the same messages, in order, and end with the same close code.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tether
import tether._speedups as speedups
from tests.protocol.connection_helpers import parse_all
from tether.asyncio import listener as listener_module
from tether.asyncio.client import ClientConnection
from tether.asyncio.connection import Connection
from tether.asyncio.listener import (
    ListenerClientConnection,
    ListenerConnection,
    deliver_messages_python,
)
from tether.exceptions import ConnectionClosed
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import _OPEN, Role
from tether.protocol.connection import Connection as Engine
from tether.protocol.events import RequestReceived
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.server import ServerProtocol


class RecordingTransport(asyncio.Transport):
    """Keeps what is written; reading and closing are only noted."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass(frozen=True)
class Send:
    data: str | bytes
    cuts: tuple[int, ...]
    """Where the message is split into frames (empty: one frame)."""
    ping: bool


@dataclass(frozen=True)
class BadText:
    """A text message that is not UTF-8."""


Step = Send | BadText

steps = st.lists(
    st.one_of(
        st.builds(
            Send,
            data=st.one_of(st.text(max_size=200), st.binary(max_size=200)),
            cuts=st.lists(st.integers(0, 200), max_size=3).map(lambda c: tuple(sorted(c))),
            ping=st.booleans(),
        ),
        st.just(BadText()),
    ),
    max_size=25,
)


class Collector(tether.Listener):
    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.closed = 0

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        self.messages.append(message)

    def on_close(self, ws: Connection) -> None:
        self.closed += 1


def server_bytes(request: bytes, compress: bool, script: list[Step], close: int | None) -> bytes:
    """What a server engine answers to ``request``: its handshake response, then ``script``."""
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if compress else None, max_size=None
    )
    server.receive_data(request)
    (event,) = server.events()
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    for step in script:
        if isinstance(step, BadText):
            server.send_text(b"\xff\xfe not UTF-8")
            continue
        data = step.data.encode() if isinstance(step.data, str) else step.data
        text = isinstance(step.data, str)
        pieces = [data[a:b] for a, b in zip((0, *step.cuts), (*step.cuts, len(data)), strict=True)]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if index == 0:
                (server.send_text if text else server.send_binary)(piece, fin=last)
            else:
                server.send_continuation(piece, fin=last)
            if step.ping and index == 0:
                server.send_ping(b"ping")
    if close is not None and server.state is _OPEN:
        server.send_close(close)
    return b"".join(server.data_to_send())


def feed(connection: Connection, data: bytes, cuts: list[int]) -> None:
    """Feed ``data`` to ``connection`` as the event loop would, in reads split at ``cuts``."""
    bounds = sorted({min(cut, len(data)) for cut in cuts})
    for start, end in zip([0, *bounds], [*bounds, len(data)], strict=True):
        if start == end:
            continue
        buffer = connection.get_buffer(end - start)
        buffer[: end - start] = data[start:end]
        connection.buffer_updated(end - start)
    connection.eof_received()
    connection.connection_lost(None)


@dataclass(frozen=True)
class Case:
    compress: bool
    max_size: int | None
    max_queue: int
    script: list[Step]
    close: int | None
    """The code of the server's close frame at the end, if any."""
    cuts: list[int]
    """Where the bytes are split into reads."""


cases = st.builds(
    Case,
    compress=st.booleans(),
    max_size=st.one_of(st.none(), st.integers(0, 300)),
    max_queue=st.integers(1, 4),
    script=steps,
    close=st.one_of(st.none(), st.sampled_from([1000, 1001, 4000])),
    cuts=st.lists(st.integers(0, 6000), max_size=30),
)


async def compare(case: Case) -> None:
    extensions = [ClientPerMessageDeflateFactory()] if case.compress else None
    received: list[list[str | bytes]] = []
    codes = []
    for listening in (True, False):
        protocol = ClientProtocol(
            "ws://localhost/", extensions=extensions, max_size=case.max_size, streaming=True
        )
        collector = Collector()
        connection: ClientConnection
        if listening:
            connection = ListenerClientConnection(
                protocol, listener=collector, ping_interval=None, max_queue=case.max_queue
            )
        else:
            connection = ClientConnection(protocol, ping_interval=None, max_queue=None)
        transport = RecordingTransport()
        connection.connection_made(transport)
        request = b"".join(transport.written)
        feed(connection, server_bytes(request, case.compress, case.script, case.close), case.cuts)
        if listening:
            messages = collector.messages
            assert collector.closed == 1
        else:
            messages = []
            while True:
                try:
                    messages.append(await connection.recv())
                except ConnectionClosed:
                    break
        received.append(messages)
        codes.append(connection.close_code)
    assert received[0] == received[1]
    assert codes[0] == codes[1]


@settings(max_examples=150, deadline=None)
@given(case=cases)
def test_listener_gets_what_recv_gets(case: Case) -> None:
    asyncio.run(compare(case))


# The C deliver_messages and its Python twin.

frames = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.CONT]),
            st.one_of(st.binary(max_size=300), st.text(max_size=100).map(str.encode)),
            st.booleans(),
        ),
        # Anything at all: a broken frame, or the start of one.
        st.binary(min_size=1, max_size=12),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    items=frames,
    masked=st.booleans(),
    max_size=st.one_of(st.none(), st.integers(0, 400)),
    raise_at=st.one_of(st.none(), st.integers(0, 5)),
    busy=st.booleans(),
)
def test_deliver_messages_twins_agree(
    items: list[Any], masked: bool, max_size: int | None, raise_at: int | None, busy: bool
) -> None:
    data = b""
    for item in items:
        if isinstance(item, bytes):
            data += item
        else:
            opcode, payload, fin = item
            data += serialize_frame(opcode, payload, fin=fin, mask=masked)
    outcomes: list[tuple[int, object, list[Any]]] = []
    for deliver in (speedups.deliver_messages, deliver_messages_python):
        engine = Engine(Role.SERVER if masked else Role.CLIENT, max_size=max_size)
        if busy:
            # Half a frame buffered: the engine is not free, nothing is delivered.
            engine.receive_data(serialize_frame(Opcode.BINARY, b"abcd", mask=masked)[:3])
        outcomes.append(delivered(deliver, engine, data, raise_at))
    assert outcomes[0] == outcomes[1]


def delivered(
    deliver: Any, engine: Engine, data: bytes, raise_at: int | None, *limit: int | None
) -> tuple[int, tuple[Any, ...] | None, list[Any]]:
    """What ``deliver`` (``deliver_messages`` or its twin) does with ``data`` on ``engine``.

    Its ``on_message`` keeps each connection and message it gets, and raises
    ValueError at message number ``raise_at`` (from 0). Return how many
    bytes were taken, the ValueError's arguments (``None``: none raised) and
    what ``on_message`` got. ``limit``, if given, is deliver's last argument.
    """
    got: list[Any] = []

    def on_message(connection: object, message: str | bytes) -> None:
        got.append((connection, message))
        if len(got) - 1 == raise_at:
            raise ValueError(len(got))

    result = deliver(engine, memoryview(data), on_message, "connection", *limit)
    if isinstance(result, tuple):
        taken, exc = result
        assert isinstance(exc, ValueError)
        return taken, exc.args, got
    return result, None, got


class Interrupt(BaseException):
    """Not an Exception: what KeyboardInterrupt or SystemExit are to a callback."""


@pytest.mark.parametrize("deliver", [speedups.deliver_messages, deliver_messages_python])
def test_deliver_messages_lets_what_is_not_an_exception_through(deliver: Any) -> None:
    # The listener closes with 1011 after an Exception from on_message; a
    # KeyboardInterrupt or SystemExit goes on up to the event loop instead, as
    # from the engine's general path (Listener._deliver catches Exception only).
    data = b"".join(serialize_frame(Opcode.BINARY, bytes([n]), mask=True) for n in range(3))
    got: list[object] = []

    def on_message(connection: object, message: str | bytes) -> None:
        got.append(message)
        if len(got) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        deliver(Engine(Role.SERVER), data, on_message, None)
    assert got == [b"\x00", b"\x01"]


@pytest.mark.parametrize("deliver", [speedups.deliver_messages, deliver_messages_python])
def test_deliver_messages_with_a_bound_past_what_an_object_holds(deliver: Any) -> None:
    data = serialize_frame(Opcode.TEXT, b"hi", mask=True)
    got: list[object] = []
    engine = Engine(Role.SERVER, max_size=1 << 64)
    assert deliver(engine, data, lambda ws, message: got.append(message), None) == len(data)
    assert got == ["hi"]


class Reentrant(tether.Listener):
    """A listener whose on_message acts on its own connection in the middle of a read."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.messages: list[str | bytes] = []

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        self.messages.append(message)
        if self.action == "send":
            ws.send_nowait(message)
        elif len(self.messages) == 1 and self.action == "close":
            ws._start_close(4000, "from on_message")
        elif len(self.messages) == 1 and self.action == "drop":
            # The last reference to the listener but the bound on_message.
            assert isinstance(ws, ListenerConnection)
            ws.listener = None
        elif len(self.messages) == 2 and self.action == "raise":
            raise ValueError("on purpose")


@pytest.mark.parametrize("action", ["send", "close", "drop", "raise"])
async def test_callbacks_acting_on_their_connection_in_a_read(
    action: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One read: four messages, a ping, one more. The C deliver_messages, its
    # Python twin and the engine's general path (which parses the whole read
    # before the first callback) give the same messages, replies and state;
    # only the pong may come before the replies on the general path.
    frames = [serialize_frame(Opcode.BINARY, bytes([n]) * 3, mask=False) for n in range(4)]
    frames += [serialize_frame(Opcode.PING, b"p", mask=False)]
    frames += [serialize_frame(Opcode.TEXT, b"last", mask=False)]
    outcomes = []
    for deliver in (speedups.deliver_messages, deliver_messages_python, None):
        listener = Reentrant(action)
        connection = ListenerClientConnection(
            ClientProtocol("ws://localhost/"), listener=listener, ping_interval=None
        )
        transport = RecordingTransport()
        connection.connection_made(transport)
        request = b"".join(transport.written)
        transport.written.clear()
        connection.data_received(server_bytes(request, False, [], None))
        assert connection.listener is listener
        if deliver is None:
            # The general path alone: as with an engine that logs its frames.
            connection._plain = False
        else:
            monkeypatch.setattr(listener_module, "deliver_messages", deliver)
        connection.data_received(b"".join(frames))
        written = parse_all(b"".join(transport.written), expect_mask=True)
        pongs = [frame for frame in written if frame.opcode is Opcode.PONG]
        others = [frame for frame in written if frame.opcode is not Opcode.PONG]
        outcomes.append((listener.messages, pongs, others, connection.protocol.state))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    expected = [b"\x00" * 3, b"\x01" * 3, b"\x02" * 3, b"\x03" * 3, "last"]
    assert outcomes[0][0] == (expected[:2] if action == "raise" else expected)
