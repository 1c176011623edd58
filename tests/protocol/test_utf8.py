"""Incremental UTF-8 validation (tether.protocol.utf8.TextDecoder).

The reference is a small DFA written from the table of well-formed byte
sequences in the Unicode standard (chapter 3, table 3-7): it tells for any
byte string the index of the first byte after which the string is no longer
the prefix of valid UTF-8.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.exceptions import ProtocolError
from tether.protocol.utf8 import TextDecoder

# Lead byte: (continuation bytes that follow, allowed range of the first of them).
_LEADS: dict[int, tuple[int, int, int]] = {}
for _lead in range(0xC2, 0xE0):
    _LEADS[_lead] = (1, 0x80, 0xBF)
_LEADS[0xE0] = (2, 0xA0, 0xBF)
for _lead in [*range(0xE1, 0xED), 0xEE, 0xEF]:
    _LEADS[_lead] = (2, 0x80, 0xBF)
_LEADS[0xED] = (2, 0x80, 0x9F)  # no surrogates
_LEADS[0xF0] = (3, 0x90, 0xBF)  # no overlong 4-byte forms
for _lead in range(0xF1, 0xF4):
    _LEADS[_lead] = (3, 0x80, 0xBF)
_LEADS[0xF4] = (3, 0x80, 0x8F)  # nothing past U+10FFFF


def utf8_prefix_check(data: bytes) -> tuple[int | None, bool]:
    """Return the index of the first invalid byte (or None) and whether a character is open."""
    need = 0
    low, high = 0x80, 0xBF
    for index, byte in enumerate(data):
        if need:
            if not low <= byte <= high:
                return index, True
            need -= 1
            low, high = 0x80, 0xBF
        elif byte >= 0x80:
            if byte not in _LEADS:
                return index, False
            need, low, high = _LEADS[byte]
    return None, need > 0


def expected_failure(data: bytes) -> int | None:
    """Where decoding must fail: at the first bad byte, at the end (``len(data)``), or never."""
    index, open_char = utf8_prefix_check(data)
    if index is not None:
        return index
    return len(data) if open_char else None


def failure_byte_by_byte(data: bytes) -> int | None:
    """Feed ``data`` one byte at a time; return the index of the byte that failed."""
    decoder = TextDecoder()
    pieces: list[str] = []
    error: ProtocolError | None = None
    index = 0
    try:
        for index in range(len(data)):
            pieces.append(decoder.decode(data[index : index + 1]))
        index = len(data)
        pieces.append(decoder.decode(b"", final=True))
    except ProtocolError as exc:
        error = exc
    if error is not None:
        assert error.code == 1007
        return index
    assert "".join(pieces) == data.decode()
    return None


def test_reference_agrees_with_codec_on_samples() -> None:
    assert utf8_prefix_check("aé€𝄞\U0010ffff\ud7ff".encode()) == (None, False)
    assert utf8_prefix_check(b"\xf0\x9f") == (None, True)
    assert utf8_prefix_check(b"a\xed\xa0") == (2, True)
    assert utf8_prefix_check(b"ab\xff") == (2, False)


# Valid input


def test_empty() -> None:
    decoder = TextDecoder()
    assert decoder.decode(b"") == ""
    assert decoder.decode(b"", final=True) == ""


def test_whole_string() -> None:
    assert TextDecoder().decode("héllo €𝄞".encode(), final=True) == "héllo €𝄞"


def test_partial_character_is_held_back() -> None:
    decoder = TextDecoder()
    assert decoder.decode(b"a\xf0") == "a"
    assert decoder.decode(b"\x9d") == ""
    assert decoder.decode(b"\x84") == ""
    assert decoder.decode(b"\x9eb", final=True) == "𝄞b"


@pytest.mark.parametrize(
    "char", ["\x00", "\x7f", "\x80", "\u07ff", "\u0800", "\ud7ff", "\ue000", "\uffff", "\U00010000"]
)
def test_boundary_characters(char: str) -> None:
    encoded = char.encode() + "\U0010ffff".encode()
    assert failure_byte_by_byte(encoded) is None


@settings(max_examples=300)
@given(st.text(), st.lists(st.integers(min_value=0), max_size=8))
def test_valid_text_split_anywhere(text: str, cuts: list[int]) -> None:
    encoded = text.encode()
    points = sorted({cut % (len(encoded) + 1) for cut in cuts})
    bounds = [0, *points, len(encoded)]
    decoder = TextDecoder()
    pieces = [decoder.decode(encoded[start:end]) for start, end in itertools.pairwise(bounds)]
    pieces.append(decoder.decode(b"", final=True))
    assert "".join(pieces) == text


@settings(max_examples=100)
@given(st.text(min_size=1))
def test_valid_text_byte_by_byte_with_final_on_last(text: str) -> None:
    encoded = text.encode()
    decoder = TextDecoder()
    pieces = [decoder.decode(encoded[i : i + 1]) for i in range(len(encoded) - 1)]
    pieces.append(decoder.decode(encoded[-1:], final=True))
    assert "".join(pieces) == text


# Invalid input


@pytest.mark.parametrize(
    ("data", "index"),
    [
        (b"\x80", 0),
        (b"\xbf", 0),
        (b"\xc0\x80", 0),
        (b"\xc1\xbf", 0),
        (b"\xc2\x00", 1),
        (b"\xc2\xc0", 1),
        (b"\xe0\x80\x80", 1),
        (b"\xe0\x9f\xbf", 1),
        (b"\xe0\xa0\x7f", 2),
        (b"\xed\xa0\x80", 1),
        (b"\xed\xaf\xbf", 1),
        (b"\xed\xb0\x80", 1),
        (b"\xed\xbf\xbf", 1),
        (b"\xf0\x80\x80\x80", 1),
        (b"\xf0\x8f\xbf\xbf", 1),
        (b"\xf4\x90\x80\x80", 1),
        (b"\xf4\x8f\xbf\xc0", 3),
        (b"\xf5\x80\x80\x80", 0),
        (b"\xf8\x88\x80\x80\x80", 0),
        (b"\xfc\x84\x80\x80\x80\x80", 0),
        (b"\xfe", 0),
        (b"\xff", 0),
        (b"\xc3", 1),
        (b"\xe2\x82", 2),
        (b"\xf0\x9f\x98", 3),
    ],
)
def test_fails_at_first_invalid_byte(data: bytes, index: int) -> None:
    assert expected_failure(data) == index
    assert failure_byte_by_byte(b"abc" + data) == 3 + index


@pytest.mark.parametrize("second", range(0xA0, 0xC0))
def test_surrogate_fails_at_second_byte(second: int) -> None:
    """CPython's own decoder waits for a third byte here; TextDecoder does not."""
    decoder = TextDecoder()
    assert decoder.decode(b"\xed") == ""
    with pytest.raises(ProtocolError, match="surrogate") as info:
        decoder.decode(bytes([second]))
    assert info.value.code == 1007


