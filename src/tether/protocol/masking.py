"""Masking and unmasking of frame payloads (RFC 6455 section 5.3)."""

from __future__ import annotations

__all__ = ["apply_mask"]


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated; masking and unmasking are the same.

    The payload is XORed as one wide integer, which keeps the work in C
    rather than in a per-byte Python loop.
    """
    size = len(data)
    if size == 0:
        return b""
    repeats, extra = divmod(size, 4)
    key = mask * repeats + mask[:extra]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(size, "little")
