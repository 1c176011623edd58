"""Fuzz the parsers of handshake header values.

The input's first byte picks the parser and how the rest becomes a string:
latin-1, as the HTTP parser hands values over, or UTF-8, since the parsers
are public and take any ``str``. Only
:class:`~tether.exceptions.InvalidHeader` may escape, and what parses must
build back to a value that parses to the same thing.
"""

from __future__ import annotations

import contextlib

from fuzz._common import Input, run
from tether.exceptions import InvalidHeader
from tether.protocol.header_values import (
    build_authorization_basic,
    build_extensions,
    build_subprotocols,
    parse_authorization_basic,
    parse_connection,
    parse_extensions,
    parse_subprotocols,
    parse_upgrade,
)

__all__ = ["TestOneInput"]


def _extensions(value: str) -> None:
    parsed = parse_extensions(value)
    assert parsed
    assert parse_extensions(build_extensions(parsed)) == parsed


def _subprotocols(value: str) -> None:
    parsed = parse_subprotocols(value)
    assert parsed
    assert parse_subprotocols(build_subprotocols(parsed)) == parsed


def _connection(value: str) -> None:
    parsed = parse_connection(value)
    assert parsed
    assert parse_connection(", ".join(parsed)) == parsed


def _upgrade(value: str) -> None:
    parsed = parse_upgrade(value)
    assert parsed
    assert parse_upgrade(", ".join(parsed)) == parsed


def _authorization(value: str) -> None:
    username, password = parse_authorization_basic(value)
    assert ":" not in username
    assert parse_authorization_basic(build_authorization_basic(username, password)) == (
        username,
        password,
    )


_PARSERS = (_extensions, _subprotocols, _connection, _upgrade, _authorization)


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    flags = source.byte()
    raw = source.rest()
    value = raw.decode("utf-8", "replace") if flags & 0x80 else raw.decode("latin-1")
    with contextlib.suppress(InvalidHeader):
        _PARSERS[flags % len(_PARSERS)](value)


if __name__ == "__main__":
    run(TestOneInput)
