"""What the fuzz targets share: reading an input, and running under atheris."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["Input", "run"]


class Input:
    """Carve typed values off the front of a fuzzer's input, then take the rest.

    Plain slicing rather than atheris's ``FuzzedDataProvider``, so that the
    targets run without atheris (in the test suite) exactly as they do with it.
    Once the input runs out, every value reads as zero.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        """Take one byte, or 0 past the end."""
        if self.pos >= len(self.data):
            return 0
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint16(self) -> int:
        """Take two bytes as a big-endian integer."""
        return self.byte() << 8 | self.byte()

    def take(self, size: int) -> bytes:
        """Take up to ``size`` bytes."""
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        """Take whatever is left."""
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with atheris, with libFuzzer options from the command line."""
    import atheris  # noqa: PLC0415 - only the fuzzing run needs it, not the tests

    # Instrumenting what is already imported covers tether, which the target
    # module imported before calling this.
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
