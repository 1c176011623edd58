"""The one-call paths of the connection core give what the engine's general path gives.

``receive_messages`` (in C, and its twin ``receive_messages_python``) takes a
read's whole messages straight into a :class:`~tether.messages.MessageQueue`;
``message_frame`` (in C, and ``Connection.message_frame``) sends one message
and returns its frame. Both may only ever do what ``receive_data`` then
``events``, or ``send_message`` then ``data_to_send``, would have done, and
nothing at all when they decline. The tests feed the same random frame
streams, cut at random read boundaries, to an engine through each path and
compare the queues, the other events, the bytes written and how the
connection ended.
"""

from __future__ import annotations

import itertools
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# The C module is imported directly: these tests compare both versions
# whichever of the two the rest of the suite runs on.
import tether._speedups as speedups
from tests.protocol.connection_helpers import build_frame, parse_all
from tether.exceptions import InvalidState
from tether.extensions.base import Extension
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.framelog import enable_frame_log
from tether.messages import MessageQueue, receive_messages_python, take_message_python
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import Event, Fragment, Message
from tether.protocol.frames import Frame

Receive = Callable[[Connection, Any, MessageQueue, Any], int]
FrameOf = Callable[[Connection, Any, Any], bytes | None]

RECEIVERS: list[Receive] = [receive_messages_python, speedups.receive_messages]
FRAMERS: list[FrameOf] = [Connection.message_frame, speedups.message_frame]
IDS = ["python", "c"]


class FrameExtension(Extension):
    """An extension that takes every frame (no RSV bit of its own), changing none."""

    name = "x-frames"

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


class Waiter:
    """What the reader waits on: a future's ``done`` and ``set_result``, recorded."""

    def __init__(self, done: bool = False) -> None:
        self.finished = done
        self.woken = 0

    def done(self) -> bool:
        return self.finished

    def set_result(self, result: None) -> None:
        assert not self.finished
        self.finished = True
        self.woken += 1


# The frames a peer may send: messages whole or in pieces, control frames,
# and what the engine refuses (bad UTF-8, reserved opcodes, RSV bits, size).
_PAYLOADS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(str.encode),
    st.sampled_from([b"\xff", b"\xce", b"\xed\xa0\x80", bytes(200), b"x" * 70_000]),
)
_FRAMES = st.tuples(
    st.sampled_from(
        [0x81, 0x81, 0x82, 0x82, 0x82, 0x01, 0x02, 0x00, 0x80, 0x89, 0x8A, 0x88, 0xC2, 0x83, 0x0B]
    ),
    _PAYLOADS,
)


def _stream(frames: list[tuple[int, bytes]], role: Role, broken_mask: bool) -> bytes:
    """The bytes of ``frames`` as the peer of a ``role`` engine sends them."""
    masked = role is Role.SERVER
    parts = []
    for index, (first, payload) in enumerate(frames):
        if first & 0x08:
            payload = payload[:125]  # control frames: at most 125 bytes
        opcode, fin, rsv = first & 0x0F, bool(first & 0x80), first & 0x70
        # A frame masked wrongly, now and then, when asked.
        mask = masked != (broken_mask and index == len(frames) - 1)
        key = bytes([index, 7, 0x80 | index, 3]) if mask else None
        parts.append(build_frame(opcode, payload, fin=fin, rsv=rsv, key=key))
    return b"".join(parts)


def _reads(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)] or [b""]


def _engine(role: Role, max_size: int | None, *, logged: bool = False) -> Connection:
    engine = Connection(role, max_size=max_size)
    if logged:
        enable_frame_log(engine, _DebugLogger())
    return engine


class _DebugLogger:
    """A logger that takes debug records and drops them: frame logging on."""

    def isEnabledFor(self, level: int) -> bool:
        return True

    def debug(self, *args: object, **kwargs: object) -> None:
        pass


