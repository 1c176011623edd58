"""permessage-deflate (RFC 7692) negotiated by hand from the peer's side, in both roles.

As a client the peer offers the parameters and checks tether's answer; as a
server it answers tether's offer with them. Then it compresses with zlib
exactly as agreed, and decompresses tether's messages with exactly the
agreed window and context rules, so that tether overstepping them shows up
as a zlib error here.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import zlib
from typing import Any

import pytest

from tests.conformance.conftest import Harness
from tests.conformance.peer import DeflateParams, Peer
from tether.exceptions import InvalidHandshake
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol.frames import RSV1, RSV2, RSV3, Opcode

WINDOWS: list[tuple[int | None, int | bool | None]] = [
    (None, None),
    (None, True),
    (9, 9),
    (9, 15),
    (15, 9),
    (10, 12),
    (11, True),
    (12, 13),
    (13, 14),
    (14, 10),
    (15, 15),
]

COMBINATIONS = [
    DeflateParams(snct, cnct, smwb, cmwb)
    for (snct, cnct), (smwb, cmwb) in itertools.product(
        itertools.product([False, True], repeat=2), WINDOWS
    )
]


def _window_probe() -> bytes:
    # Random chunks, each repeated once at a distance just over 2**k bytes
    # (more than the 64 bytes the peer inflates at a time, see peer.py):
    # a compressor using a window larger than agreed refers back further
    # than the peer's decompressor can see.
    parts = []
    for bits in range(8, 15):
        chunk = os.urandom((1 << bits) + 200)
        parts += [chunk, chunk]
    return b"".join(parts)


WINDOW_PROBE = _window_probe()


def _agreed(params: DeflateParams, tether_is_server: bool) -> DeflateParams:
    """What the peer puts on the wire: an answer has no bare client_max_window_bits."""
    if params.client_max_window_bits is True:
        return DeflateParams(
            params.server_no_context_takeover,
            params.client_no_context_takeover,
            params.server_max_window_bits,
            None,
        )
    return params


async def _open(harness: Harness, params: DeflateParams, **options: Any) -> Peer:
    if harness.tether_is_server:
        peer = await harness.open(deflate=params, **options)
    else:
        peer = await harness.open(deflate=_agreed(params, False), **options)
    assert peer.deflate is not None
    return peer


async def _exercise(harness: Harness, peer: Peer) -> None:
    """Messages that fail when either side breaks the agreed window or context rules."""
    for message in ["hello", "hello", "hello, hello, hello", ""]:
        await peer.send_message(message, compress=True)
        await peer.expect_echo(message)
    await peer.send_message(WINDOW_PROBE, compress=True)
    await peer.expect_echo(WINDOW_PROBE)
    text = "ünïcödé 🎉 " * 300
    for fragment in [1, 7, 100]:
        await peer.send_message(text, compress=True, fragment=fragment)
        await peer.expect_echo(text)
    # Section 6: a message may go uncompressed on a compressed connection.
    await peer.send_message(b"plain", compress=False)
    await peer.expect_echo(b"plain")
    await harness.finish(peer)


@pytest.mark.tether_in_process
@pytest.mark.parametrize("params", COMBINATIONS, ids=lambda params: params.header()[19:] or "-")
async def test_parameters_negotiated_and_honoured(harness: Harness, params: DeflateParams) -> None:
    peer = await _open(harness, params)
    assert peer.head is not None
    if harness.tether_is_server:
        # tether's unconstrained factory accepts the offer as it stands.
        (answer,) = peer.head.get("Sec-WebSocket-Extensions")
        assert DeflateParams.parse(answer) == _agreed(params, True), answer
    else:
        (offer,) = peer.head.get("Sec-WebSocket-Extensions")
        assert offer == "permessage-deflate; client_max_window_bits", offer
    await _exercise(harness, peer)


@pytest.mark.tether_in_process
@pytest.mark.parametrize("bits", range(9, 16))
async def test_tether_limits_windows_it_configures(harness: Harness, bits: int) -> None:
    # tether asks for small windows itself: the server in its answer, the
    # client in its offer, which the peer accepts as offered.
    if harness.tether_is_server:
        factory: object = ServerPerMessageDeflateFactory(
            server_max_window_bits=bits,
            client_max_window_bits=bits,
            server_no_context_takeover=True,
        )
        peer = await harness.open(
            deflate=DeflateParams(client_max_window_bits=True), extensions=[factory]
        )
        assert peer.head is not None
        (answer,) = peer.head.get("Sec-WebSocket-Extensions")
        assert DeflateParams.parse(answer) == DeflateParams(True, False, bits, bits), answer
    else:
        factory = ClientPerMessageDeflateFactory(
            server_max_window_bits=bits,
            client_max_window_bits=bits,
            client_no_context_takeover=True,
        )
        agreed = DeflateParams(False, True, bits, bits)
        peer = await harness.open(deflate=agreed, extensions=[factory])
        assert peer.head is not None
        (offer,) = peer.head.get("Sec-WebSocket-Extensions")
        assert DeflateParams.parse(offer) == agreed, offer
    await _exercise(harness, peer)


PLAIN = DeflateParams()


async def test_corrupted_data_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    # Block type 3 is reserved (RFC 1951 section 3.2.3): invalid from the first byte.
    await peer.send(Opcode.BINARY, b"\xff\xff\xff\xff", rsv=RSV1)
    await peer.expect_failure(1007)


async def test_corrupted_data_in_later_fragment_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    frames = peer.message_frames("a text compressed, then broken" * 10, compress=True, cuts=[10])
    await peer.write(frames[0])
    await peer.roundtrip()
    await peer.send(Opcode.CONT, b"\xff\xff\xff\xff")
    await peer.expect_failure(1007)


async def test_truncated_stream_then_garbage_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    compressed = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressed.compress(b"x" * 1000) + compressed.flush(zlib.Z_FINISH)
    # A final block, then bytes that are no deflate block at all.
    await peer.send(Opcode.BINARY, data + b"\xff\xff", rsv=RSV1)
    await peer.expect_failure(1007)


async def test_compressed_invalid_utf8_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    await peer.send_message(b"valid \xed\xa0\x80 not", compress=True, text=True)
    await peer.expect_failure(1007)


async def test_rsv1_on_continuation_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    frames = peer.message_frames("abcdef", cuts=[3])
    await peer.write(frames[0])
    await peer.send(Opcode.CONT, b"def", rsv=RSV1)
    await peer.expect_failure(1002)


async def test_rsv1_on_continuation_of_compressed_message_fails(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    compressed = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressed.compress(b"abc") + compressed.flush(zlib.Z_SYNC_FLUSH)
    await peer.send(Opcode.TEXT, first, rsv=RSV1, fin=False)
    await peer.send(Opcode.CONT, b"\x00", rsv=RSV1)
    await peer.expect_failure(1002)


@pytest.mark.parametrize("opcode", [Opcode.PING, Opcode.PONG, Opcode.CLOSE])
async def test_rsv1_on_control_frame_fails(harness: Harness, opcode: Opcode) -> None:
    peer = await _open(harness, PLAIN)
    await peer.send(opcode, b"\x03\xe8", rsv=RSV1)
    await peer.expect_failure(1002)


@pytest.mark.parametrize("rsv", [RSV2, RSV3, RSV1 | RSV2])
async def test_other_reserved_bits_still_fail(harness: Harness, rsv: int) -> None:
    peer = await _open(harness, PLAIN)
    compressed = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressed.compress(b"x") + compressed.flush(zlib.Z_SYNC_FLUSH)
    await peer.send(Opcode.TEXT, data[:-4], rsv=rsv)
    await peer.expect_failure(1002)


async def test_decompression_bomb_fails_with_1009(harness: Harness) -> None:
    peer = await _open(harness, PLAIN, max_size=64 * 1024)
    # 16 MiB of zeros compress to about 16 KiB.
    await peer.send_message(bytes(16 << 20), compress=True)
    await peer.expect_failure(1009)


async def test_context_kept_across_many_messages(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    for index in range(50):
        message = f"message number {index} " * 5
        await peer.send_message(message, compress=True)
        await peer.expect_echo(message)
    await harness.finish(peer)


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    ],
)
async def test_invalid_parameters(harness: Harness, answer: str) -> None:
    # tether's server declines such an offer and goes on uncompressed; its
    # client refuses such an answer and drops the connection unopened.
    peer = await harness.open(deflate=answer)
    if harness.tether_is_server:
        assert peer.head is not None
        assert peer.head.get("Sec-WebSocket-Extensions") == []
        await peer.send_message("uncompressed")
        await peer.expect_echo("uncompressed")
        await harness.finish(peer)
    else:
        with pytest.raises(InvalidHandshake):
            await harness.connection()
        await peer.expect_eof()
        assert peer.frames == []


@pytest.mark.tether_in_process
async def test_peer_closes_during_compressed_message(harness: Harness) -> None:
    peer = await _open(harness, PLAIN)
    frames = peer.message_frames("x" * 5000, compress=True, fragment=5)
    await peer.write(b"".join(frames[:-1]))
    await peer.roundtrip()
    await harness.finish(peer)
    ws = await harness.connection()
    async with asyncio.timeout(5):
        await ws.wait_closed()
