"""The asyncio connection behaves the same with the connection core's one-call paths and without.

``Connection.buffer_updated`` hands each read to ``receive_messages`` first,
``send`` and ``send_nowait`` a whole message to ``write_message``, and the
general path tries ``message_frame`` (see :mod:`tether.messages`,
:mod:`tether.asyncio.connection` and :mod:`tether.protocol.connection`). A
connection whose paths always decline does everything through the engine's
general path, as before them. The tests run the same random scenario (reads of a
random frame stream cut anywhere, sends, reads from the queue) on a
connection with the C functions, one with their Python twins and one with
the paths declining, each over a transport that records every call, and
compare the calls, the messages read and how each connection ended. A
fourth connection also has the accelerator's ``data_received`` and
``__anext__`` methods (``data_received_method``, ``anext_method``) in place
of the Python ones, which the others keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.protocol.connection_helpers import build_frame, parse_all
from tests.scripts import script_output
from tether.asyncio import connection as connection_module
from tether.asyncio.connection import (
    READ_BUFFER_SIZE,
    Connection,
    anext_python,
    data_received_python,
    send_python,
    write_message_python,
)
from tether.exceptions import ConnectionClosed
from tether.extensions.base import Extension
from tether.messages import receive_messages_python
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import Connection as Engine
from tether.protocol.connection import State
from tether.protocol.frames import Frame, Opcode
from tether.protocol.server import ServerProtocol

# Each path: receive_messages, message_frame, write_message,
# Connection.data_received (which calls the first; the C method calls the C
# function whatever the first), Connection.__anext__ and Connection.send (the
# C method calls the C write_message whatever the third).
C_METHODS = (
    speedups.data_received_method(Connection),
    speedups.anext_method(Connection),
    speedups.send_method(Connection, send_python),
)
PYTHON_METHODS = (data_received_python, anext_python, send_python)
PATHS = {
    "c": (
        speedups.receive_messages,
        speedups.message_frame,
        speedups.write_message,
        *PYTHON_METHODS,
    ),
    "c methods": (
        speedups.receive_messages,
        speedups.message_frame,
        speedups.write_message,
        *C_METHODS,
    ),
    "python": (
        receive_messages_python,
        Engine.message_frame,
        write_message_python,
        *PYTHON_METHODS,
    ),
    "general": (lambda *args: -1, lambda *args: None, lambda *args: None, *PYTHON_METHODS),
}


class RecordingTransport:
    """A transport that keeps nothing and records what the connection asked of it."""

    def __init__(self, masks: bool) -> None:
        self.masks = masks
        self.calls: list[tuple[Any, ...]] = []
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.calls.append(("write", self._frames(bytes(data))))

    def writelines(self, lines: list[bytes]) -> None:
        self.calls.append(("write", self._frames(b"".join(lines))))

    def _frames(self, data: bytes) -> object:
        # A client's masking keys are random: compare what the frames carry.
        return parse_all(data, expect_mask=self.masks) if self.masks else data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append(("close",))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort",))
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.calls.append(("write_eof",))

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading",))

    def resume_reading(self) -> None:
        self.calls.append(("resume_reading",))

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


_PAYLOADS = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=10).map(str.encode),
    st.sampled_from([b"\xff", b"\xe2\x82", bytes(300), b"x" * 70_000, b"\x03\xe8bye"]),
)
# Whole messages mostly, then fragments, control frames (a close among them)
# and frames the engine refuses.
_FRAMES = st.tuples(
    st.sampled_from([0x81, 0x82, 0x82, 0x81, 0x82, 0x01, 0x00, 0x80, 0x89, 0x8A, 0x88, 0xC2]),
    _PAYLOADS,
)
_ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("read"),
            st.one_of(st.integers(min_value=1, max_value=400), st.just(1 << 20)),
        ),
        st.tuples(
            st.just("send"),
            st.one_of(st.binary(max_size=20), st.text(max_size=10), st.just(b"y" * 70_000)),
            st.sampled_from([None, True, False]),
        ),
        st.tuples(st.just("recv")),
        st.tuples(st.just("next")),
        # Sends in one loop iteration: gathered, and written together at
        # the gather limit (16 KiB, less what the transport holds beyond
        # write_limit less that) or at the next iteration.
        st.tuples(
            st.just("burst"),
            st.lists(
                st.one_of(st.binary(max_size=20), st.text(max_size=10), st.just(bytes(6000))),
                min_size=1,
                max_size=6,
            ),
            st.sampled_from([0, 20_000, 40_000]),
        ),
        st.tuples(st.just("nowait"), st.one_of(st.binary(max_size=20), st.text(max_size=10))),
        # The transport starts closing on its own: what is sent is dropped.
        st.tuples(st.just("closing")),
    ),
    max_size=12,
)


async def _scenario(
    server: bool,
    stream: bytes,
    actions: list[tuple[Any, ...]],
    max_queue: int | None,
    max_size: int,
    *,
    extension: Callable[[], Extension] | None = None,
) -> tuple[object, ...]:
    engine = ServerProtocol(max_size=max_size) if server else ClientProtocol("ws://x/")
    engine.state = State.OPEN
    if not server:
        engine.max_size = engine._fast_max_size = max_size
    if extension is not None:
        # As the handshake would have agreed on it.
        engine._set_extensions([extension()])
    ws = Connection(engine, ping_interval=None, max_queue=max_queue)
    transport = RecordingTransport(masks=not server)
    ws.connection_made(transport)  # type: ignore[arg-type]
    received: list[object] = []
    pos = 0
    for action in actions:
        if action[0] == "read" and pos < len(stream):
            # An event loop never reads more than the buffer it was lent holds.
            size = min(action[1], len(stream) - pos, READ_BUFFER_SIZE)
            ws.get_buffer(-1)[:size] = stream[pos : pos + size]
            ws.buffer_updated(size)
            pos += size
        elif action[0] == "send":
            try:
                await ws.send(action[1], action[2])
            except ConnectionClosed as exc:
                received.append(("send refused", str(exc)))
        elif action[0] == "burst":
            transport.buffered = action[2]
            try:
                for message in action[1]:
                    await ws.send(message)
            except ConnectionClosed as exc:
                received.append(("send refused", str(exc)))
        elif action[0] == "nowait":
            try:
                ws.send_nowait(action[1])
            except ConnectionClosed as exc:
                received.append(("send refused", str(exc)))
        elif action[0] == "closing":
            transport.closing = True
        elif action[0] == "recv" and ws._messages.ready:
            received.append(await ws.recv())
        elif action[0] == "next" and ws._messages.ready:
            try:
                received.append(await anext(ws))
            except StopAsyncIteration:
                received.append("stopped")
        # The loop runs between actions: gathered frames leave, tasks run.
        await asyncio.sleep(0)
    received.extend(ws._messages.get() for _ in range(ws._messages.ready))
    protocol = ws.protocol
    return (
        transport.calls,
        received,
        ws._reading_paused,
        protocol.state,
        protocol.close_rcvd,
        protocol.close_sent,
        protocol.close_code,
        None if protocol.error is None else str(protocol.error),
    )


@given(
    server=st.booleans(),
    frames=st.lists(_FRAMES, max_size=10),
    actions=_ACTIONS,
    max_queue=st.sampled_from([None, 1, 2, 16]),
    max_size=st.sampled_from([1 << 20, 40]),
)
@settings(max_examples=150, deadline=None)
# A read of whole messages that fills the queue: reading pauses.
@example(True, [(0x82, b"a"), (0x81, b"b")], [("read", 1 << 20)], 1, 1 << 20)
# Whole messages, then a ping: the rest goes to the engine, and the queue
# is found full once it has.
@example(False, [(0x82, b"a"), (0x89, b"p")], [("read", 1 << 20)], 1, 1 << 20)
# ...then a close: no pause while closing.
@example(True, [(0x82, b"a"), (0x88, b"\x03\xe8")], [("read", 1 << 20)], 1, 1 << 20)
# Sends gathered in one iteration, before and after a read.
@example(
    False,
    [(0x82, b"a")],
    [("send", b"1", None), ("send", "2", None), ("read", 1 << 20), ("send", b"3", True)],
    None,
    1 << 20,
)
def test_the_core_paths_change_nothing_but_the_cost(
    server: bool,
    frames: list[tuple[int, bytes]],
    actions: list[tuple[Any, ...]],
    max_queue: int | None,
    max_size: int,
) -> None:
    parts = []
    for index, (first, payload) in enumerate(frames):
        if first & 0x08:
            payload = payload[:125]
        key = bytes([index, 1, 2, 3]) if server else None
        parts.append(
            build_frame(first & 0x0F, payload, fin=bool(first & 0x80), rsv=first & 0x70, key=key)
        )
    stream = b"".join(parts)
    assert_every_path_alike(lambda: _scenario(server, stream, actions, max_queue, max_size))


def assert_every_path_alike(scenario: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """Run the coroutine ``scenario()`` makes with each of :data:`PATHS`, each in a fresh loop.

    Its outcome with the C functions, with the C methods and with the Python
    twins must be its outcome on the general path.
    """
    outcomes = {}
    for name, (receive, frame_of, write, data_received, next_message, send) in PATHS.items():
        with (
            mock.patch.object(connection_module, "receive_messages", receive),
            mock.patch.object(connection_module, "message_frame", frame_of),
            mock.patch.object(connection_module, "write_message", write),
            mock.patch.object(Connection, "data_received", data_received),
            mock.patch.object(Connection, "__anext__", next_message),
            mock.patch.object(Connection, "send", send),
        ):
            outcomes[name] = asyncio.run(scenario())
    assert outcomes["c"] == outcomes["general"]
    assert outcomes["c methods"] == outcomes["general"]
    assert outcomes["python"] == outcomes["general"]


def test_write_message_refuses_what_is_not_an_asyncio_connection() -> None:
    with pytest.raises(TypeError, match="asyncio connection"):
        speedups.write_message(ClientProtocol("ws://x/"), b"", None)
    with pytest.raises(TypeError, match="3 arguments"):
        speedups.write_message(object(), b"")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "write", [speedups.write_message, write_message_python], ids=["c", "python"]
)
def test_write_message_gathers_frames_of_every_size_in_order(
    write: Callable[[Connection, object, bool | None], bool | None],
) -> None:
    # The C function builds gathered frames in the gathered buffer itself,
    # which it allocates ahead and grows: frames small and large, masked,
    # text and binary, leave in order and intact, and a buffer someone holds
    # a view of is not written to (BufferError, as bytearray's += raises).
    messages: list[str | bytes] = [b"a", "b" * 200, bytes(70_000), "é" * 300, b"c" * 5000]

    async def scenario() -> tuple[list[tuple[Any, ...]], type[BaseException] | None]:
        engine = ClientProtocol("ws://x/")
        engine.state = State.OPEN
        ws = Connection(engine, ping_interval=None)
        transport = RecordingTransport(masks=True)
        ws.connection_made(transport)  # type: ignore[arg-type]
        for _ in range(3):
            for message in messages:
                assert write(ws, message, None) is False
        assert ws._gathered is not None
        view = memoryview(ws._gathered)
        raised: type[BaseException] | None = None
        try:
            write(ws, b"held", None)
        except BufferError as exc:
            raised = type(exc)
        view.release()
        await asyncio.sleep(0)
        return transport.calls, raised

    calls, raised = asyncio.run(scenario())
    assert raised is BufferError
    frames = [frame for call in calls for frame in call[1]]
    expected = [
        Frame(
            Opcode.BINARY if isinstance(m, bytes) else Opcode.TEXT,
            m if isinstance(m, bytes) else m.encode(),
        )
        for m in messages * 3
    ]
    assert frames == expected
    # Written at once twice, then in gathers of at most about 16 KiB, but for
    # the frames larger than that.
    assert 4 < len(calls) < len(expected)


@pytest.mark.parametrize(
    "write", [speedups.write_message, write_message_python], ids=["c", "python"]
)
def test_write_message_declines_until_the_connection_has_a_transport(
    write: Callable[[Connection, object, bool | None], bool | None],
) -> None:
    async def scenario() -> tuple[bool | None, bool | None, list[tuple[Any, ...]]]:
        engine = ClientProtocol("ws://x/")
        engine.state = State.OPEN
        ws = Connection(engine, ping_interval=None)
        before = write(ws, b"early", None)
        transport = RecordingTransport(masks=True)
        ws.connection_made(transport)  # type: ignore[arg-type]
        after = write(ws, b"now", None)
        return before, after, transport.calls

    before, after, calls = asyncio.run(scenario())
    assert before is None
    assert after is False
    assert calls == [("write", [Frame(Opcode.BINARY, b"now")])]


class SlottedTransport:
    """A transport without instance dictionaries, as uvloop's: C calls its methods unnamed."""

    __slots__ = ("closing", "written")

    def __init__(self) -> None:
        self.closing = False
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@pytest.mark.parametrize(
    "write", [speedups.write_message, write_message_python], ids=["c", "python"]
)
def test_write_message_sees_a_transport_class_change(
    write: Callable[[Connection, object, bool | None], bool | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # C remembers the last such class's write and is_closing, with the
    # class's version tag: a class changed since is looked up again.
    async def send(ws: Connection, message: bytes) -> bool | None:
        ws._sent_since_wait = False  # as if it waited for input: written at once
        return write(ws, message, None)

    async def scenario() -> tuple[list[Any], list[bytes], list[bytes]]:
        engine = ServerProtocol()
        engine.state = State.OPEN
        ws = Connection(engine, ping_interval=None)
        transport = SlottedTransport()
        ws.connection_made(transport)  # type: ignore[arg-type]
        results = [await send(ws, b"one")]
        elsewhere: list[bytes] = []
        monkeypatch.setattr(SlottedTransport, "write", lambda self, data: elsewhere.append(data))
        results.append(await send(ws, b"two"))
        monkeypatch.setattr(SlottedTransport, "is_closing", lambda self: True)
        results.append(await send(ws, b"three"))  # declined: the transport is closing
        return results, transport.written, elsewhere

    results, written, elsewhere = asyncio.run(scenario())
    assert results == [False, False, None]
    assert written == [b"\x82\x03one"]
    assert elsewhere == [b"\x82\x03two"]


class ViewExtension(Extension):
    """An extension of whole messages whose frames come as memoryviews, not bytes.

    ``encode_message`` promises bytes, but a bytes-like frame goes out as
    well on the Python path: ``transport.write`` and the gathering take any.
    """

    name = "x-views"
    rsv_mask = 0x40
    whole_messages = True

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        return memoryview(build_frame(first & 0x0F, data, rsv=0x40, key=key))  # type: ignore[return-value]

    def decode_message(self, data: Any, key: bytes | None, max_size: int | None) -> bytes:
        return bytes(data)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


Burst = tuple[list[str], list[tuple[str, int | None]]]


async def _burst(write_limit: int, extension: Extension | None, sizes: list[int]) -> Burst:
    """Send messages of ``sizes`` in one loop iteration; what reached the transport."""
    engine = ServerProtocol()
    engine.state = State.OPEN
    if extension is not None:
        engine._set_extensions([extension])
    ws = Connection(engine, ping_interval=None, write_limit=write_limit)
    transport = RecordingTransport(masks=False)
    ws.connection_made(transport)  # type: ignore[arg-type]
    outcome: list[str] = []
    for size in sizes:
        try:
            ws.send_nowait(bytes(size))
        except Exception as exc:  # compared between the twins
            outcome.append(repr(exc))
    await asyncio.sleep(0)
    return outcome, [(call[0], len(call[1]) if len(call) > 1 else None) for call in transport.calls]


@pytest.mark.parametrize(
    ("write_limit", "extension"),
    [
        # A write_limit past sys.maxsize bounds nothing: the accelerator
        # raised OverflowError on each gathered send.
        (1 << 64, None),
        # Frames that are not bytes: the accelerator took their size as
        # bytes' (a memoryview's is not its length) and gathered the 6 KB
        # frames past the gather limit.
        (1 << 16, ViewExtension()),
    ],
    ids=["huge-write-limit", "memoryview-frames"],
)
def test_write_message_gathers_as_its_twin(write_limit: int, extension: Extension | None) -> None:
    sizes = [10, 10, 6000, 6000, 6000, 6000, 10]
    outcomes: dict[str, Burst] = {}
    for name, write in (("c", speedups.write_message), ("python", write_message_python)):
        with mock.patch.object(connection_module, "write_message", write):
            outcomes[name] = asyncio.run(_burst(write_limit, extension, sizes))
    assert outcomes["c"] == outcomes["python"]
    errors, writes = outcomes["python"]
    assert errors == []
    # The first two at once, then the gathered ones once they reach the
    # gather limit (16 KiB), then the rest at the next loop iteration.
    assert [size for _, size in writes] == [12, 12, 3 * 6004, 6004 + 12]


_SWAPPED_ENGINE = """
import asyncio, gc
from tether.asyncio.connection import Connection
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import State
from tether.protocol.server import ServerProtocol

def engine(extensions):
    made = ServerProtocol()
    made.state = State.OPEN
    made._set_extensions(extensions)
    return made

class Swapping:
    # A text flag whose truth test gives the connection another engine:
    # the one the send started with, and its extension, are freed.
    def __init__(self, ws):
        self.ws = ws
    def __bool__(self):
        self.ws.protocol = engine([])
        gc.collect()
        return True

class Transport:
    def __init__(self):
        self.written = []
    def write(self, data):
        self.written.append(bytes(data))
    def is_closing(self):
        return False
    def set_write_buffer_limits(self, high=None, low=None):
        pass
    def get_write_buffer_size(self):
        return 0

async def main():
    ws = Connection(engine([PerMessageDeflate(False, False, 12, 12)]), ping_interval=None)
    transport = Transport()
    ws.connection_made(transport)
    ws.send_nowait(b"compressed by the first engine", Swapping(ws))
    (frame,) = transport.written
    print(hex(frame[0]))

asyncio.run(main())
"""


@pytest.mark.parametrize("accelerated", [True, False], ids=["c", "python"])
def test_a_send_whose_text_flag_replaces_the_engine_reads_no_freed_memory(
    accelerated: bool,
) -> None:
    # write_message and message_frame held the engine and its extension by
    # borrowed references across the text flag's __bool__: the accelerator
    # crashed (a segmentation fault, with or without the debug allocator).
    output = script_output(_SWAPPED_ENGINE, accelerated=accelerated, debug_allocator=True)
    # A compressed text frame, from the extension the send started with.
    assert output == ["0xc1"]