def _outcome(engine: Connection) -> tuple[object, ...]:
    """How the engine stands: state, close frames, error, whether to close TCP."""
    error = engine.error
    return (
        engine.state,
        engine.close_rcvd,
        engine.close_sent,
        engine.close_rcvd_then_sent,
        engine.close_code,
        None if error is None else (type(error), str(error), error.code),
        engine.close_transport,
        engine.held_back,
    )


def _items(queue: MessageQueue) -> list[str | bytes | Fragment]:
    return list(queue._items or ())


def _feed_general(engine: Connection, queue: MessageQueue, data: bytes) -> list[Event]:
    """The general path: the engine's events, messages to the queue; return the others."""
    engine.receive_data(data)
    return list(queue.extend(engine.events()))


def _feed_core(
    receive: Receive, engine: Connection, queue: MessageQueue, data: bytes | memoryview
) -> tuple[list[Event], int, int]:
    """The core path, then the general path for what it did not take, as the APIs do it.

    Return the other events, how many bytes the core took and how many
    messages it queued (checked against the waiter).
    """
    waiter = Waiter()
    ready = queue.ready
    taken = receive(engine, data, queue, waiter)
    queued = queue.ready - ready
    assert waiter.woken == (1 if queued else 0)
    assert -1 <= taken <= len(data)
    if taken == -1:
        assert queued == 0
    if taken != len(data):
        engine.receive_data(data[max(taken, 0) :])
    return list(queue.extend(engine.events())), taken, queued


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
@given(
    frames=st.lists(_FRAMES, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=100_000), max_size=5),
    role=st.sampled_from([Role.SERVER, Role.CLIENT]),
    max_size=st.sampled_from([None, 1 << 20, 30]),
    options=st.tuples(st.booleans(), st.booleans()),
)
@settings(max_examples=200, deadline=None)
def test_receive_messages_matches_the_general_path(
    receive: Receive,
    frames: list[tuple[int, bytes]],
    cuts: list[int],
    role: Role,
    max_size: int | None,
    *,
    options: tuple[bool, bool],
) -> None:
    # A frame masked wrongly at the end; the reads as views into a larger buffer.
    broken_mask, view = options
    data = _stream(frames, role, broken_mask)
    general, core = _engine(role, max_size), _engine(role, max_size)
    general_queue, core_queue = MessageQueue(None), MessageQueue(None)
    for read in _reads(data, cuts):
        expected = _feed_general(general, general_queue, read)
        chunk = memoryview(b"#" + read)[1:] if view else read
        others, taken, queued = _feed_core(receive, core, core_queue, chunk)
        assert others == expected
        assert _items(core_queue) == _items(general_queue)
        assert core_queue.ready == general_queue.ready
        assert _sent(core, core.data_to_send()) == _sent(general, general.data_to_send())
        assert _outcome(core) == _outcome(general)
        if taken > 0:
            # What the core took came whole: messages, in one plain frame each.
            assert queued >= 1


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_takes_a_read_of_whole_messages(receive: Receive) -> None:
    engine = _engine(Role.SERVER, None)
    queue = MessageQueue(4)
    data = build_frame(0x1, "héllo".encode(), key=b"abcd") + build_frame(
        0x82, b"\x00\x01", key=b"\x00\x00\x00\x00"
    )
    waiter = Waiter()
    assert receive(engine, data, queue, waiter) == len(data)
    # A whole message waits as its data alone.
    assert _items(queue) == ["héllo", b"\x00\x01"]
    assert queue.ready == 2
    assert waiter.woken == 1
    # The engine saw nothing: no events, nothing to send, still open.
    assert engine.events() == []
    assert engine.data_to_send() == []
    # A waiter already done is left alone; None is no waiter.
    assert receive(engine, data, queue, Waiter(done=True)) == len(data)
    assert receive(engine, data, queue, None) == len(data)
    assert queue.ready == 6


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_stops_where_the_general_path_must_go_on(receive: Receive) -> None:
    engine = _engine(Role.CLIENT, 10)
    queue = MessageQueue()
    whole = build_frame(0x2, b"ok")
    for rest, reason in [
        (build_frame(0x9, b"ping"), "control frame"),
        (build_frame(0x1, b"a", fin=False), "fragment"),
        (build_frame(0x2, b"x" * 11), "over max_size"),
        (build_frame(0x1, b"\xff"), "invalid UTF-8"),
        (build_frame(0x2, b"abc")[:-1], "incomplete"),
        (build_frame(0x2, b"abc", key=b"abcd"), "masked at a client"),
    ]:
        waiter = Waiter()
        assert receive(engine, whole + rest, queue, waiter) == len(whole), reason
        assert waiter.woken == 1
    assert queue.ready == 6


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_declines_unless_the_engine_is_free(receive: Receive) -> None:
    frame = build_frame(0x2, b"ok", key=b"abcd")

    def declines(engine: Connection, reason: str) -> None:
        queue = MessageQueue()
        waiter = Waiter()
        assert receive(engine, frame, queue, waiter) == -1, reason
        assert (queue.ready, _items(queue), waiter.woken) == (0, [], 0), reason

    def server(**options: Any) -> Connection:
        return Connection(Role.SERVER, **options)

    closing = server()
    closing.send_close()
    declines(closing, "closing")
    declines(server(state=State.CONNECTING), "connecting")
    buffered = server()
    buffered.receive_data(frame[:3])
    declines(buffered, "bytes buffered")
    partial = server()
    partial.receive_data(build_frame(0x2, bytes(100), key=b"abcd")[:50])
    declines(partial, "a frame half received")
    fragmented = server()
    fragmented.receive_data(build_frame(0x1, b"a", fin=False, key=b"abcd"))
    declines(fragmented, "a message half received")
    budget = server()
    budget.message_budget = 5
    declines(budget, "a message budget")
    # permessage-deflate takes whole messages: tests/protocol/test_connection_core_deflate.py.
    declines(server(extensions=[FrameExtension()]), "an extension that takes frames")
    waiting = server()
    waiting.receive_data(build_frame(0x9, b"", key=b"abcd"))
    declines(waiting, "events waiting")
    declines(_engine(Role.SERVER, None, logged=True), "frame logging")
    done = server()
    done.fail(1011)
    declines(done, "failed")


