"""Compressed messages on the one-call paths give what the engine's general path gives.

``receive_messages`` (in C, and ``receive_messages_python`` over
``Connection.take_messages``) and ``message_frame`` (in C, and
``Connection.message_frame``) take the whole messages of a connection with
permessage-deflate too: inflated or deflated in the same call. A compressed
frame is consumed whatever comes of it, so the one-call path must fail the
connection itself where the general path would (corrupt data, invalid UTF-8,
a message over ``max_size``), and it must take no more messages from a read
than the queue has room for. The tests feed a compressing peer's frames, cut
at random reads, through each path and compare the queues, the bytes written
and how the connection ended, with context takeover and without.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.protocol.connection_helpers import build_frame
from tests.protocol.test_connection_core import (
    FRAMERS,
    IDS,
    RECEIVERS,
    FrameExtension,
    Receive,
    Waiter,
    _feed_core,
    _feed_general,
    _items,
    _outcome,
    _reads,
    _sent,
)
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.extensions import permessage_deflate
from tether.extensions.base import Extension
from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.messages import MessageQueue, parse_budget
from tether.protocol.connection import Connection, Role, State
from tether.protocol.events import Message
from tether.protocol.frames import Frame, read_messages_python

FrameOf = Callable[[Connection, Any, Any], bytes | None]


def _deflate(no_context: bool, bits: int) -> PerMessageDeflate:
    """Both ends' extension: the same settings each way, so either end decodes the other."""
    return PerMessageDeflate(no_context, no_context, bits, bits)


# What the peer sends: messages compressed (most of them), one sent plain,
# one compressed in two fragments, a ping, and what fails the connection:
# corrupt compressed data, compressed text that is not UTF-8, a message that
# inflates past max_size.
_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("message"), st.one_of(st.text(max_size=60), st.binary(max_size=60))),
        st.tuples(st.just("message"), st.sampled_from(["{'a': 1}" * 40, b"\x00" * 3000])),
        st.tuples(st.just("plain"), st.binary(max_size=20)),
        st.tuples(st.just("fragments"), st.binary(max_size=40)),
        st.tuples(st.just("ping"), st.just(b"p")),
        st.tuples(st.just("corrupt"), st.sampled_from([b"\xff\xff\xff", b"\x07"])),
        st.tuples(st.just("bad text"), st.just(b"\xff\xfe")),
    ),
    max_size=8,
)


def _peer_stream(steps: list[tuple[str, Any]], role: Role, no_context: bool, bits: int) -> bytes:
    """The bytes the peer of a ``role`` engine sends for ``steps``."""
    peer = Connection(
        Role.CLIENT if role is Role.SERVER else Role.SERVER,
        extensions=[_deflate(no_context, bits)],
        max_size=None,
    )
    out: list[bytes] = []
    for index, (kind, data) in enumerate(steps):
        if kind == "message":
            peer.send_message(data)
        elif kind == "plain":
            peer.send_binary(data, compress=False)
        elif kind == "fragments":
            peer.send_binary(data[:5], fin=False)
            peer.send_continuation(data[5:], fin=True)
        elif kind == "ping":
            peer.send_ping(data)
        elif kind == "bad text":
            peer.send_text(data)
        else:
            # Not from the peer's compressor, which stays as it was.
            out += peer.data_to_send()
            key = bytes([index, 9, 8, 7]) if role is Role.SERVER else None
            out.append(build_frame(0x2, data, rsv=0x40, key=key))
    out += peer.data_to_send()
    return b"".join(out)


