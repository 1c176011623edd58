"""What the fuzz targets share: reading an input, and running under atheris."""

from __future__ import annotations

import gc
import shlex
import sys
import types
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


# Top-level packages whose functions atheris instruments: tether, the targets,
# and the target module itself when it runs as ``python -m fuzz.<target>``.
_INSTRUMENTED = frozenset({"tether", "fuzz", "__main__"})


def _ours(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    return (
        isinstance(obj, types.FunctionType)
        and isinstance(module, str)
        and module.partition(".")[0] in _INSTRUMENTED
    )


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` with atheris, with libFuzzer options from the command line."""
    import atheris  # noqa: PLC0415 - only the fuzzing run needs it, not the tests

    # The target module imported tether before calling this, so its functions
    # are all there to instrument. Only tether's and the targets' are: atheris's
    # instrument_all() would also take the 3,000-odd functions of the standard
    # library loaded by then, which costs some 20 s at every start (too much
    # for the brief runs of the test suite) and counts coverage that is not ours.
    for func in [obj for obj in gc.get_objects() if _ours(obj)]:
        atheris.instrument_func(func)
    atheris.Setup(_command_line(), test_one_input)
    atheris.Fuzz()


def _command_line() -> list[str]:
    """``sys.argv``, with a first word that starts this target again.

    libFuzzer runs ``-merge=1`` (and ``-fork``) in child processes, through
    the shell, with a command line of its arguments joined by spaces, the
    first being the program. Under ``python -m fuzz.<target>`` that is the
    module's file, which is not executable; this interpreter with ``-m`` and
    the module's name is, and the shell splits it into its words.
    """
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None:
        return sys.argv
    return [f"{shlex.quote(sys.executable)} -m {spec.name}", *sys.argv[1:]]
