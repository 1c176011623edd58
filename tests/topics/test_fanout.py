"""A message prepared once for many engines: the same bytes wherever they can be shared."""

from __future__ import annotations

import pytest

from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import Connection, Role
from tether.protocol.events import Message
from tether.topics.fanout import Prepared, deflate_key

from ..protocol.test_connection_extensions import InvertFrames

MESSAGE = "a message for everyone, " * 20


def server(*extensions: object) -> Connection:
    return Connection(Role.SERVER, extensions=list(extensions))  # type: ignore[arg-type]


def deliver(sender: Connection, receiver: Connection) -> list[object]:
    for data in sender.data_to_send():
        receiver.receive_data(data)
    return list(receiver.events())


def test_one_frame_for_every_plain_engine() -> None:
    prepared = Prepared(MESSAGE)
    engines = [server() for _ in range(3)]
    for engine in engines:
        assert prepared.send_to(engine)
    outputs = [engine.data_to_send() for engine in engines]
    # The very same bytes object, not copies.
    assert all(output[0] is outputs[0][0] for output in outputs)
    assert prepared.frames == 1
    client = Connection(Role.CLIENT)
    client.receive_data(outputs[0][0])
    assert client.events() == [Message(MESSAGE)]


def test_one_compression_per_deflate_settings() -> None:
    prepared = Prepared(MESSAGE.encode())
    alike = [server(PerMessageDeflate(False, True, 15, 12)) for _ in range(3)]
    other_window = server(PerMessageDeflate(False, True, 15, 10))
    frames = [prepared.frame_for(engine) for engine in alike]
    assert frames[0] is not None
    assert all(frame is frames[0] for frame in frames)
    assert prepared.frame_for(other_window) is not frames[0]
    assert prepared.compressions == 2
    # Smaller than the message: it was compressed, with RSV1.
    assert len(frames[0]) < len(MESSAGE)
    assert frames[0][0] & 0x40
    for engine in [*alike, other_window]:
        assert prepared.send_to(engine)
        client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(True, False, 15, 15)])
        assert deliver(engine, client) == [Message(MESSAGE.encode())]


def test_window_bits_8_and_9_compress_alike() -> None:
    eight = deflate_key(PerMessageDeflate(False, True, 15, 8))
    nine = deflate_key(PerMessageDeflate(False, True, 15, 9))
    assert eight == nine is not None


def test_context_takeover_gets_the_plain_frame_uncompressed() -> None:
    # Compressing for each such engine would give each a compressor of its
    # own: the shared plain frame goes instead, and the engine's own
    # compressed messages around it still decompress, context and all.
    prepared = Prepared(MESSAGE)
    engine = server(PerMessageDeflate(False, False, 15, 15))
    assert deflate_key(engine.extensions[0]) is None  # type: ignore[arg-type]
    client = Connection(Role.CLIENT, extensions=[PerMessageDeflate(False, False, 15, 15)])
    for _ in range(2):
        engine.send_text(MESSAGE.encode())
        own = engine.data_to_send()
        assert own[0][0] & 0x40  # The engine's own message is compressed.
        for data in own:
            client.receive_data(data)
        assert client.events() == [Message(MESSAGE)]
        assert prepared.send_to(engine)
        (frame,) = engine.data_to_send()
        assert frame is prepared.plain
        assert not frame[0] & 0x40
        client.receive_data(frame)
        assert client.events() == [Message(MESSAGE)]
    assert prepared.compressions == 0
    assert prepared.frames == 1


@pytest.mark.parametrize(
    "engine",
    [Connection(Role.CLIENT), server(InvertFrames())],
    ids=["client", "frame-extension"],
)
def test_engines_that_cannot_share_encode_their_own(engine: Connection) -> None:
    prepared = Prepared(b"\x01\x02")
    assert prepared.frame_for(engine) is None
    assert not prepared.send_to(engine)
    assert engine.data_to_send()


def test_bytes_like_input_is_copied_once() -> None:
    buffer = bytearray(b"abc")
    prepared = Prepared(memoryview(buffer))
    buffer[0] = ord("z")
    assert prepared.payload == b"abc"
    assert not prepared.text


def test_zlib_settings_are_part_of_the_key() -> None:
    fast = PerMessageDeflate(False, True, 15, 12, {"level": 1})
    default = PerMessageDeflate(False, True, 15, 12)
    assert deflate_key(fast) != deflate_key(default)
    prepared = Prepared(MESSAGE)
    prepared.frame_for(server(fast))
    prepared.frame_for(server(default))
    prepared.frame_for(server(PerMessageDeflate(False, True, 15, 12)))
    assert prepared.compressions == 2