def _engine(role: Role, max_size: int | None, no_context: bool, bits: int) -> Connection:
    return Connection(role, max_size=max_size, extensions=[_deflate(no_context, bits)])


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
@given(
    steps=_STEPS,
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=5),
    role=st.sampled_from([Role.SERVER, Role.CLIENT]),
    max_size=st.sampled_from([None, 1 << 20, 100]),
    no_context=st.booleans(),
    bits=st.sampled_from([9, 12, 15]),
)
@settings(max_examples=200, deadline=None)
def test_receive_messages_matches_the_general_path(
    receive: Receive,
    steps: list[tuple[str, Any]],
    cuts: list[int],
    role: Role,
    max_size: int | None,
    *,
    no_context: bool,
    bits: int,
) -> None:
    data = _peer_stream(steps, role, no_context, bits)
    general = _engine(role, max_size, no_context, bits)
    core = _engine(role, max_size, no_context, bits)
    general_queue, core_queue = MessageQueue(None), MessageQueue(None)
    for read in _reads(data, cuts):
        expected = _feed_general(general, general_queue, read)
        others, _, _ = _feed_core(receive, core, core_queue, read)
        assert others == expected
        assert _items(core_queue) == _items(general_queue)
        assert core_queue.ready == general_queue.ready
        assert _sent(core, core.data_to_send()) == _sent(general, general.data_to_send())
        assert _outcome(core) == _outcome(general)


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
@pytest.mark.parametrize("role", [Role.SERVER, Role.CLIENT])
def test_receive_messages_inflates_a_read_of_compressed_messages(
    receive: Receive, role: Role
) -> None:
    texts = ["{'a': 1}" * 40, "héllo", "{'a': 1}" * 41]
    data = _peer_stream([("message", text) for text in texts], role, False, 12)
    assert len(data) < 200  # compressed, with context takeover
    engine = _engine(role, None, False, 12)
    queue = MessageQueue(None)
    waiter = Waiter()
    assert receive(engine, data, queue, waiter) == len(data)
    assert _items(queue) == texts  # a whole message waits as its data
    assert waiter.woken == 1
    # The engine saw nothing: no events, nothing to send, still open.
    assert engine.events() == []
    assert engine.data_to_send() == []
    assert engine.message_budget is None


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_takes_no_more_than_the_queue_holds(receive: Receive) -> None:
    # A read of many compressed messages: what the queue has no room for stays
    # compressed, for the engine to hold back, as on the general path.
    data = _peer_stream([("message", bytes(1000))] * 6, Role.SERVER, False, 15)
    engine = _engine(Role.SERVER, None, False, 15)
    queue = MessageQueue(4)
    queue.put(Message(b"already there"))
    taken = receive(engine, data, queue, None)
    assert queue.ready == 4
    assert 0 < taken < len(data)
    # What the asyncio connection does with the rest: the engine holds it back.
    engine.message_budget = parse_budget(queue, engine)
    assert engine.message_budget == 0
    engine.receive_data(data[taken:])
    assert engine.held_back
    assert engine.events() == []
    # A full queue takes nothing.
    assert receive(engine, data, MessageQueue(1), None) == -1
    full = MessageQueue(1)
    full.put(Message(b"x"))
    assert receive(_engine(Role.SERVER, None, False, 15), data, full, None) == 0


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
@pytest.mark.parametrize(
    ("step", "error", "code"),
    [
        (("corrupt", b"\xff\xff\xff"), ProtocolError, 1007),
        (("bad text", b"\xff\xfe"), ProtocolError, 1007),
        # 64 KiB of zeros inflates from about 70 bytes: over max_size, the
        # inflating stops at max_size + 1 bytes (a deflate bomb never grows).
        (("message", bytes(65536)), PayloadTooBig, 1009),
    ],
)
def test_receive_messages_fails_the_connection_on_a_bad_compressed_message(
    receive: Receive, step: tuple[str, bytes], error: type[Exception], code: int
) -> None:
    data = _peer_stream([("message", "ok"), step, ("message", "never")], Role.SERVER, False, 12)
    engine = _engine(Role.SERVER, 1000, False, 12)
    queue = MessageQueue(None)
    taken = receive(engine, data, queue, None)
    # The message before it is queued; the frame that failed is where taking ends.
    assert _items(queue) == ["ok"]
    assert 0 < taken < len(data)
    assert isinstance(engine.error, error)
    assert engine.close_sent is not None
    assert engine.close_sent.code == code
    assert engine.close_transport
    # The rest is ignored; the close frame waits to be sent.
    engine.receive_data(data[taken:])
    assert engine.events() == []
    (close,) = _sent(engine, engine.data_to_send())
    assert close.data[:2] == code.to_bytes(2, "big")


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_declines_an_extension_that_takes_frames(receive: Receive) -> None:
    engine = Connection(Role.CLIENT, extensions=[FrameExtension()])
    assert receive(engine, build_frame(0x2, b"ok"), MessageQueue(), None) == -1


