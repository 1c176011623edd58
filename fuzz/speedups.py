"""Fuzz the C accelerator against the pure-Python code it replaces.

:func:`tether._speedups.apply_mask` must equal
:func:`~tether.protocol.masking.apply_mask_python`, and
:func:`tether._speedups.parse_header` must equal
:func:`~tether.protocol.frames.read_header_python`: the same header, the
same ``None`` or the same :class:`~tether.exceptions.ProtocolError`, for
every buffer type, position and setting.
"""

from __future__ import annotations

from fuzz._common import Input, run
from tether import _speedups
from tether.exceptions import ProtocolError
from tether.protocol.frames import FrameHeader, read_header_python
from tether.protocol.masking import apply_mask_python

__all__ = ["TestOneInput"]


def _read(c: bool, buf: bytes | bytearray | memoryview, pos: int, mask: bool, rsv: int) -> object:
    """The header read by one implementation, or the error it raised."""
    try:
        if c:
            return _speedups.parse_header(FrameHeader, buf, pos, mask, rsv)
        return read_header_python(buf, pos, mask, rsv)
    except ProtocolError as exc:
        return (type(exc), str(exc), exc.code)


def _views(data: bytes, kind: int) -> bytes | bytearray | memoryview:
    if kind == 1:
        return bytearray(data)
    if kind == 2:
        return memoryview(data)
    if kind == 3 and data:
        # A view that starts inside a larger buffer, as the engine passes.
        return memoryview(b"\xff" + data)[1:]
    return data


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    flags = source.byte()
    rest_kind = flags >> 6
    if flags & 1:
        mask = source.take(4).ljust(4, b"\x00")
        payload = _views(source.rest(), rest_kind)
        expected = apply_mask_python(payload, mask)
        assert len(expected) == len(payload)
        assert _speedups.apply_mask(payload, mask) == expected
        assert apply_mask_python(expected, mask) == bytes(payload)
        return
    pos = source.byte() % 16
    buf = _views(source.rest(), rest_kind)
    pos = min(pos, len(buf))
    expect_mask = bool(flags & 2)
    allowed_rsv = flags & 0x70
    python = _read(False, buf, pos, expect_mask, allowed_rsv)
    c = _read(True, buf, pos, expect_mask, allowed_rsv)
    assert python == c, (python, c)
    if isinstance(python, FrameHeader):
        assert isinstance(c, FrameHeader)
        assert python.size <= len(buf) - pos


if __name__ == "__main__":
    run(TestOneInput)
