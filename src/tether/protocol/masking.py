"""Masking and unmasking of frame payloads (RFC 6455 section 5.3)."""

from __future__ import annotations

from collections.abc import Callable

from tether.protocol.speedups import speedups

__all__ = ["apply_mask", "apply_mask_python"]

# Large payloads are XORed in blocks of this size: wide integers of a few
# kilobytes stay in cache, where one integer of a megabyte does not.
_BLOCK = 1 << 14


def _xor(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    size = len(data)
    repeats, extra = divmod(size, 4)
    key = mask * repeats + mask[:extra]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")


def apply_mask_python(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated; masking and unmasking are the same.

    The payload is XORed as wide integers, which keeps the work in C rather
    than in a per-byte Python loop.
    """
    size = len(data)
    if size <= _BLOCK:
        return _xor(data, mask) if size else b""
    key = int.from_bytes(mask * (_BLOCK // 4), "little")
    view = memoryview(data)
    out = bytearray(size)
    end = size - size % _BLOCK
    for start in range(0, end, _BLOCK):
        block = int.from_bytes(view[start : start + _BLOCK], "little") ^ key
        out[start : start + _BLOCK] = block.to_bytes(_BLOCK, "little")
    # The block size is a multiple of 4, so the tail starts on a key boundary.
    out[end:] = _xor(view[end:], mask)
    return bytes(out)


apply_mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] = (
    apply_mask_python if speedups is None else speedups.apply_mask
)
"""XOR ``data`` with the 4-byte ``mask`` repeated: the C version when it is built."""