# Sending


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
@given(
    role=st.sampled_from([Role.SERVER, Role.CLIENT]),
    messages=st.lists(
        st.tuples(
            st.one_of(st.binary(max_size=80), st.text(max_size=40), st.just("é" * 2000)),
            st.sampled_from([None, True, False]),
        ),
        max_size=6,
    ),
    no_context=st.booleans(),
    bits=st.sampled_from([8, 12, 15]),
)
@settings(max_examples=150, deadline=None)
def test_message_frame_compresses_as_send_message_does(
    frame_of: FrameOf,
    role: Role,
    messages: list[tuple[str | bytes, bool | None]],
    *,
    no_context: bool,
    bits: int,
) -> None:
    general = Connection(role, extensions=[_deflate(no_context, bits)])
    core = Connection(role, extensions=[_deflate(no_context, bits)])
    for data, text in messages:
        if text and isinstance(data, bytes):
            data = data.decode(errors="replace").encode()
        general.send_message(data, text)
        frame = frame_of(core, data, text)
        assert frame is not None
        assert core.data_to_send() == []
        (expected,) = general.data_to_send()
        if role is Role.SERVER:
            # Unmasked: the very bytes, so the same compression ratio.
            assert frame == expected
        else:
            assert len(frame) == len(expected)
            assert _sent(core, [frame]) == _sent(general, [expected])
    # Both compressors are where they were: the next message is the same too.
    general.send_message(b"end")
    assert _sent(core, [frame_of(core, b"end", None) or b""]) == _sent(
        general, general.data_to_send()
    )


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
def test_message_frame_sends_what_a_peer_inflates(frame_of: FrameOf) -> None:
    client = Connection(Role.CLIENT, extensions=[_deflate(False, 12)])
    server = Connection(Role.SERVER, extensions=[_deflate(False, 12)])
    frames = [frame_of(client, text, None) for text in ("{'a': 1}" * 40, "{'a': 2}" * 40)]
    assert all(frame is not None and frame[0] == 0xC1 for frame in frames)
    # The second message, close to the first, compresses to a few bytes.
    assert len(frames[1] or b"") < 20
    server.receive_data(b"".join(frame or b"" for frame in frames))
    assert server.events() == [Message("{'a': 1}" * 40), Message("{'a': 2}" * 40)]


class SubclassedDeflate(PerMessageDeflate):
    """A subclass: its own encode_message is called, never bypassed."""

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        self.calls = getattr(self, "calls", 0) + 1
        return super().encode_message(first, data, key)


@pytest.mark.parametrize("frame_of", FRAMERS, ids=IDS)
def test_message_frame_calls_a_subclass_encode_message(frame_of: FrameOf) -> None:
    extension = SubclassedDeflate(False, False, 15, 15)
    engine = Connection(Role.CLIENT, extensions=[extension])
    frame = frame_of(engine, "hé", None)
    assert extension.calls == 1
    payload = _sent(engine, [frame or b""])[0].data
    assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == "hé".encode()


def test_message_frame_takes_a_fresh_key_per_frame() -> None:
    engine = Connection(Role.CLIENT, extensions=[_deflate(True, 15)])
    frames = [speedups.message_frame(engine, b"same", None) or b"" for _ in range(50)]
    keys = {frame[2:6] for frame in frames}
    assert len(keys) == 50