def test_receive_messages_takes_only_engines_and_queues() -> None:
    engine = Connection(Role.SERVER)
    with pytest.raises(TypeError, match="engine and a MessageQueue"):
        speedups.receive_messages(object(), b"", MessageQueue(), None)
    with pytest.raises(TypeError, match="engine and a MessageQueue"):
        speedups.receive_messages(engine, b"", [], None)
    with pytest.raises(TypeError, match="4 arguments"):
        speedups.receive_messages(engine, b"", MessageQueue())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.receive_messages(engine, "text", MessageQueue(), None)  # type: ignore[arg-type]


# Sending


class Text(str):
    """A str subclass: sent through the general path."""


def _view(data: bytes) -> memoryview:
    return memoryview(data)


_DATA = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.sampled_from(["é" * 30, "\ud800", "x" * 70_000, b"y" * 70_000, b"z" * 300]),
    st.binary(max_size=10).map(bytearray),
    st.binary(max_size=10).map(_view),
    st.text(max_size=5).map(Text),
)


def _sent(engine: Connection, output: list[bytes]) -> list[Any]:
    """The frames of ``output``, unmasked: a client's keys are random."""
    return parse_all(b"".join(output), expect_mask=engine.role is Role.CLIENT)


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
@given(
    role=st.sampled_from([Role.SERVER, Role.CLIENT]),
    data=_DATA,
    text=st.sampled_from([None, True, False, 0, 1]),
    setup=st.sampled_from(
        ["open", "closing", "closed", "fragmented", "pending", "deflate", "frames", "logged"]
    ),
)
@settings(max_examples=300, deadline=None)
def test_message_frame_sends_what_send_message_sends(
    frame_of: FrameOf, role: Role, data: Any, text: Any, setup: str
) -> None:
    def engine() -> Connection:
        extensions: list[Extension] = []
        if setup == "deflate":
            extensions = [PerMessageDeflate(False, False, 15, 15)]
        elif setup == "frames":
            extensions = [FrameExtension()]
        conn = Connection(role, extensions=extensions)
        if setup == "logged":
            enable_frame_log(conn, _DebugLogger())
        elif setup == "closing":
            conn.send_close()
        elif setup == "closed":
            conn.receive_eof()
        elif setup == "fragmented":
            conn.send_binary(b"a", fin=False)
        elif setup == "pending":
            conn.send_ping(b"p")
        return conn

    def send(conn: Connection) -> type[Exception] | None:
        try:
            conn.send_message(data, text)
        except (InvalidState, UnicodeEncodeError) as exc:
            return type(exc)
        return None

    general, core = engine(), engine()
    expected_error = send(general)
    expected = general.data_to_send()
    try:
        frame = frame_of(core, data, text)
    except UnicodeEncodeError:
        assert expected_error is UnicodeEncodeError
        return
    if frame is None:
        # Declined with nothing done: the general path then does it all.
        assert send(core) is expected_error
        output = core.data_to_send()
    else:
        assert expected_error is None
        # permessage-deflate compresses it in the same call.
        assert setup in ("open", "logged", "deflate")
        output = core.data_to_send()
        assert output == (expected[:-1] if setup == "logged" else [])
        output.append(frame)
    assert _sent(core, output) == _sent(general, expected)
    if role is Role.SERVER:
        # Unmasked: the very bytes.
        assert output == expected
    assert _outcome(core) == _outcome(general)


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
def test_message_frame_common_cases(frame_of: FrameOf) -> None:
    server = Connection(Role.SERVER)
    assert frame_of(server, b"hi", None) == b"\x82\x02hi"
    assert frame_of(server, b"hi", True) == b"\x81\x02hi"
    assert frame_of(server, "hé", None) == b"\x81\x03h\xc3\xa9"
    assert frame_of(server, "hi", False) == b"\x82\x02hi"
    assert frame_of(server, "", None) == b"\x81\x00"
    assert frame_of(server, b"x" * 300, None) == b"\x82\x7e\x01\x2c" + b"x" * 300
    # Declined: a large unmasked payload, other types.
    assert frame_of(server, b"x" * 65536, None) is None
    assert frame_of(server, bytearray(b"hi"), None) is None
    assert frame_of(server, Text("hi"), None) is None
    assert frame_of(server, 42, None) is None
    client = Connection(Role.CLIENT)
    frame = frame_of(client, "hé" * 100, None)
    assert frame is not None
    assert parse_all(frame, expect_mask=True)[0].data == ("hé" * 100).encode()
    masked = frame_of(client, b"x" * 70_000, None)
    assert masked is not None
    assert len(masked) == 70_000 + 14


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
def test_message_frame_sees_a_class_change_after_it_sent(frame_of: FrameOf) -> None:
    # The C function remembers the last engine class it checked: a method
    # given to that class, or to its base, afterwards takes effect at once.
    class Engine(Connection):
        pass

    class Subclass(Engine):
        pass

    for cls, changed in ((Engine, Engine), (Subclass, Engine)):
        conn = cls(Role.SERVER)
        assert frame_of(conn, b"hi", None) == b"\x82\x02hi"
        sent: list[object] = []

        def send_message(self: Connection, data: object, text: object = None) -> None:
            sent.append(data)  # noqa: B023 - called within this iteration

        changed.send_message = send_message  # type: ignore[method-assign]
        try:
            assert frame_of(conn, b"hi", None) is None
        finally:
            del changed.send_message
        assert frame_of(conn, b"hi", None) == b"\x82\x02hi"
        # Nothing was sent: a declined call does nothing.
        assert sent == []


