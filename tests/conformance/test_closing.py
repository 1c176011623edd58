"""The closing handshake (RFC 6455 sections 5.5.1, 7 and 7.4), and TCP dropped without one."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.conftest import Harness
from tether.protocol.frames import Opcode, parse_frame

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]
VALID_CODES += [3000, 3999, 4000, 4999]

# 1004 is reserved; 1005, 1006 and 1015 must never be sent (section 7.4.1);
# 1016 to 2999 are for future RFCs and nothing may send them yet.
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
async def test_valid_codes_echoed(harness: Harness, code: int) -> None:
    peer = await harness.open()
    await harness.finish(peer, code)


@pytest.mark.parametrize("reason", ["bye", "ünïcödé 🎉", "r" * 123])
async def test_reasons_accepted(harness: Harness, reason: str) -> None:
    peer = await harness.open()
    await harness.finish(peer, 1000, reason)


@pytest.mark.tether_in_process
async def test_empty_close_frame(harness: Harness) -> None:
    # No payload: no status code, reported as 1005; the answer carries none either.
    peer = await harness.open()
    await peer.send_close(None)
    close = await peer.expect_close(1005)
    assert close.reason == ""
    assert peer.frames[-1].data == b""
    if harness.tether_is_server:
        await peer.expect_eof()
    else:
        await peer.expect_no_eof()
        peer.close_tcp()
    ws = await harness.connection()
    await ws.wait_closed()
    assert ws.close_code == 1005


@pytest.mark.parametrize("code", INVALID_CODES)
async def test_invalid_codes_fail(harness: Harness, code: int) -> None:
    peer = await harness.open()
    await peer.send_close(code)
    await peer.expect_failure(1002)


@pytest.mark.parametrize(
    "reason",
    [b"\xff", b"ok\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"cut \xe2\x82"],
)
async def test_invalid_utf8_reason_fails(harness: Harness, reason: bytes) -> None:
    peer = await harness.open()
    await peer.send(Opcode.CLOSE, b"\x03\xe8" + reason)
    await peer.expect_failure(1007)


async def test_one_byte_payload_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(Opcode.CLOSE, b"\x03")
    await peer.expect_failure(1002)


async def test_close_payload_over_125_bytes_fails(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(Opcode.CLOSE, b"\x03\xe8" + b"r" * 124)
    await peer.expect_failure(1002)


async def test_close_split_at_every_byte(harness: Harness) -> None:
    peer = await harness.open()
    data = peer.frame(Opcode.CLOSE, b"\x03\xe8slow")
    await peer.write(data, split=range(1, len(data)))
    await harness.expect_closing_handshake(peer, 1000, "slow")


async def test_frames_after_close_ignored(harness: Harness) -> None:
    # Section 5.5.1: nothing counts after a close frame. No echo, no pong,
    # no second close frame, even for frames that would fail the connection.
    peer = await harness.open()
    await peer.write(
        peer.frame(Opcode.CLOSE, b"\x03\xe8")
        + peer.frame(Opcode.TEXT, b"ignored")
        + peer.frame(Opcode.PING, b"ignored")
        + peer.frame(Opcode.CLOSE, b"\x03\xe9")
        + peer.frame(Opcode.TEXT, b"\xff invalid")
        + peer.frame(7, b"reserved opcode")
    )
    await harness.expect_closing_handshake(peer, 1000)


@pytest.mark.tether_in_process
async def test_frames_after_close_echo_ignored(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_close(1000)
    await peer.expect_close(1000)
    # Written once tether has answered: a server may be gone already.
    await peer.send_message("too late")
    await peer.send(Opcode.PING, b"too late")
    await harness.end_tcp(peer)
    ws = await harness.connection()
    await ws.wait_closed()
    assert ws.close_code == 1000


async def test_message_before_close_echoed(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("last words")
    await peer.expect_echo("last words")
    await harness.finish(peer, 1001, "leaving")


# tether starts the closing handshake.


@pytest.mark.tether_in_process
async def test_tether_closes_and_peer_answers(harness: Harness) -> None:
    peer = await harness.open()
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close(4000, "done"))
    await peer.expect_close(4000, reason="done")
    await peer.send_close(4000, "done")
    await harness.end_tcp(peer)
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 4000


@pytest.mark.tether_in_process
async def test_peer_never_answers_close(harness: Harness) -> None:
    peer = await harness.open(close_timeout=0.1)
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close())
    await peer.expect_close(1000)
    # The peer stays silent; after close_timeout tether drops TCP itself.
    await peer.expect_eof()
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 1006


@pytest.mark.tether_in_process
async def test_peer_never_answers_close_and_stops_reading(harness: Harness) -> None:
    peer = await harness.open(close_timeout=0.1)
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close())
    await peer.expect_close(1000)
    peer.stop_reading()
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 1006
    peer.resume_reading()
    await peer.expect_eof()


@pytest.mark.tether_in_process
async def test_peer_answers_close_with_other_code(harness: Harness) -> None:
    peer = await harness.open()
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close(1000))
    await peer.expect_close(1000)
    await peer.send_close(1001, "other")
    if not harness.tether_is_server:
        await peer.expect_no_eof()
        peer.close_tcp()
    await peer.expect_eof()
    if harness.tether_is_server:
        # The server half-closed and reads on until the client's end.
        peer.close_tcp()
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 1001
    assert ws.close_reason == "other"


@pytest.mark.tether_in_process
async def test_server_peer_never_closes_tcp(harness: Harness) -> None:
    # A client waits for the server to close TCP, but not forever.
    peer = await harness.open(close_timeout=0.1)
    await peer.send_close(1000)
    await peer.expect_close(1000)
    await peer.expect_eof()
    ws = await harness.connection()
    await ws.wait_closed()
    assert ws.close_code == 1000


# TCP ends without a closing handshake.


@pytest.mark.tether_in_process
async def test_peer_drops_tcp_mid_message(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(Opcode.TEXT, b"half", fin=False)
    await peer.roundtrip()
    peer.abort()
    ws = await harness.connection()
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 1006


@pytest.mark.tether_in_process
async def test_peer_closes_tcp_without_close_frame(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("hello")
    await peer.expect_echo("hello")
    peer.writer.write_eof()
    # No close frame answers an end of stream: there is nobody to read it.
    await peer.expect_eof()
    assert peer.close is None
    ws = await harness.connection()
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 1006


@pytest.mark.tether_in_process
async def test_peer_drops_tcp_mid_frame_header(harness: Harness) -> None:
    peer = await harness.open()
    await peer.write(peer.frame(Opcode.BINARY, bytes(70000))[:3])
    peer.abort()
    ws = await harness.connection()
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 1006


@pytest.mark.tether_in_process
async def test_message_while_tether_closes_is_not_echoed(harness: Harness) -> None:
    # The echo handler gets the message, but no data frame may follow a
    # close frame (section 5.5.1): its send fails and nothing goes out.
    peer = await harness.open()
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close())
    await peer.expect_close(1000)
    await peer.send_message("late")
    await peer.send_close(1000)
    await harness.end_tcp(peer)
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 1000


@pytest.mark.tether_in_process
async def test_ping_while_tether_waits_for_close_answer(harness: Harness) -> None:
    # Section 5.5.2: a ping gets a pong unless a close frame was received;
    # tether sent one but has not received one yet, so the pong follows it.
    peer = await harness.open()
    ws = await harness.connection()
    closing = asyncio.create_task(ws.close())
    await peer.expect_close(1000)
    await peer.send(Opcode.PING, b"still there?")
    # The peer's parser stops at the close frame: read the pong from what follows.
    async with asyncio.timeout(5):
        while (parsed := parse_frame(peer.after_close, expect_mask=not peer.client)) is None:
            await asyncio.sleep(0.01)
    assert parsed[0].opcode == Opcode.PONG
    assert parsed[0].data == b"still there?"
    peer.after_close.clear()
    await peer.send_close(1000)
    await harness.end_tcp(peer)
    async with asyncio.timeout(5):
        await closing
    assert ws.close_code == 1000
