"""Parse and build the values of the opening handshake's headers.

The parsers are small scanners that walk the value once, left to right, and
raise :class:`~tether.exceptions.InvalidHeaderFormat` with the position of
the first error. Their regular expressions are single character classes,
matched at a position, so that hostile values cannot make them backtrack:
every parser runs in time linear in the length of the value.

Lists follow the ``#rule`` of RFC 9110 section 5.6.1: elements are separated
by commas with optional whitespace around them, and empty elements are
skipped. A ``1#`` list, which all of these headers are, needs one element
that is not empty.

The builders check their input and raise :class:`ValueError` for anything
that the matching parser would refuse, so that what they build always
parses back to what they were given.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, TypeVar

from tether.exceptions import InvalidHeaderFormat, InvalidHeaderValue

__all__ = [
    "ExtensionHeader",
    "ExtensionParameter",
    "build_authorization_basic",
    "build_extensions",
    "build_subprotocols",
    "parse_authorization_basic",
    "parse_connection",
    "parse_extensions",
    "parse_subprotocols",
    "parse_token_list",
    "parse_upgrade",
]

ExtensionParameter: TypeAlias = tuple[str, str | None]
"""One extension parameter: its name and its value, or ``None`` when it has none."""

ExtensionHeader: TypeAlias = tuple[str, list[ExtensionParameter]]
"""One extension in ``Sec-WebSocket-Extensions``: its name and its parameters."""

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")
_OWS_RE = re.compile(r"[ \t]*")
# qdtext of RFC 9110 section 5.6.4: any field character but DQUOTE and backslash.
_QDTEXT_RE = re.compile(r"[\t !#-\[\]-~\x80-\xff]*")
# What may follow a backslash in a quoted-pair.
_QUOTED_PAIR_RE = re.compile(r"[\t \x21-\x7e\x80-\xff]")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

_T = TypeVar("_T")

# An item parser reads one element at a position and returns it with the
# position after it.
_ItemParser: TypeAlias = Callable[[str, int, str], tuple[_T, int]]


def _skip_ows(value: str, pos: int) -> int:
    match = _OWS_RE.match(value, pos)
    assert match is not None  # It matches the empty string at worst.
    return match.end()


def _parse_token(value: str, pos: int, name: str) -> tuple[str, int]:
    match = _TOKEN_RE.match(value, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected token", value, pos)
    return match.group(), match.end()


def _skip_commas(value: str, pos: int) -> int:
    """Skip empty list elements: any run of commas and whitespace."""
    while True:
        pos = _skip_ows(value, pos)
        if pos == len(value) or value[pos] != ",":
            return pos
        pos += 1


# Peers send the same few values over and over, so lists are parsed once per
# distinct short value. Only results are kept, never errors, and long
# values are parsed every time: what a hostile peer can pin is bounded.
_CACHED_LENGTH = 200
_CACHE_SIZE = 256
_parsed: dict[tuple[str, _ItemParser[Any]], tuple[Any, ...]] = {}


def _parse_list(value: str, name: str, parse_item: _ItemParser[_T]) -> tuple[_T, ...]:
    """Parse a ``1#item`` list, tolerating empty elements; items must be immutable."""
    if len(value) > _CACHED_LENGTH:
        return _scan_list(value, name, parse_item)
    key = (value, parse_item)
    items = _parsed.get(key)
    if items is None:
        items = _scan_list(value, name, parse_item)
        if len(_parsed) >= _CACHE_SIZE:
            _parsed.clear()
        _parsed[key] = items
    return items


def _scan_list(value: str, name: str, parse_item: _ItemParser[_T]) -> tuple[_T, ...]:
    items: list[_T] = []
    pos = _skip_commas(value, 0)
    while True:
        item, pos = parse_item(value, pos, name)
        items.append(item)
        pos = _skip_ows(value, pos)
        if pos == len(value):
            return tuple(items)
        if value[pos] != ",":
            raise InvalidHeaderFormat(name, "expected comma", value, pos)
        pos = _skip_commas(value, pos + 1)
        if pos == len(value):
            return tuple(items)


def parse_token_list(value: str, name: str) -> list[str]:
    """Parse a comma-separated list of one or more tokens, as written."""
    return list(_parse_list(value, name, _parse_token))


def parse_connection(value: str, name: str = "Connection") -> list[str]:
    """Parse a ``Connection`` header: a list of options such as ``Upgrade``.

    Options are returned as written; compare them without regard to case.
    """
    return parse_token_list(value, name)


def _parse_protocol(value: str, pos: int, name: str) -> tuple[str, int]:
    protocol, pos = _parse_token(value, pos, name)
    if pos < len(value) and value[pos] == "/":
        version, pos = _parse_token(value, pos + 1, name)
        protocol = f"{protocol}/{version}"
    return protocol, pos


def parse_upgrade(value: str, name: str = "Upgrade") -> list[str]:
    """Parse an ``Upgrade`` header: a list of protocols, each ``name`` or ``name/version``.

    Protocols are returned as written; compare them without regard to case.
    """
    return list(_parse_list(value, name, _parse_protocol))


def parse_subprotocols(value: str, name: str = "Sec-WebSocket-Protocol") -> list[str]:
    """Parse a ``Sec-WebSocket-Protocol`` header: a list of subprotocol tokens."""
    return parse_token_list(value, name)


def build_subprotocols(subprotocols: Sequence[str]) -> str:
    """Build a ``Sec-WebSocket-Protocol`` value; each subprotocol must be a token."""
    if not subprotocols:
        raise ValueError("no subprotocols")
    for subprotocol in subprotocols:
        _check_token(subprotocol, "subprotocol")
    return ", ".join(subprotocols)