def test_message_frame_refuses_what_is_not_an_engine() -> None:
    with pytest.raises(TypeError, match="engine"):
        speedups.message_frame(object(), b"", None)
    with pytest.raises(TypeError, match="3 arguments"):
        speedups.message_frame(Connection(Role.SERVER), b"")  # type: ignore[call-arg]

    class Truthless:
        def __bool__(self) -> bool:
            raise ValueError("no truth")

    with pytest.raises(ValueError, match="no truth"):
        speedups.message_frame(Connection(Role.SERVER), b"", Truthless())  # type: ignore[arg-type]


def _restarted_stream(first: bytes, second: bytes) -> bytes:
    """Compressed data whose first block ends zlib's stream (BFINAL), a new stream after it."""
    ended = zlib.compressobj(wbits=-15)
    fresh = zlib.compressobj(wbits=-15)
    data = ended.compress(first) + ended.flush() + fresh.compress(second)
    return (data + fresh.flush(zlib.Z_SYNC_FLUSH))[:-4]


@pytest.mark.parametrize("max_size", [sys.maxsize - 1, sys.maxsize, 1 << 64])
def test_a_bound_past_what_an_object_holds_bounds_nothing(max_size: int) -> None:
    # max_size takes any int: the C fast paths read it as no bound, and
    # zlib's max_length, which stops at sys.maxsize, gets none either.
    server = Connection(
        Role.SERVER, max_size=max_size, extensions=[PerMessageDeflate(False, False, 15, 15)]
    )
    client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    client.send_text(b"plain", compress=False)
    client.send_message(b"\x00" * 70_000)
    stream = b"".join(client.data_to_send())
    stream += build_frame(0x2, _restarted_stream(b"one ", b"two"), rsv=0x40, key=b"abcd")
    server.receive_data(stream)
    events = server.events()
    messages = [event.data for event in events if isinstance(event, Message)]
    assert len(messages) == len(events)
    assert messages == ["plain", b"\x00" * 70_000, b"one two"]
    assert server.state is State.OPEN


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_with_a_bound_past_what_an_object_holds(receive: Receive) -> None:
    engine = Connection(Role.SERVER, max_size=1 << 64)
    queue = MessageQueue()
    data = build_frame(0x1, b"hi", key=b"abcd")
    assert receive(engine, data, queue, None) == len(data)
    assert queue.get() == "hi"