@pytest.mark.parametrize("no_context", [False, True])
def test_compressors_are_made_in_the_same_call(
    monkeypatch: pytest.MonkeyPatch, *, no_context: bool
) -> None:
    # The first message makes the compressor and the decompressor, and without
    # context takeover every message does, lazily as before: still without a
    # call to encode_message or decode_message.
    def never(*args: object) -> bytes:
        raise AssertionError("called")

    monkeypatch.setattr(PerMessageDeflate, "encode_message", never)
    monkeypatch.setattr(PerMessageDeflate, "decode_message", never)
    # As importing the extension sets it up with the accelerator in use;
    # here also without it (TETHER_NO_SPEEDUPS=1).
    speedups.register_deflate(PerMessageDeflate)
    monkeypatch.setattr(permessage_deflate, "new_compressor", speedups.Deflater)
    monkeypatch.setattr(permessage_deflate, "new_decompressor", speedups.Inflater)
    client = _engine(Role.CLIENT, None, no_context, 12)
    server = _engine(Role.SERVER, None, no_context, 12)
    (sending,), (receiving,) = client.extensions, server.extensions
    assert isinstance(sending, PerMessageDeflate)
    assert isinstance(receiving, PerMessageDeflate)
    queue = MessageQueue(None)
    texts = ["{'a': 1}" * 40, "{'a': 2}" * 40]
    for text in texts:
        frame = speedups.message_frame(client, text, None)
        assert frame is not None
        assert speedups.receive_messages(server, frame, queue, None) == len(frame)
        # Kept with context takeover, dropped after each message without.
        assert (sending._encoder is None) is no_context
        assert (receiving._decoder is None) is no_context
    assert _items(queue) == texts


class _FailingExtension(Extension):
    """Whole messages whose decode_message fails on b"boom" with a bug of its own."""

    name = "x-failing"
    rsv_mask = 0x40
    whole_messages = True

    def decode_message(self, data: Any, key: bytes | None, max_size: int | None) -> bytes:
        if bytes(data) == b"boom":
            raise LookupError("a bug in the extension")
        return bytes(data)

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        return build_frame(first & 0x0F, data, rsv=0x40, key=key)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame

    def encode(self, frame: Frame) -> Frame:
        return frame


@pytest.mark.parametrize("receive", RECEIVERS, ids=IDS)
def test_receive_messages_queues_what_came_before_an_extension_error(receive: Receive) -> None:
    # An exception that is not the engine's to handle goes to the caller, and
    # the messages read before it are queued, the reader woken: the C function
    # queued them as it went, and its twin lost them.
    data = b"".join(
        [
            build_frame(0x2, b"plain"),
            build_frame(0x2, b"packed", rsv=0x40),
            build_frame(0x2, b"boom", rsv=0x40),
            build_frame(0x2, b"never"),
        ]
    )
    engine = Connection(Role.CLIENT, extensions=[_FailingExtension()])
    queue = MessageQueue(None)
    waiter = Waiter()
    with pytest.raises(LookupError):
        receive(engine, data, queue, waiter)
    assert _items(queue) == [b"plain", b"packed"]
    assert queue.ready == 2
    assert waiter.woken == 1
    assert engine.state is State.OPEN


class _ArrayExtension(_FailingExtension):
    """Whole messages whose decode_message returns a bytearray, not the bytes it promises."""

    def decode_message(self, data: Any, key: bytes | None, max_size: int | None) -> bytes:
        return bytearray(data)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "read", [speedups.read_messages, read_messages_python], ids=["c", "python"]
)
def test_read_messages_refuses_a_decode_message_that_returns_no_bytes(read: Any) -> None:
    # The C function raised TypeError; its twin (and deliver_messages_python
    # on it) handed the bytearray on as a message.
    data = build_frame(0x2, b"plain") + build_frame(0x2, b"packed", rsv=0x40)
    events: list[Any] = []
    with pytest.raises(TypeError, match="decode_message did not return bytes"):
        read(data, 0, False, None, None, events, _ArrayExtension())
    assert events == [Message(b"plain")]