def _parse_quoted_string(value: str, pos: int, name: str) -> tuple[str, int]:
    """Read the quoted-string at ``value[pos]``, a double quote, and return it unescaped."""
    pieces: list[str] = []
    pos += 1
    while True:
        match = _QDTEXT_RE.match(value, pos)
        assert match is not None  # It matches the empty string at worst.
        pieces.append(match.group())
        pos = match.end()
        if pos == len(value):
            raise InvalidHeaderFormat(name, "unterminated quoted string", value, pos)
        char = value[pos]
        if char == '"':
            return "".join(pieces), pos + 1
        if char != "\\":
            raise InvalidHeaderFormat(name, "invalid character in quoted string", value, pos)
        if _QUOTED_PAIR_RE.match(value, pos + 1) is None:
            raise InvalidHeaderFormat(name, "invalid escape in quoted string", value, pos + 1)
        pieces.append(value[pos + 1])
        pos += 2


def _parse_parameter(value: str, pos: int, name: str) -> tuple[ExtensionParameter, int]:
    param, pos = _parse_token(value, pos, name)
    after_name = pos
    pos = _skip_ows(value, pos)
    if pos == len(value) or value[pos] != "=":
        return (param, None), after_name
    pos = _skip_ows(value, pos + 1)
    if pos < len(value) and value[pos] == '"':
        start = pos
        param_value, pos = _parse_quoted_string(value, pos, name)
        # RFC 6455 section 9.1: a quoted value, unescaped, must be a token.
        if _TOKEN_RE.fullmatch(param_value) is None:
            raise InvalidHeaderFormat(name, "quoted value is not a token", value, start)
    else:
        param_value, pos = _parse_token(value, pos, name)
    return (param, param_value), pos


def _parse_extension(
    value: str, pos: int, name: str
) -> tuple[tuple[str, tuple[ExtensionParameter, ...]], int]:
    extension, pos = _parse_token(value, pos, name)
    params: list[ExtensionParameter] = []
    while True:
        after = pos
        pos = _skip_ows(value, pos)
        if pos == len(value) or value[pos] != ";":
            return (extension, tuple(params)), after
        param, pos = _parse_parameter(value, _skip_ows(value, pos + 1), name)
        params.append(param)


def parse_extensions(value: str, name: str = "Sec-WebSocket-Extensions") -> list[ExtensionHeader]:
    """Parse a ``Sec-WebSocket-Extensions`` header (RFC 6455 section 9.1).

    Return each extension with its parameters, in order, such as
    ``[("permessage-deflate", [("client_max_window_bits", None)])]``. A
    parameter value given as a quoted string is returned unescaped; it must
    still be a token. Parameter names may repeat: negotiation judges that.
    """
    return [
        (extension, list(params))
        for extension, params in _parse_list(value, name, _parse_extension)
    ]


def build_extensions(extensions: Sequence[tuple[str, Sequence[ExtensionParameter]]]) -> str:
    """Build a ``Sec-WebSocket-Extensions`` value.

    Names and values must be tokens; values are never quoted, since a token
    needs no quotes.
    """
    if not extensions:
        raise ValueError("no extensions")
    parts: list[str] = []
    for extension, params in extensions:
        _check_token(extension, "extension name")
        items = [extension]
        for param, param_value in params:
            _check_token(param, "extension parameter name")
            if param_value is None:
                items.append(param)
            else:
                _check_token(param_value, "extension parameter value")
                items.append(f"{param}={param_value}")
        parts.append("; ".join(items))
    return ", ".join(parts)


def build_authorization_basic(username: str, password: str) -> str:
    """Build an ``Authorization`` value for HTTP Basic authentication (RFC 7617).

    Credentials are encoded in UTF-8. A colon in ``username`` is refused, as
    it would move the boundary between username and password.
    """
    if ":" in username:
        raise ValueError("username must not contain a colon")
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {credentials}"


def parse_authorization_basic(value: str, name: str = "Authorization") -> tuple[str, str]:
    """Parse an ``Authorization`` value for HTTP Basic authentication.

    Return the username and password. Raise
    :class:`~tether.exceptions.InvalidHeaderFormat` when the value cannot be
    read and :class:`~tether.exceptions.InvalidHeaderValue` when it can but
    is not usable Basic credentials: another scheme, bad base64, invalid
    UTF-8 or no colon.
    """
    # Errors show a placeholder rather than the value, which holds a password.
    shown = "[credentials hidden]"
    match = _TOKEN_RE.match(value)
    if match is None:
        raise InvalidHeaderFormat(name, "expected scheme", shown, 0)
    scheme, pos = match.group(), match.end()
    if scheme.lower() != "basic":
        raise InvalidHeaderValue(name, f"unsupported scheme: {scheme}")
    if pos == len(value) or value[pos] != " ":
        raise InvalidHeaderFormat(name, "expected space after scheme", shown, pos)
    while pos < len(value) and value[pos] == " ":
        pos += 1
    match = _TOKEN68_RE.match(value, pos)
    if match is None:
        raise InvalidHeaderFormat(name, "expected credentials", shown, pos)
    end = _skip_ows(value, match.end())
    if end != len(value):
        raise InvalidHeaderFormat(name, "unexpected data after credentials", shown, end)
    try:
        decoded = base64.b64decode(match.group(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidHeaderValue(name, "credentials aren't base64-encoded UTF-8") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise InvalidHeaderValue(name, "credentials have no colon")
    return username, password


def _check_token(value: str, what: str) -> None:
    if not isinstance(value, str) or _TOKEN_RE.fullmatch(value) is None:
        raise ValueError(f"invalid {what}: {value!r}")