def test_surrogate_in_one_piece_fails() -> None:
    with pytest.raises(ProtocolError) as info:
        TextDecoder().decode(b"ok\xed\xa0")
    assert info.value.code == 1007


def test_codec_error_is_the_cause() -> None:
    with pytest.raises(ProtocolError, match="invalid UTF-8 in text message") as info:
        TextDecoder().decode(b"\xff")
    assert info.value.code == 1007
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize("tail", [b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed"])
def test_open_character_fails_when_final(tail: bytes) -> None:
    decoder = TextDecoder()
    assert decoder.decode(b"x" + tail) == "x"
    with pytest.raises(ProtocolError) as info:
        decoder.decode(b"", final=True)
    assert info.value.code == 1007
    with pytest.raises(ProtocolError):
        TextDecoder().decode(b"x" + tail, final=True)


def test_surrogate_prefix_with_final_fails() -> None:
    with pytest.raises(ProtocolError):
        TextDecoder().decode(b"\xed\xa0", final=True)


def test_every_two_byte_string() -> None:
    # Past ASCII: an ASCII first byte is the one-byte case twice over.
    firsts = [0x00, 0x41, 0x7F, *range(0x80, 0x100)]
    for first, second in itertools.product(firsts, range(256)):
        data = bytes((first, second))
        assert failure_byte_by_byte(data) == expected_failure(data), data.hex()


def test_three_byte_strings_after_each_lead() -> None:
    thirds = (0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    for lead in range(0xE0, 0xF5):
        for second, third in itertools.product(range(0x80, 0xC0), thirds):
            data = bytes((lead, second, third))
            assert failure_byte_by_byte(data) == expected_failure(data), data.hex()


INTERESTING = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF]
INTERESTING += [0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]

utf8ish = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(INTERESTING), max_size=40).map(bytes),
    st.tuples(st.text(max_size=20), st.integers(0, 1000), st.integers(0, 255)).map(
        lambda args: _mutate(args[0].encode(), args[1], args[2])
    ),
)


def _mutate(data: bytes, position: int, byte: int) -> bytes:
    if not data:
        return bytes([byte])
    position %= len(data)
    return data[:position] + bytes([byte]) + data[position + 1 :]


@settings(max_examples=300)
@given(utf8ish)
def test_random_bytes_byte_by_byte(data: bytes) -> None:
    failure = failure_byte_by_byte(data)
    assert failure == expected_failure(data)
    try:
        data.decode()
    except UnicodeDecodeError:
        assert failure is not None
    else:
        assert failure is None


@settings(max_examples=300)
@given(utf8ish, st.lists(st.integers(min_value=0), max_size=6))
def test_random_bytes_random_chunks(data: bytes, cuts: list[int]) -> None:
    """Decoding fails in the piece holding the first bad byte, never later."""
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    expected = expected_failure(data)
    decoder = TextDecoder()
    pieces: list[str] = []
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        last = number == len(bounds) - 2
        try:
            pieces.append(decoder.decode(data[start:end], final=last))
        except ProtocolError:
            assert expected is not None
            assert start <= expected < end or (last and expected == end)
            return
        assert expected is None or expected >= end
    assert expected is None
    assert "".join(pieces) == data.decode()
