"""WebSocket URIs (RFC 6455 section 3): ``ws://`` and ``wss://``.

:func:`parse_uri` checks a URI and splits it into what the client needs to
connect and to write its request. It is strict where :mod:`urllib.parse` is
lenient: whitespace and control characters are refused rather than dropped,
and a host must be a DNS name, an IPv4 address or a bracketed IPv6 address.
Non-ASCII host names are converted with IDNA and non-ASCII characters of the
path and query are percent-encoded as UTF-8, so that the results are ASCII.
"""

from __future__ import annotations

import functools
import ipaddress
import string
import urllib.parse
from dataclasses import dataclass

from tether.exceptions import InvalidURI
from tether.protocol.header_values import build_authorization_basic

__all__ = ["WebSocketURI", "parse_uri"]

_DEFAULT_PORTS = {False: 80, True: 443}
_HOST_CHARS = frozenset(string.ascii_lowercase + string.digits + "-._~")
# RFC 3986 pchar, less what quote() always keeps, plus "/" and "%" so that
# escapes already present stay as they are.
_PATH_SAFE = "!$&'()*+,;=:@/%"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class WebSocketURI:
    """The parts of a WebSocket URI.

    The fields are websockets': ``path`` is the path, percent-encoded
    (``/`` when the URI has none), ``query`` the query without its ``?``
    (empty when there is none), and :attr:`resource_name` both, as sent in
    the request line. ``username`` and ``password`` are percent-decoded;
    each is ``None`` when the URI has none.
    """

    secure: bool
    host: str
    port: int
    path: str = "/"
    query: str = ""
    username: str | None = None
    password: str | None = None

    @property
    def resource_name(self) -> str:
        """The request target: the path and query, such as ``/chat?room=1``."""
        return f"{self.path}?{self.query}" if self.query else self.path

    @property
    def host_header(self) -> str:
        """The value of the ``Host`` header: the host, then the port unless it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == _DEFAULT_PORTS[self.secure]:
            return host
        return f"{host}:{self.port}"

    @property
    def user_info(self) -> tuple[str, str] | None:
        """The username and password, or ``None`` without a username.

        A username given without a password comes with an empty password.
        """
        if self.username is None:
            return None
        return self.username, self.password or ""

    @property
    def authorization(self) -> str:
        """The ``Authorization`` value for Basic authentication with :attr:`user_info`.

        Raise :class:`ValueError` when the URI holds no user info.
        """
        user_info = self.user_info
        if user_info is None:
            raise ValueError("the URI has no user info")
        return build_authorization_basic(*user_info)


# A client connects again and again to the same few URIs: each is parsed once.
# The result is immutable; errors are raised every time, never remembered.
@functools.lru_cache(maxsize=128)
def parse_uri(uri: str) -> WebSocketURI:
    """Parse and check a ``ws://`` or ``wss://`` URI.

    Raise :class:`~tether.exceptions.InvalidURI` for any other scheme, a
    fragment, whitespace or control characters, a missing or invalid host,
    an invalid port (port 0 included) and a colon in the username.
    """
    if not uri.isprintable() or " " in uri:
        raise InvalidURI(uri, "whitespace or control characters aren't allowed")
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as exc:
        raise InvalidURI(uri, str(exc)) from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(uri, "scheme isn't ws or wss")
    secure = parts.scheme == "wss"
    # An empty fragment leaves no trace in parts, so look for "#" itself.
    if "#" in uri:
        raise InvalidURI(uri, "fragments aren't allowed in WebSocket URIs")
    user_info, at, host_port = parts.netloc.rpartition("@")
    host, port = _parse_host_port(uri, host_port, secure)
    username = password = None
    if at:
        username, colon, raw_password = user_info.partition(":")
        if "@" in raw_password or "@" in username:
            raise InvalidURI(uri, "unescaped @ in user info")
        username = urllib.parse.unquote(username)
        if ":" in username:
            raise InvalidURI(uri, "colon in username")
        password = urllib.parse.unquote(raw_password) if colon else None
    path = urllib.parse.quote(parts.path, safe=_PATH_SAFE) or "/"
    query = urllib.parse.quote(parts.query, safe=_QUERY_SAFE)
    return WebSocketURI(secure, host, port, path, query, username, password)


def _parse_host_port(uri: str, host_port: str, secure: bool) -> tuple[str, int]:
    if host_port.startswith("["):
        # urlsplit() has checked that brackets come in pairs.
        host, _, port_part = host_port[1:].partition("]")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidURI(uri, "invalid IPv6 address") from None
        host = host.lower()
        if port_part and not port_part.startswith(":"):
            raise InvalidURI(uri, "invalid data after IPv6 address")
        port_text = port_part[1:]
    else:
        host, _, port_text = host_port.partition(":")
        host = _check_host(uri, host)
    if not port_text:
        return host, _DEFAULT_PORTS[secure]
    # Checking the digits first keeps int() away from signs, underscores,
    # spaces and very long numbers, which it would accept or chew on.
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise InvalidURI(uri, "invalid port")
    port = int(port_text)
    if not 0 < port < 65536:
        raise InvalidURI(uri, "port out of range")
    return host, port


def _check_host(uri: str, host: str) -> str:
    if not host:
        raise InvalidURI(uri, "missing host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidURI(uri, "invalid internationalized host name") from None
    host = host.lower()
    # A final dot is allowed: it marks a fully qualified name.
    labels = host.removesuffix(".").split(".")
    if not _HOST_CHARS.issuperset(host) or not all(labels):
        raise InvalidURI(uri, "invalid host")
    return host