# Taking messages from the queue

TAKERS = [take_message_python, speedups.take_message]

_ITEMS = st.lists(
    st.one_of(
        st.binary(max_size=5).map(Message),
        st.text(max_size=5).map(Message),
        st.tuples(st.text(max_size=3), st.booleans()).map(
            lambda piece: Fragment(piece[0], True, piece[1])
        ),
    ),
    max_size=5,
)


def _queue_of(items: list[Message | Fragment]) -> MessageQueue:
    queue = MessageQueue(None)
    for item in items:
        queue.put(item)
    return queue


@pytest.mark.parametrize("take", TAKERS, ids=IDS)
@given(items=_ITEMS)
def test_take_message_takes_what_get_gives(
    take: Callable[[MessageQueue], str | bytes | None], items: list[Message | Fragment]
) -> None:
    queue, reference = _queue_of(items), _queue_of(items)
    taken = take(queue)
    if taken is None:
        # Declined, nothing done: nothing ready, or the first message in pieces.
        assert not items or type(items[0]) is not Message
        assert (_items(queue), queue.ready) == (_items(reference), reference.ready)
    else:
        assert type(items[0]) is Message
        assert taken == reference.get()
        assert (_items(queue), queue.ready) == (_items(reference), reference.ready)


def test_take_message_takes_only_queues() -> None:
    with pytest.raises(TypeError, match="MessageQueue"):
        speedups.take_message([])
    assert speedups.take_message(MessageQueue()) is None
