"""Framing, pings and pongs, reserved bits and opcodes, fragmentation (RFC 6455 section 5).

Each case runs against tether's server and tether's client (see conftest).
"""

from __future__ import annotations

import os

import pytest

from tests.conformance.conftest import Harness
from tether.protocol.frames import RSV1, RSV2, RSV3, Opcode

MiB = 1 << 20

# Framing: section 5.2. Lengths at each edge of the three length encodings.


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 3 * MiB])
@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_payload_lengths_echoed(harness: Harness, size: int, text: bool) -> None:
    peer = await harness.open(max_size=4 * MiB)
    message: str | bytes = (
        ("é" * size)[: size // 2] + "x" * (size % 2) if text else os.urandom(size)
    )
    await peer.send_message(message)
    await peer.expect_echo(message)
    await harness.finish(peer)


@pytest.mark.parametrize(
    ("size", "length_bytes"),
    [(0, 2), (5, 2), (125, 8), (200, 8), (65535, 8)],
)
async def test_non_minimal_length_accepted(harness: Harness, size: int, length_bytes: int) -> None:
    # Section 5.2 asks senders for the minimal encoding but gives receivers
    # no rule; like most implementations, tether reads the length as sent.
    peer = await harness.open()
    payload = os.urandom(size)
    await peer.send(Opcode.BINARY, payload, length_bytes=length_bytes)
    await peer.expect_echo(payload)
    await harness.finish(peer)


async def test_64_bit_length_with_top_bit_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.write(peer.frame(Opcode.BINARY, b"", length=1 << 63, length_bytes=8))
    await peer.expect_failure(1002)


async def test_frame_every_byte_in_its_own_write(harness: Harness) -> None:
    peer = await harness.open()
    data = peer.frame(Opcode.TEXT, b"split at every byte")
    await peer.write(data, split=range(1, len(data)))
    await peer.expect_echo("split at every byte")
    await harness.finish(peer)


async def test_frames_written_with_pauses(harness: Harness) -> None:
    peer = await harness.open()
    data = peer.frame(Opcode.BINARY, bytes(300))
    await peer.write(data, split=[1, 2, 3, 8, 100], pause=0.01)
    await peer.expect_echo(bytes(300))
    await harness.finish(peer)


async def test_many_frames_in_one_write(harness: Harness) -> None:
    peer = await harness.open()
    messages = [f"message {i}" for i in range(10)]
    await peer.write(b"".join(peer.frame(Opcode.TEXT, m.encode()) for m in messages))
    for message in messages:
        await peer.expect_echo(message)
    await harness.finish(peer)


async def test_zero_masking_key(harness: Harness) -> None:
    # An all-zero key is a key like any other for a server; a client must
    # refuse any masked frame (section 5.1).
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"clear", mask=True, key=b"\x00\x00\x00\x00")
    if harness.tether_is_server:
        await peer.expect_echo("clear")
        await harness.finish(peer)
    else:
        await peer.expect_failure(1002)


async def test_wrong_masking_fails(harness: Harness) -> None:
    # Section 5.1: a server fails on an unmasked frame, a client on a masked one.
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"hello", mask=not peer.client)
    await peer.expect_failure(1002)


# Pings and pongs: sections 5.5.2 and 5.5.3.


@pytest.mark.parametrize("size", [0, 1, 125])
async def test_ping_answered_with_same_payload(harness: Harness, size: int) -> None:
    peer = await harness.open()
    payload = os.urandom(size)
    await peer.send(Opcode.PING, payload)
    await peer.expect_pong(payload)
    await harness.finish(peer)


@pytest.mark.parametrize("length_bytes", [None, 8])
async def test_ping_over_125_bytes_fails(harness: Harness, length_bytes: int | None) -> None:
    peer = await harness.open()
    await peer.send(Opcode.PING, bytes(126), length_bytes=length_bytes)
    await peer.expect_failure(1002)


async def test_unsolicited_pongs_ignored(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(Opcode.PONG, b"")
    await peer.send(Opcode.PONG, b"unsolicited")
    await peer.send(Opcode.PONG, bytes(125))
    await peer.send_message("after pongs")
    await peer.expect_echo("after pongs")
    await harness.finish(peer)


async def test_ten_pings_answered_in_order(harness: Harness) -> None:
    peer = await harness.open()
    await peer.write(b"".join(peer.frame(Opcode.PING, bytes([i])) for i in range(10)))
    for i in range(10):
        await peer.expect_pong(bytes([i]))
    await harness.finish(peer)


async def test_ping_split_at_every_byte(harness: Harness) -> None:
    peer = await harness.open()
    data = peer.frame(Opcode.PING, b"slow ping")
    await peer.write(data, split=range(1, len(data)))
    await peer.expect_pong(b"slow ping")
    await harness.finish(peer)


# Reserved bits: section 5.2, no extension negotiated.


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3], ids=["1", "2", "3", "all"])
@pytest.mark.parametrize(
    ("opcode", "payload"),
    [
        (Opcode.TEXT, b"text"),
        (Opcode.BINARY, b"\x00\xff"),
        (Opcode.PING, b"ping"),
        (Opcode.PONG, b"pong"),
        (Opcode.CLOSE, b"\x03\xe8"),
    ],
    ids=lambda value: value.name if isinstance(value, Opcode) else "",
)
async def test_reserved_bits_fail(
    harness: Harness, rsv: int, opcode: Opcode, payload: bytes
) -> None:
    peer = await harness.open()
    await peer.send(opcode, payload, rsv=rsv)
    await peer.expect_failure(1002)


