"""Incremental UTF-8 validation that fails at the first invalid byte."""

from __future__ import annotations

import codecs

from tether.exceptions import ProtocolError

__all__ = ["TextDecoder"]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class TextDecoder:
    """Decode a text message piece by piece, failing as soon as a byte is invalid.

    Raise :class:`ProtocolError` with close code 1007 on invalid UTF-8.
    CPython's incremental decoder catches every invalid byte when it arrives
    except the second byte of an encoded surrogate (``ED A0``-``ED BF``),
    which it only rejects one byte later; that case is checked here.
    """

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = _utf8_decoder()

    def decode(self, data: bytes | bytearray | memoryview, *, final: bool = False) -> str:
        """Decode the next piece; ``final`` marks the end of the message."""
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise ProtocolError("invalid UTF-8 in text message", 1007) from exc
        if not final:
            pending = self._decoder.getstate()[0]
            if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise ProtocolError("invalid UTF-8 in text message: surrogate", 1007)
        return text
