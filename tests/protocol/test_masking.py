"""Tests for payload masking (RFC 6455 section 5.3, tether.protocol.masking)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.protocol.masking import apply_mask

Buffer = bytes | bytearray | memoryview

keys = st.binary(min_size=4, max_size=4)


def reference_mask(data: bytes, key: bytes) -> bytes:
    """Section 5.3 word for word: octet i is XORed with key octet i MOD 4."""
    out = bytearray()
    for i, octet in enumerate(data):
        out.append(octet ^ key[i % 4])
    return bytes(out)


def test_5_3_rfc_example() -> None:
    key = bytes.fromhex("37fa213d")
    assert apply_mask(b"Hello", key) == bytes.fromhex("7f9f4d5158")
    assert apply_mask(bytes.fromhex("7f9f4d5158"), key) == b"Hello"


def test_empty_payload() -> None:
    assert apply_mask(b"", b"\x01\x02\x03\x04") == b""
    assert type(apply_mask(b"", b"\x01\x02\x03\x04")) is bytes


def test_zero_key_is_identity() -> None:
    data = bytes(range(256)) * 3
    assert apply_mask(data, bytes(4)) == data


def test_all_ones_key_inverts() -> None:
    data = bytes(range(256))
    assert apply_mask(data, b"\xff" * 4) == bytes(255 - b for b in data)


def test_key_repeats_every_four_bytes() -> None:
    key = b"\x01\x02\x04\x08"
    assert apply_mask(bytes(10), key) == key + key + key[:2]


def test_leading_and_trailing_zero_bytes_are_kept() -> None:
    # The wide-integer implementation must not drop zero bytes at either end.
    key = b"\x00\x00\x00\x00"
    assert apply_mask(b"\x00\x00abc\x00\x00", key) == b"\x00\x00abc\x00\x00"
    key = b"\x11\x00\x00\x11"
    assert apply_mask(b"\x11\x00\x00\x11\x11", key) == b"\x00\x00\x00\x00\x00"


# Past 2 x 128 bytes: every mix of the C code's 128-, 64-, 16- and 8-byte
# blocks and its tail.
@pytest.mark.parametrize("length", range(300))
def test_every_small_length_matches_reference(length: int) -> None:
    rng = random.Random(length)
    for _ in range(5):
        data = rng.randbytes(length)
        key = rng.randbytes(4)
        masked = apply_mask(data, key)
        assert masked == reference_mask(data, key)
        assert len(masked) == length
        assert apply_mask(masked, key) == data


@pytest.mark.parametrize("length", [125, 126, 4095, 4096, 65535, 65536, 65537, 70001])
def test_large_lengths_match_reference(length: int) -> None:
    rng = random.Random(length)
    data = rng.randbytes(length)
    key = rng.randbytes(4)
    masked = apply_mask(data, key)
    assert masked == reference_mask(data, key)
    assert apply_mask(masked, key) == data


@pytest.mark.parametrize("offset", [1, 2, 3, 5, 17])
def test_unaligned_input_matches_reference(offset: int) -> None:
    rng = random.Random(offset)
    data = rng.randbytes(1000)
    key = rng.randbytes(4)
    view = memoryview(data)[offset:]
    assert apply_mask(view, key) == reference_mask(data[offset:], key)


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_accepts_any_buffer(buffer_type: Callable[[bytes], Buffer]) -> None:
    key = bytes.fromhex("37fa213d")
    result = apply_mask(buffer_type(b"Hello"), key)
    assert result == bytes.fromhex("7f9f4d5158")
    assert type(result) is bytes


def test_does_not_modify_its_input() -> None:
    data = bytearray(b"payload")
    apply_mask(data, b"\xaa\xbb\xcc\xdd")
    assert data == b"payload"


@settings(max_examples=300)
@given(data=st.binary(max_size=300), key=keys)
def test_matches_reference(data: bytes, key: bytes) -> None:
    assert apply_mask(data, key) == reference_mask(data, key)


@settings(max_examples=300)
@given(data=st.binary(max_size=300), key=keys)
def test_is_an_involution(data: bytes, key: bytes) -> None:
    masked = apply_mask(data, key)
    assert len(masked) == len(data)
    assert apply_mask(masked, key) == data


@settings(max_examples=50, deadline=None)
@given(size=st.integers(0, 70000), seed=st.integers(0, 2**32 - 1), key=keys)
def test_matches_reference_for_large_random_data(size: int, seed: int, key: bytes) -> None:
    data = random.Random(seed).randbytes(size)
    masked = apply_mask(data, key)
    assert masked == reference_mask(data, key)
    assert apply_mask(masked, key) == data


@settings(max_examples=200)
@given(data=st.binary(max_size=100), key=keys, split=st.integers(0, 25))
def test_masking_in_key_aligned_pieces_is_the_same(data: bytes, key: bytes, split: int) -> None:
    """Masking may be split anywhere on a multiple of 4 bytes."""
    cut = min(split * 4, len(data))
    assert apply_mask(data[:cut], key) + apply_mask(data[cut:], key) == apply_mask(data, key)