async def test_reserved_bit_after_valid_message_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("fine")
    await peer.expect_echo("fine")
    await peer.send(Opcode.TEXT, b"not fine", rsv=RSV2)
    await peer.expect_failure(1002)


# Reserved opcodes: section 5.2.


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
async def test_reserved_opcodes_fail(harness: Harness, opcode: int) -> None:
    peer = await harness.open()
    await peer.send(opcode, b"reserved")
    await peer.expect_failure(1002)


@pytest.mark.parametrize("opcode", [3, 0xB])
async def test_reserved_opcode_mid_message_fails(harness: Harness, opcode: int) -> None:
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"part", fin=False)
    await peer.roundtrip()
    await peer.send(opcode, b"", fin=False)
    await peer.expect_failure(1002)


# Fragmentation: section 5.4.


@pytest.mark.parametrize("fragment", [1, 2, 7, 64, 1000])
@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
async def test_fragmented_messages_echoed(harness: Harness, fragment: int, text: bool) -> None:
    peer = await harness.open()
    message: str | bytes = "fragmented ünïcödé ✓ 🎉 " * 20 if text else os.urandom(1000)
    await peer.send_message(message, fragment=fragment)
    await peer.expect_echo(message)
    await harness.finish(peer)


async def test_empty_fragments(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("ab", cuts=[0, 0, 1, 1, 2, 2])
    await peer.send_message(b"", cuts=[0, 0])
    await peer.expect_echo("ab")
    await peer.expect_echo(b"")
    await harness.finish(peer)


@pytest.mark.tether_in_process
async def test_fragments_with_pauses(harness: Harness) -> None:
    peer = await harness.open()
    *first, last = peer.message_frames("one two three", cuts=[4, 8])
    for frame in first:
        await peer.write(frame)
        await peer.roundtrip()
    # No round trip after the last: the echo may come before the pong.
    await peer.write(last)
    await peer.expect_echo("one two three")
    await harness.finish(peer)


async def test_thousand_tiny_fragments(harness: Harness) -> None:
    peer = await harness.open()
    message = os.urandom(1000)
    await peer.send_message(message, fragment=1)
    await peer.expect_echo(message)
    await harness.finish(peer)


@pytest.mark.parametrize("fin", [True, False])
async def test_continuation_without_message_fails(harness: Harness, fin: bool) -> None:
    peer = await harness.open()
    await peer.send(Opcode.CONT, b"orphan", fin=fin)
    await peer.expect_failure(1002)


async def test_continuation_after_finished_message_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("done", cuts=[2])
    await peer.expect_echo("done")
    await peer.send(Opcode.CONT, b"more")
    await peer.expect_failure(1002)


@pytest.mark.parametrize("second", [Opcode.TEXT, Opcode.BINARY])
@pytest.mark.parametrize("fin", [True, False])
async def test_new_data_frame_mid_message_fails(
    harness: Harness, second: Opcode, fin: bool
) -> None:
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"first", fin=False)
    await peer.send(second, b"second", fin=fin)
    await peer.expect_failure(1002)


async def test_control_frames_between_fragments(harness: Harness) -> None:
    peer = await harness.open()
    frames = peer.message_frames(b"0123456789", cuts=[3, 6])
    await peer.write(
        frames[0]
        + peer.frame(Opcode.PING, b"first ping")
        + frames[1]
        + peer.frame(Opcode.PONG, b"stray pong")
        + peer.frame(Opcode.PING, b"second ping")
        + frames[2]
    )
    await peer.expect_pong(b"first ping")
    await peer.expect_pong(b"second ping")
    await peer.expect_echo(b"0123456789")
    await harness.finish(peer)


async def test_close_between_fragments(harness: Harness) -> None:
    # The message never completes; the closing handshake proceeds.
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"never", fin=False)
    await harness.finish(peer)


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
async def test_fragmented_control_frame_fails(harness: Harness, opcode: Opcode) -> None:
    peer = await harness.open()
    await peer.send(opcode, b"", fin=False)
    await peer.expect_failure(1002)


async def test_fragmented_ping_mid_message_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(Opcode.BINARY, b"x", fin=False)
    await peer.send(Opcode.PING, b"half", fin=False)
    await peer.expect_failure(1002)
