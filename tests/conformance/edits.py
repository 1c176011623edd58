"""Edits of an HTTP head, line by line: the handshake tables corrupt one thing at a time.

A head is a list of lines without their CRLF, the start line first and
without the blank line that ends it; an :data:`Edit` returns the lines
changed.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Edit", "add", "both", "drop", "lower_name", "replace", "start_line"]

Edit = Callable[[list[bytes]], list[bytes]]
"""Changes the lines of a head."""


def start_line(line: bytes) -> Edit:
    """Replace the start line: the request line or the status line."""
    return lambda lines: [line, *lines[1:]]


def drop(name: bytes) -> Edit:
    """Remove the header lines named ``name``."""
    prefix = name.lower() + b":"
    return lambda lines: [line for line in lines if not line.lower().startswith(prefix)]


def add(*extra: bytes) -> Edit:
    """Add header lines at the end."""
    return lambda lines: [*lines, *extra]


def replace(name: bytes, *values: bytes) -> Edit:
    """Replace the header ``name`` with one line per value, at the end: none removes it."""
    return both(drop(name), add(*(name + b": " + value for value in values)))


def both(*edits: Edit) -> Edit:
    """Apply ``edits`` in order."""

    def edit(lines: list[bytes]) -> list[bytes]:
        for one in edits:
            lines = one(lines)
        return lines

    return edit


def lower_name(line: bytes) -> bytes:
    """A header line with its name in lower case."""
    name, colon, value = line.partition(b":")
    return name.lower() + colon + value
