"""What a client connects to, read from ``connect``'s URI and options; shared by the async APIs."""

from __future__ import annotations

import ssl as ssl_module
import urllib.parse
from typing import Any

from tether.exceptions import InvalidURI
from tether.protocol.headers import HeadersLike
from tether.protocol.uri import WebSocketURI, parse_uri

__all__ = [
    "check_client_target",
    "check_ssl",
    "parse_target",
    "parse_unix_uri",
    "pick_headers",
    "unix_uri",
]

_UNIX_SCHEMES = {"ws+unix": False, "wss+unix": True}


def parse_unix_uri(uri: str) -> tuple[WebSocketURI, str | None]:
    """Split a ``ws+unix://`` or ``wss+unix://`` URI into the WebSocket URI and the socket path.

    The authority is the path of the socket, percent-encoded, and what follows
    it is the request target: ``ws+unix://%2Frun%2Fapp.sock/chat?room=1``
    connects to the socket ``/run/app.sock`` and asks for ``/chat?room=1``.
    The ``Host`` header is ``localhost``. An empty authority
    (``ws+unix:///chat``) leaves the socket path to ``connect``'s ``path``
    option, and gives ``None`` here. Raise :class:`~tether.exceptions.InvalidURI`
    for another scheme, whitespace or control characters, and a socket path
    that does not decode to printable UTF-8.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in _UNIX_SCHEMES:
        raise InvalidURI(uri, "scheme isn't ws+unix or wss+unix")
    secure = _UNIX_SCHEMES[scheme.lower()]
    if not uri.isprintable() or " " in uri:
        raise InvalidURI(uri, "whitespace or control characters aren't allowed")
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            end = min(end, index)
    authority, target = rest[:end], rest[end:]
    try:
        socket_path = urllib.parse.unquote(authority, errors="strict") if authority else None
    except UnicodeDecodeError:
        raise InvalidURI(uri, "the socket path isn't percent-encoded UTF-8") from None
    if socket_path is not None and not socket_path.isprintable():
        raise InvalidURI(uri, "control characters aren't allowed in the socket path")
    try:
        # The target gets every check and normalization of a ws:// URI's target.
        parsed = parse_uri(f"{'wss' if secure else 'ws'}://localhost{target}")
    except InvalidURI as exc:
        raise InvalidURI(uri, exc.msg) from None
    return parsed, socket_path


def parse_target(uri: str, unix: bool, path: str | None) -> tuple[WebSocketURI, bool, str | None]:
    """Find what to connect to: the URI's parts, whether over a Unix socket, and its path.

    ``unix`` and ``path`` are the options of ``connect``; a ``ws+unix://``
    URI sets them from its authority.
    """
    scheme = uri.partition("://")[0].lower()
    if scheme not in _UNIX_SCHEMES:
        return parse_uri(uri), unix, path
    parsed, socket_path = parse_unix_uri(uri)
    if socket_path is not None and path is not None:
        raise ValueError("give the socket path in the URI or as path=, not both")
    if socket_path is None:
        if path is None:
            raise InvalidURI(uri, "no socket path: put it in the authority or give path=")
        socket_path = path
    return parsed, True, socket_path


def check_ssl(uri: WebSocketURI, ssl: ssl_module.SSLContext | bool | None) -> None:
    """Refuse an ``ssl`` option that contradicts the URI's scheme, with :class:`ValueError`."""
    if uri.secure:
        if ssl is False:
            raise ValueError("a wss:// URI needs TLS: ssl=False isn't allowed")
    elif ssl is not None and ssl is not False:
        raise ValueError("ssl is only for wss:// URIs")


def check_client_target(
    uri: str,
    unix: bool,
    path: str | None,
    ssl: ssl_module.SSLContext | bool | None,
    auth: tuple[str, str] | None,
) -> tuple[WebSocketURI, bool, str | None]:
    """Read and check the target of an async ``connect``: :func:`parse_target`, then its options.

    Raise :class:`ValueError` for an ``ssl`` that contradicts the URI's scheme
    (:func:`check_ssl`) and for credentials given both in the URI and as ``auth``.
    """
    ws_uri, unix, path = parse_target(uri, unix, path)
    check_ssl(ws_uri, ssl)
    if auth is not None and ws_uri.user_info is not None:
        raise ValueError("give credentials in the URI or as auth=, not both")
    return ws_uri, unix, path


def pick_headers(
    additional_headers: HeadersLike | None, extra_headers: HeadersLike | None
) -> HeadersLike | None:
    """Return the headers of ``additional_headers`` or its older name ``extra_headers``.

    Raise :class:`TypeError` when both are given.
    """
    if additional_headers is not None and extra_headers is not None:
        raise TypeError("give additional_headers or extra_headers, not both")
    return additional_headers if extra_headers is None else extra_headers


def unix_uri(uri: str | None, options: dict[str, Any]) -> str:
    """Return the URI of an async ``unix_connect``: ``uri``, or ``ws://localhost/``.

    The default is ``wss://localhost/`` when ``options`` hold an ``ssl`` other
    than ``None`` or ``False``.
    """
    if uri is not None:
        return uri
    return "ws://localhost/" if options.get("ssl") in (None, False) else "wss://localhost/"
