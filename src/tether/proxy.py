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

import importlib
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


def get_proxy(uri: WebSocketURI) -> str | None:
    """Return the URI of the system's proxy for ``uri``, or ``None`` to connect directly.

    ``no_proxy`` (a list of host names, domain suffixes or ``*``) bypasses
    the proxy. For ``wss://`` the proxies of the ``wss``, ``socks`` and
    ``https`` schemes are looked up in this order (websockets' order);
    ``ws://`` also falls back to the ``http`` one. Then, unlike websockets,
    ``all_proxy`` (as curl reads it) applies to both. A ``socks`` proxy
    given as ``http://host:port`` (as some systems store it) is read as
    ``socks5h://host:port``.
    """
    if urllib.request.proxy_bypass(f"{uri.host}:{uri.port}"):
        return None
    proxies = urllib.request.getproxies()
    for scheme in _PREFERENCES[uri.secure]:
        proxy = proxies.get(scheme)
        if proxy is not None:
            if scheme == "socks" and proxy.startswith("http://"):
                proxy = "socks5h://" + proxy.removeprefix("http://")
            return proxy
    return None


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


def socks_proxy(proxy: Proxy, api: Literal["asyncio", "sync"]) -> Any:
    """Build python-socks's proxy object for ``proxy`` in the asyncio or the threading API.

    Its ``connect(host, port, timeout=..., local_addr=...)`` returns a
    socket connected through the proxy to the server (awaited in asyncio).
    Raise :class:`ImportError` naming ``tether[socks]`` without python-socks.
    """
    base = _import_socks("python_socks")
    module = _import_socks(
        "python_socks.async_.asyncio" if api == "asyncio" else "python_socks.sync"
    )
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
