"""The C accelerator gives exactly what the pure-Python code gives."""

from __future__ import annotations

import array
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tether.exceptions import ProtocolError
from tether.protocol.frames import FrameHeader, build_frame_python, read_header_python
from tether.protocol.masking import apply_mask_python

# The module is imported directly: these tests compare it with the fallback
# whichever of the two the rest of the suite runs on.


def _c_header(
    buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int
) -> FrameHeader | str | None:
    try:
        header: FrameHeader | None = speedups.parse_header(
            FrameHeader, buf, pos, expect_mask, allowed_rsv
        )
    except ProtocolError as exc:
        return f"{exc.code} {exc}"
    return header


def _python_header(
    buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int
) -> FrameHeader | str | None:
    try:
        return read_header_python(buf, pos, expect_mask, allowed_rsv)
    except ProtocolError as exc:
        return f"{exc.code} {exc}"


@given(data=st.binary(max_size=5000), mask=st.binary(min_size=4, max_size=4))
@settings(max_examples=300)
def test_apply_mask_matches(data: bytes, mask: bytes) -> None:
    assert speedups.apply_mask(data, mask) == apply_mask_python(data, mask)
    assert speedups.apply_mask(bytearray(data), mask) == apply_mask_python(data, mask)
    assert speedups.apply_mask(memoryview(data), mask) == apply_mask_python(data, mask)


def test_apply_mask_large_and_odd_sizes() -> None:
    mask = b"\x01\x02\x03\x04"
    for size in (1, 3, 7, 8, 9, 15, 16, 17, 65535, 1 << 20):
        data = os.urandom(size)
        assert speedups.apply_mask(data, mask) == apply_mask_python(data, mask)


def test_apply_mask_rejects_bad_key() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.apply_mask(b"abc", b"abc")


@given(
    first=st.integers(min_value=0, max_value=0xFF),
    data=st.binary(max_size=300),
    key=st.none() | st.binary(min_size=4, max_size=4),
)
@settings(max_examples=500)
def test_build_frame_matches(first: int, data: bytes, key: bytes | None) -> None:
    assert speedups.build_frame(first, data, key) == build_frame_python(first, data, key)
    assert speedups.build_frame(first, memoryview(data), key) == build_frame_python(
        first, bytearray(data), key
    )


def test_build_frame_at_every_length_encoding() -> None:
    for size in (0, 125, 126, 127, 0xFFFF, 0x10000, 0x10001, 1 << 20):
        data = os.urandom(size)
        for key in (None, b"\x01\x02\x03\x04"):
            assert speedups.build_frame(0x82, data, key) == build_frame_python(0x82, data, key)


def test_build_frame_counts_bytes_of_wide_items() -> None:
    # A memoryview of 16-bit items has 3 items but 6 bytes: the header says 6.
    data = memoryview(array.array("H", [1, 2, 3]))
    for build in (speedups.build_frame, build_frame_python):
        frame = build(0x82, data, None)
        assert frame == b"\x82\x06" + data.tobytes()


def test_build_frame_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.build_frame(0x82, b"abc", b"abc")
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.build_frame(0x82, b"abc", "abcd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="range"):
        speedups.build_frame(0x100, b"abc", None)
    with pytest.raises(ValueError, match="range"):
        speedups.build_frame(-1, b"abc", None)


@given(
    buf=st.binary(max_size=16),
    pos=st.integers(min_value=0, max_value=4),
    expect_mask=st.booleans(),
    allowed_rsv=st.sampled_from([0, 0x40, 0x70]),
)
@settings(max_examples=2000)
def test_parse_header_matches(buf: bytes, pos: int, expect_mask: bool, allowed_rsv: int) -> None:
    c = _c_header(buf, pos, expect_mask, allowed_rsv)
    python = _python_header(buf, pos, expect_mask, allowed_rsv)
    assert c == python
    if isinstance(c, FrameHeader):
        assert type(c) is FrameHeader
        assert c.size == python.size  # type: ignore[union-attr]


def test_parse_header_every_first_two_bytes() -> None:
    for first in range(256):
        for second in range(256):
            buf = bytes((first, second)) + bytes(12)
            for expect_mask in (False, True):
                assert _c_header(buf, 0, expect_mask, 0x40) == _python_header(
                    buf, 0, expect_mask, 0x40
                )


def test_parse_header_rejects_negative_position() -> None:
    with pytest.raises(ValueError, match="negative"):
        speedups.parse_header(FrameHeader, b"\x81\x00", -1, False, 0)


def test_environment_variable_selects_the_fallback() -> None:
    code = (
        "from tether.protocol import masking, frames, speedups\n"
        "print(speedups.speedups is None, masking.apply_mask is masking.apply_mask_python,"
        " frames.read_header is frames.read_header_python)"
    )
    env = {**os.environ, "TETHER_NO_SPEEDUPS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.split() == ["True", "True", "True"]
