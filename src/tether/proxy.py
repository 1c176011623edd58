"""Which proxy a client goes through, and SOCKS: shared by the asyncio and threading clients.

websockets has the same module, ``websockets.proxy``: :func:`get_proxy`,
:func:`~tether.protocol.proxy.parse_proxy` and
:class:`~tether.protocol.proxy.Proxy` are importable from here as from there.

:func:`get_proxy` reads the system's configuration (the ``https_proxy``,
``http_proxy``, ``all_proxy`` and ``no_proxy`` environment variables, upper
or lower case, through :mod:`urllib.request`) as websockets does.
:func:`resolve_proxy` applies a client's ``proxy`` option. SOCKS proxies go
through the optional ``python-socks`` package (``pip install
'tether[socks]'``): :func:`socks_proxy` builds its proxy object for either
API, and raises a clear :class:`ImportError` when it is missing. The HTTP
``CONNECT`` exchange itself is :class:`tether.protocol.proxy.ProxyConnect`.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import urllib.request
from typing import Any, Literal

from tether.exceptions import ProxyError
from tether.protocol.proxy import Proxy, parse_proxy
from tether.protocol.uri import WebSocketURI

__all__ = [
    "Proxy",
    "ProxyOption",
    "get_proxy",
    "parse_proxy",
    "resolve_proxy",
    "socks_error",
    "socks_proxy",
]

ProxyOption = str | Literal[True] | None
"""A client's ``proxy`` option: ``True`` for the system's proxy, ``None`` for none, or a URI."""

# RFC 6455 section 4.1 prefers a SOCKS proxy, then the HTTPS one; a proxy
# given for ws or wss comes first, all_proxy (which websockets ignores) last.
_PREFERENCES = {
    True: ("wss", "socks", "https", "all"),
    False: ("ws", "socks", "https", "http", "all"),
}


# The environment variables that can name a proxy for a WebSocket URI (what
# urllib reads for the schemes above; no_proxy alone names none).
# The environment variables that can name a proxy for a WebSocket URI (what
# urllib reads for the schemes above), then those that change its choice.
_VARIABLES = tuple(
    name
    for scheme in ("ws", "wss", "socks", "https", "http", "all")
    for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
)
_NAMING = len(_VARIABLES)
_VARIABLES += ("no_proxy", "NO_PROXY", "REQUEST_METHOD")
# Elsewhere, urllib also reads the system's settings (the registry, System
# Configuration) when the environment names no proxy.
_NO_SYSTEM_SETTINGS = sys.platform not in ("darwin", "win32")
_ENCODED = tuple(os.fsencode(name) for name in _VARIABLES)


def _environment() -> tuple[object, ...]:
    """The values of the variables urllib's choice depends on, ``None`` for unset ones.

    os.environ.get raises and catches a KeyError per missing name, some
    8,000 instructions each; on POSIX the mapping keeps the encoded
    environment in a dictionary, read here directly when it is there.
    """
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return tuple(map(data.get, _ENCODED))
    return tuple(map(os.environ.get, _VARIABLES))  # pragma: no cover - not CPython on POSIX


def get_proxy(uri: WebSocketURI) -> str | None:
    """Return the URI of the system's proxy for ``uri``, or ``None`` to connect directly.

    ``no_proxy`` (a list of host names, domain suffixes or ``*``) bypasses
    the proxy. For ``wss://`` the proxies of the ``wss``, ``socks`` and
    ``https`` schemes are looked up in this order (websockets' order);
    ``ws://`` also falls back to the ``http`` one. Then, unlike websockets,
    ``all_proxy`` (as curl reads it) applies to both. A ``socks`` proxy
    given as ``http://host:port`` (as some systems store it) is read as
    ``socks5h://host:port``.

    urllib scans the whole environment twice for this, about a million
    instructions: on Linux and the other systems whose only settings are
    the environment, the answer is kept for the same variables and server.
    """
    if not _NO_SYSTEM_SETTINGS:  # pragma: no cover - macOS and Windows
        return _system_proxy(uri.host, uri.port, uri.secure)
    environment = _environment()
    if not any(environment[:_NAMING]):
        # The common case: no proxy anywhere.
        return None
    return _cached_proxy(uri.host, uri.port, uri.secure, environment)


def _system_proxy(host: str, port: int, secure: bool) -> str | None:
    if urllib.request.proxy_bypass(f"{host}:{port}"):
        return None
    proxies = urllib.request.getproxies()
    for scheme in _PREFERENCES[secure]:
        proxy = proxies.get(scheme)
        if proxy is not None:
            if scheme == "socks" and proxy.startswith("http://"):
                proxy = "socks5h://" + proxy.removeprefix("http://")
            return proxy
    return None


@functools.lru_cache(maxsize=64)
def _cached_proxy(
    host: str, port: int, secure: bool, environment: tuple[object, ...]
) -> str | None:
    # environment is part of the key only: a change of a variable is a miss.
    return _system_proxy(host, port, secure)


def resolve_proxy(option: ProxyOption, uri: WebSocketURI) -> Proxy | None:
    """Apply a client's ``proxy`` option to ``uri``: the proxy to go through, or ``None``.

    Raise :class:`~tether.exceptions.InvalidProxy` for an unusable proxy URI
    (given, or from the environment) and :class:`TypeError` for an option
    that is neither ``True``, ``None`` nor a string.
    """
    if option is None:
        return None
    if option is True:
        found = get_proxy(uri)
        return None if found is None else parse_proxy(found)
    if not isinstance(option, str):
        raise TypeError(f"proxy must be True, None or a URI, not {option!r}")
    return parse_proxy(option)


# python-socks's names for each scheme, and whether the proxy resolves the
# server's name (the "h" of socks5h and the "a" of socks4a).
_SOCKS = {
    "socks5h": ("SOCKS5", True),
    "socks5": ("SOCKS5", False),
    "socks4a": ("SOCKS4", True),
    "socks4": ("SOCKS4", False),
}


def _import_socks(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            "connecting through a SOCKS proxy needs python-socks: pip install 'tether[socks]'"
        ) from exc


_SOCKS_MODULES = {
    "asyncio": "python_socks.async_.asyncio",
    "sync": "python_socks.sync",
    "trio": "python_socks.async_.trio",
}


def socks_proxy(proxy: Proxy, api: Literal["asyncio", "sync", "trio"]) -> Any:
    """Build python-socks's proxy object for ``proxy`` in the asyncio, threading or trio API.

    Its ``connect(host, port, timeout=..., local_addr=...)`` returns a
    socket connected through the proxy to the server (awaited in asyncio;
    a :mod:`trio.socket` socket, awaited, in trio).
    Raise :class:`ImportError` naming ``tether[socks]`` without python-socks.
    """
    base = _import_socks("python_socks")
    module = _import_socks(_SOCKS_MODULES[api])
    kind, remote_dns = _SOCKS[proxy.scheme]
    return module.Proxy(
        getattr(base.ProxyType, kind),
        proxy.host,
        proxy.port,
        proxy.username,
        proxy.password,
        remote_dns,
    )


def socks_error(exc: Exception) -> Exception:
    """Translate what python-socks raised into what a tether client raises.

    Network errors (:class:`OSError`, :class:`TimeoutError`) stay as they
    are, so that reconnecting retries them; a refusal or a garbled answer
    from the proxy becomes :class:`~tether.exceptions.ProxyError`.
    """
    if isinstance(exc, OSError | TimeoutError):
        return exc
    error = ProxyError(f"failed to connect to SOCKS proxy: {exc}")
    error.__cause__ = exc
    return error
