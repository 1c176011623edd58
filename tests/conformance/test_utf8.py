"""UTF-8 in text messages (RFC 6455 sections 5.6 and 8.1): valid text echoed, invalid failed fast.

Where a sequence becomes invalid comes from the grammar of RFC 3629 section
4, written out below independently of tether. tether must fail with 1007 as
soon as that byte arrives: the close frame comes back before the rest of the
message is sent. A sequence cut short by the end of the message fails at
the end.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import Harness
from tests.conformance.peer import Peer
from tether.protocol.frames import Opcode

# RFC 3629 section 4: the allowed range of the second byte after each lead
# byte, and how many bytes the sequence takes.
_TAIL = (0x80, 0xBF)


def _lead(byte: int) -> tuple[int, tuple[int, int]] | None:
    if byte <= 0x7F:
        return 1, _TAIL
    if 0xC2 <= byte <= 0xDF:
        return 2, _TAIL
    if byte == 0xE0:
        return 3, (0xA0, 0xBF)
    if 0xE1 <= byte <= 0xEC or 0xEE <= byte <= 0xEF:
        return 3, _TAIL
    if byte == 0xED:
        return 3, (0x80, 0x9F)
    if byte == 0xF0:
        return 4, (0x90, 0xBF)
    if 0xF1 <= byte <= 0xF3:
        return 4, _TAIL
    if byte == 0xF4:
        return 4, (0x80, 0x8F)
    return None


def fail_at(data: bytes) -> int | None:
    """How many bytes of ``data`` it takes to know it is invalid UTF-8; ``None`` if valid."""
    index = 0
    while index < len(data):
        lead = _lead(data[index])
        if lead is None:
            return index + 1
        size, (low, high) = lead
        for offset in range(1, size):
            if index + offset >= len(data):
                return len(data)
            byte = data[index + offset]
            allowed = (low, high) if offset == 1 else _TAIL
            if not allowed[0] <= byte <= allowed[1]:
                return index + offset + 1
        index += size
    return None


VALID_TEXTS = {
    "ascii": "Hello, world!",
    "latin": "Grüße, façade, naïve, Ærø",
    "greek": "Καλημέρα κόσμε",
    "cyrillic": "Привет, мир",
    "hebrew": "שלום עולם",
    "arabic": "مرحبا بالعالم",
    "devanagari": "नमस्ते दुनिया",
    "thai": "สวัสดีชาวโลก",
    "cjk": "你好\uff0c世界。こんにちは世界。안녕하세요",
    "emoji": "🎉👍🏽👨‍👩‍👧‍👦🇫🇷",
    "edges": "\x00\x7f\x80\u07ff\u0800\ud7ff\ue000\ufffd\uffff\U00010000\U0010ffff",
    "bom_and_nonchars": "\ufeff\ufdd0\U0001fffe",
}

INVALID_SEQUENCES = {
    "stray_continuation_80": b"\x80",
    "stray_continuation_bf": b"\xbf",
    "two_stray_continuations": b"\x80\x80",
    "lone_lead_c0": b"\xc0",
    "overlong_2_c0": b"\xc0\x80",
    "overlong_2_c1": b"\xc1\xbf",
    "overlong_3": b"\xe0\x80\x80",
    "overlong_3_max": b"\xe0\x9f\xbf",
    "overlong_4": b"\xf0\x80\x80\x80",
    "overlong_4_max": b"\xf0\x8f\xbf\xbf",
    "surrogate_high_first": b"\xed\xa0\x80",
    "surrogate_low_last": b"\xed\xbf\xbf",
    "surrogate_pair": b"\xed\xa0\xbd\xed\xb8\x80",
    "above_max_f4_90": b"\xf4\x90\x80\x80",
    "above_max_f5": b"\xf5\x80\x80\x80",
    "above_max_f7": b"\xf7\xbf\xbf\xbf",
    "five_bytes_f8": b"\xf8\x88\x80\x80\x80",
    "six_bytes_fc": b"\xfc\x84\x80\x80\x80\x80",
    "fe": b"\xfe",
    "ff": b"\xff",
    "two_bytes_missing_tail": b"\xc2A",
    "three_bytes_missing_tail": b"\xe2\x82A",
    "four_bytes_missing_tail": b"\xf0\x9f\x98A",
    "truncated_2_at_end": b"\xc2",
    "truncated_3_at_end": b"\xe2\x82",
    "truncated_4_at_end": b"\xf0\x9f\x98",
}

# A valid prefix and suffix make the invalid byte sit inside the message.
PREFIX = "a€".encode()
SUFFIX = b"z"


def invalid_message(name: str) -> bytes:
    """The bytes of a text message with the sequence ``name`` inside, or at the end if truncated."""
    sequence = INVALID_SEQUENCES[name]
    suffix = b"" if name.endswith("_at_end") else SUFFIX
    return PREFIX + sequence + suffix


def test_grammar() -> None:
    """The independent grammar agrees with Python on every case used here."""
    for text in VALID_TEXTS.values():
        assert fail_at(text.encode()) is None
    for name, sequence in INVALID_SEQUENCES.items():
        message = invalid_message(name)
        position = fail_at(message)
        assert position is not None, name
        assert len(PREFIX) < position <= len(PREFIX) + len(sequence), name
        with pytest.raises(UnicodeDecodeError):
            message.decode()


# Valid text.


@pytest.mark.parametrize("name", VALID_TEXTS)
async def test_valid_text_whole(harness: Harness, name: str) -> None:
    peer = await harness.open()
    await peer.send_message(VALID_TEXTS[name])
    await peer.expect_echo(VALID_TEXTS[name])
    await harness.finish(peer)


@pytest.mark.parametrize("name", VALID_TEXTS)
async def test_valid_text_fragmented_at_every_byte(harness: Harness, name: str) -> None:
    # Each cut in a fresh message on the same connection: every character
    # boundary and every position inside a character.
    peer = await harness.open()
    text = VALID_TEXTS[name]
    for cut in range(len(text.encode()) + 1):
        await peer.send_message(text, cuts=[cut])
        await peer.expect_echo(text)
    await peer.send_message(text, fragment=1)
    await peer.expect_echo(text)
    await harness.finish(peer)


@pytest.mark.parametrize("name", ["cjk", "emoji", "edges"])
async def test_valid_text_one_byte_per_write(harness: Harness, name: str) -> None:
    peer = await harness.open()
    text = VALID_TEXTS[name]
    data = peer.frame(Opcode.TEXT, text.encode())
    await peer.write(data, split=range(1, len(data)))
    await peer.expect_echo(text)
    await harness.finish(peer)


# Invalid text.


async def _check_nothing_yet(peer: Peer) -> None:
    assert not peer.frames, f"tether answered before the invalid byte: {peer.frames!r}"
    assert not peer.eof, "tether closed TCP before the invalid byte"


@pytest.mark.parametrize("name", INVALID_SEQUENCES)
async def test_invalid_text_whole(harness: Harness, name: str) -> None:
    peer = await harness.open()
    await peer.send(Opcode.TEXT, invalid_message(name))
    await peer.expect_failure(1007)


@pytest.mark.parametrize("name", INVALID_SEQUENCES)
async def test_invalid_text_in_two_fragments_cut_at_every_byte(harness: Harness, name: str) -> None:
    message = invalid_message(name)
    position = fail_at(message)
    assert position is not None
    for cut in range(len(message) + 1):
        peer = await harness.open()
        first, second = peer.message_frames(message, cuts=[cut], text=True)
        await peer.write(first)
        # A sequence cut short is only invalid once the message ends.
        if position > cut or name.endswith("_at_end"):
            # The first fragment is fine: the ping proves it was read, then
            # the second brings the invalid byte.
            await peer.roundtrip()
            await peer.write(second)
        # Otherwise the second fragment is never sent: tether must not wait for it.
        await peer.expect_failure(1007)


@pytest.mark.parametrize("name", INVALID_SEQUENCES)
async def test_invalid_text_one_byte_per_fragment(harness: Harness, name: str) -> None:
    message = invalid_message(name)
    position = fail_at(message)
    assert position is not None
    peer = await harness.open()
    frames = peer.message_frames(message, fragment=1, text=True)
    await peer.write(b"".join(frames[: position - 1]))
    await peer.roundtrip()
    await peer.write(frames[position - 1])
    await peer.expect_failure(1007)


@pytest.mark.parametrize("name", INVALID_SEQUENCES)
async def test_invalid_text_one_byte_per_write(harness: Harness, name: str) -> None:
    message = invalid_message(name)
    position = fail_at(message)
    assert position is not None
    peer = await harness.open()
    data = peer.frame(Opcode.TEXT, message)
    header = len(data) - len(message)
    # The header, then the payload one byte per write up to the invalid one.
    await peer.write(data[: header + position - 1], split=range(header, header + position - 1))
    await _check_nothing_yet(peer)
    await peer.write(data[header + position - 1 : header + position])
    await peer.expect_failure(1007)
    # What follows the invalid byte was never written.


async def test_invalid_text_after_valid_messages(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send_message("fine")
    await peer.expect_echo("fine")
    await peer.send(Opcode.TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")
    await peer.expect_failure(1007)


async def test_binary_message_may_hold_anything(harness: Harness) -> None:
    peer = await harness.open()
    payload = b"".join(INVALID_SEQUENCES.values())
    await peer.send_message(payload, fragment=3)
    await peer.expect_echo(payload)
    await harness.finish(peer)
