"""Pieces of the opening handshake (RFC 6455 section 4) shared by both roles."""

from __future__ import annotations

import binascii
import http
import os
import sys
import time

from tether.exceptions import InvalidHeader, InvalidHeaderValue, InvalidUpgrade
from tether.protocol.header_values import parse_connection, parse_upgrade
from tether.protocol.headers import Headers
from tether.protocol.http11 import Response
from tether.version import __version__

# CPython's own SHA-1 rather than OpenSSL's through hashlib: for a key's 60
# bytes it runs fewer instructions (4,500 against 6,100), and it allocates
# Python objects only. OpenSSL's contexts come from malloc, and each thread
# keeps the chunks it freed for itself: a threading server's handler thread
# would hold 384 bytes of them for the life of its connection.
try:
    from _sha1 import sha1  # type: ignore[import-not-found]  # (no stub: CPython-only)
except ImportError:  # pragma: no cover - a CPython built without its own hashes
    from hashlib import sha1

__all__ = [
    "USER_AGENT",
    "accept_key",
    "check_key",
    "check_upgrade",
    "date_field",
    "error_response",
    "generate_key",
    "http_date",
    "single_value",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

USER_AGENT = f"Python/{sys.version_info.major}.{sys.version_info.minor} tether/{__version__}"
"""The default ``User-Agent`` and ``Server`` header value."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float | None = None) -> str:
    """Format a ``Date`` header value (RFC 9110 section 5.6.7), in English whatever the locale.

    Without ``timestamp``, the current time: formatted once per second, since
    a busy server answers many handshakes in the same second.
    """
    if timestamp is not None:
        return _format_date(timestamp)
    return date_field()[1]


def date_field() -> tuple[str, str]:
    """The ``Date`` header field of a response sent now, as a (name, value) pair.

    The same pair for every response of the same second: thousands of open
    connections keep their handshake response, and need not each keep a
    copy of it.
    """
    now = int(time.time())
    second, field = _last_date[0]
    if second != now:
        field = ("Date", _format_date(now))
        _last_date[0] = (now, field)
    return field


def _format_date(timestamp: float) -> str:
    t = time.gmtime(timestamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


# The second last formatted and its Date field, in a list to update it in place.
_last_date = [(-1, ("Date", ""))]


def generate_key() -> str:
    """Return a fresh ``Sec-WebSocket-Key``: 16 random bytes in base64."""
    return binascii.b2a_base64(os.urandom(16), newline=False).decode()


def accept_key(key: str) -> str:
    """Compute ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 section 4.2.2)."""
    digest = sha1((key + GUID).encode()).digest()
    # binascii directly: base64.b64encode is a Python function around it.
    return binascii.b2a_base64(digest, newline=False).decode()


def single_value(values: list[str], name: str) -> str:
    """Return the one value in ``values`` of header ``name``; :class:`InvalidHeader` if not one."""
    if len(values) == 1:
        return values[0]
    raise InvalidHeader(name, "multiple values" if values else None)


def check_key(key: str) -> None:
    """Check that a ``Sec-WebSocket-Key`` is 16 bytes in base64 (RFC 6455 section 4.1)."""
    # binascii's strict mode accepts what base64.b64decode(validate=True)
    # does for a key (alphabet characters, padding at the end only), in one
    # call rather than through a Python wrapper and a regular expression.
    try:
        raw = binascii.a2b_base64(key.encode(), strict_mode=True)
    except binascii.Error:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key) from None
    if len(raw) != 16:
        raise InvalidHeaderValue("Sec-WebSocket-Key", key)


def check_upgrade(connection_values: list[str], upgrade_values: list[str]) -> None:
    """Check ``Connection: Upgrade`` and ``Upgrade: websocket``, as both roles must.

    The arguments are every value of each header, as :meth:`Headers.get_all` gives them.
    """
    if (
        len(connection_values) == 1
        and connection_values[0] in _PLAIN_CONNECTION
        and len(upgrade_values) == 1
        and upgrade_values[0] in _PLAIN_UPGRADE
    ):
        # What clients send, spelt as they do: valid as it stands, no parsing needed.
        return
    connection = [token for value in connection_values for token in parse_connection(value)]
    # An absent header reads "missing ... header" rather than "empty ... header".
    if not any(token.lower() == "upgrade" for token in connection):
        raise InvalidUpgrade("Connection", ", ".join(connection) or None)
    upgrade = [token for value in upgrade_values for token in parse_upgrade(value)]
    # RFC 6455 asks for exactly the websocket protocol; a list that only
    # contains it somewhere would be an upgrade to something else as well.
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise InvalidUpgrade("Upgrade", ", ".join(upgrade) or None)


# Whole header values that pass check_upgrade as they are.
_PLAIN_CONNECTION = frozenset({"Upgrade", "upgrade", "keep-alive, Upgrade", "Keep-Alive, Upgrade"})
_PLAIN_UPGRADE = frozenset({"websocket", "WebSocket"})


def error_response(
    status: int, text: str, *, headers: Headers | None = None, server: str | None = None
) -> Response:
    """Build an HTTP error response whose plain-text body is ``text``, as given."""
    body = text.encode()
    response_headers = Headers()
    response_headers["Date"] = http_date()
    if server is not None:
        response_headers["Server"] = server
    response_headers["Connection"] = "close"
    response_headers["Content-Type"] = "text/plain; charset=utf-8"
    response_headers["Content-Length"] = str(len(body))
    if headers is not None:
        response_headers.update(headers)
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:  # An unregistered status, such as 499, has no standard phrase.
        reason = ""
    return Response(status, reason, response_headers, body)
