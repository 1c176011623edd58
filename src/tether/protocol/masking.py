"""Masking and unmasking of frame payloads (RFC 6455 section 5.3)."""

from __future__ import annotations

from collections.abc import Callable

from tether.protocol.speedups import speedups

__all__ = [
    "apply_mask",
    "apply_mask_python",
    "fill_payload",
    "fill_payload_python",
    "new_payload",
    "new_payload_python",
]

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


def new_payload_python(size: int) -> bytearray:
    """Make a buffer of ``size`` bytes for :func:`fill_payload` to write a large message into.

    The pure-Python twin of the C accelerator's ``new_payload``, which makes
    a ``bytes`` object instead, so that the message needs no copy at the end.
    """
    if size < 0:
        raise ValueError("size must be at least 0")
    return bytearray(size)


def fill_payload_python(
    target: bytes | bytearray, at: int, data: bytes | bytearray | memoryview, key: bytes | None
) -> None:
    """Write ``data`` into ``target`` from offset ``at``, unmasked with ``key`` unless it is None.

    ``key`` is already in step with the first byte of ``data``. The
    pure-Python twin of the C accelerator's ``fill_payload``; ``target`` must
    be a ``bytearray`` here.
    """
    if not isinstance(target, bytearray):
        raise TypeError("target must be a bytearray")
    if key is not None and len(key) != 4:
        raise ValueError("key must be 4 bytes or None")
    size = memoryview(data).nbytes
    if at < 0 or size > len(target) - at:
        raise ValueError("data does not fit in target at that offset")
    target[at : at + size] = data if key is None else apply_mask_python(data, key)


new_payload: Callable[[int], bytes | bytearray] = (
    new_payload_python if speedups is None else speedups.new_payload
)
""":func:`new_payload_python`, or in C a ``bytes`` object filled in place."""

fill_payload: Callable[
    [bytes | bytearray, int, bytes | bytearray | memoryview, bytes | None], None
] = fill_payload_python if speedups is None else speedups.fill_payload
""":func:`fill_payload_python`, in C when the accelerator is built."""
