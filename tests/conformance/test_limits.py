"""Large messages up to ``max_size``, and 1009 just past it (RFC 6455 section 7.4.1)."""

from __future__ import annotations

import os

import pytest

from tests.conformance.conftest import Harness
from tether.protocol.frames import Opcode

KiB = 1 << 10
MiB = 1 << 20


@pytest.mark.parametrize(
    ("size", "fragment"),
    [
        (64 * KiB, None),
        (64 * KiB, 1 * KiB),
        (64 * KiB, 65535),
        (1 * MiB, None),
        (1 * MiB, 64 * KiB),
        (1 * MiB, 100_003),
        (4 * MiB, 1 * MiB),
        (16 * MiB, None),
        (16 * MiB, 4 * MiB),
    ],
)
async def test_large_binary_message_echoed(harness: Harness, size: int, fragment: int) -> None:
    peer = await harness.open(max_size=size)
    message = os.urandom(size)
    await peer.send_message(message, fragment=fragment)
    await peer.expect_echo(message, timeout=30)
    await harness.finish(peer)


@pytest.mark.parametrize(("size", "fragment"), [(64 * KiB, None), (1 * MiB, 4 * KiB)])
async def test_large_text_message_echoed(harness: Harness, size: int, fragment: int) -> None:
    peer = await harness.open(max_size=size)
    message = ("κόσμε 🎉 " * size)[: size // 4]
    await peer.send_message(message, fragment=fragment)
    await peer.expect_echo(message, timeout=30)
    await harness.finish(peer)


@pytest.mark.parametrize("max_size", [125, 64 * KiB, 1 * MiB])
async def test_one_frame_over_max_size_fails_at_header(harness: Harness, max_size: int) -> None:
    # The header says it all: tether fails without waiting for the payload.
    peer = await harness.open(max_size=max_size)
    frame = peer.frame(Opcode.BINARY, bytes(max_size + 1))
    header = len(frame) - (max_size + 1)
    await peer.write(frame[:header])
    await peer.expect_failure(1009)


@pytest.mark.parametrize("max_size", [125, 64 * KiB])
async def test_fragmented_message_over_max_size_fails(harness: Harness, max_size: int) -> None:
    peer = await harness.open(max_size=max_size)
    frames = peer.message_frames(bytes(max_size + 1), cuts=[max_size // 2, max_size])
    await peer.write(frames[0] + frames[1])
    await peer.roundtrip()
    await peer.write(frames[2])
    await peer.expect_failure(1009)


async def test_exactly_max_size_passes(harness: Harness) -> None:
    peer = await harness.open(max_size=64 * KiB)
    await peer.send_message(bytes(64 * KiB), fragment=10_000)
    await peer.expect_echo(bytes(64 * KiB))
    await peer.send_message(bytes(64 * KiB))
    await peer.expect_echo(bytes(64 * KiB))
    await harness.finish(peer)


async def test_max_size_is_per_message(harness: Harness) -> None:
    peer = await harness.open(max_size=1000)
    for _ in range(5):
        await peer.send_message(bytes(1000), fragment=300)
        await peer.expect_echo(bytes(1000))
    await harness.finish(peer)


async def test_text_over_max_size_fails_before_utf8_check(harness: Harness) -> None:
    # Too big and invalid: the size is known from the header, first.
    peer = await harness.open(max_size=100)
    await peer.send(Opcode.TEXT, b"\xff" * 101)
    await peer.expect_failure(1009)
