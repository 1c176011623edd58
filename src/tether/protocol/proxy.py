"""Proxies for the client, without I/O: their URIs and HTTP ``CONNECT``.

:func:`parse_proxy` checks a proxy URI (``http://``, ``https://``,
``socks5h://``, ``socks5://``, ``socks4a://``, ``socks4://``).
:class:`ProxyConnect` is the exchange that opens a tunnel through an HTTP
proxy (RFC 9110 section 9.3.6): send :meth:`ProxyConnect.data_to_send`, feed
what the proxy answers to :meth:`ProxyConnect.receive_data` until it returns
``True``; from then on the connection is a tunnel to the WebSocket server.
Both client APIs drive it over their own sockets.
"""

from __future__ import annotations

import functools
import urllib.parse
from dataclasses import dataclass

from tether.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
)
from tether.protocol.handshake import USER_AGENT
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.headers import Headers
from tether.protocol.http11 import Limits, Response, ResponseParser
from tether.protocol.uri import WebSocketURI

__all__ = ["PROXY_SCHEMES", "Proxy", "ProxyConnect", "parse_proxy"]

PROXY_SCHEMES = ("socks5h", "socks5", "socks4a", "socks4", "https", "http")
"""The proxy URI schemes a client can use."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """The parts of a proxy URI.

    ``host`` is in lower case (IDNA for a non-ASCII name) and ``port`` is
    always set: 80 for ``http`` and the SOCKS schemes, 443 for ``https``,
    when the URI has none. ``username`` and ``password`` are
    percent-decoded; both are ``None`` or both are set.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def user_info(self) -> tuple[str, str] | None:
        """The username and password, or ``None`` when the URI has none."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password


# A client connects through the same proxy again and again: each URI is
# parsed once. The result is immutable; errors are raised every time.
@functools.lru_cache(maxsize=64)
def parse_proxy(proxy: str) -> Proxy:
    """Parse and check a proxy URI such as ``http://user:pass@proxy.example:3128``.

    Raise :class:`~tether.exceptions.InvalidProxy` for an unsupported
    scheme, a missing host, an invalid port, a path, query or fragment, a
    username without a password, whitespace or control characters.
    """
    if not proxy.isprintable() or " " in proxy:
        raise InvalidProxy(proxy, "whitespace or control characters aren't allowed")
    try:
        parts = urllib.parse.urlsplit(proxy)
        port = parts.port
    except ValueError as exc:
        raise InvalidProxy(proxy, str(exc)) from None
    if parts.scheme not in PROXY_SCHEMES:
        raise InvalidProxy(proxy, f"scheme {parts.scheme} isn't supported")
    host = parts.hostname
    if not host:
        raise InvalidProxy(proxy, "hostname isn't provided")
    if parts.path not in ("", "/"):
        raise InvalidProxy(proxy, "path is meaningless")
    if parts.query or "?" in proxy:
        raise InvalidProxy(proxy, "query is meaningless")
    if parts.fragment or "#" in proxy:
        raise InvalidProxy(proxy, "fragment is meaningless")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidProxy(proxy, "invalid internationalized host name") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    username = parts.username
    password = parts.password
    if username is not None:
        if password is None:
            raise InvalidProxy(proxy, "username provided without password")
        try:
            username = urllib.parse.unquote(username, errors="strict")
            password = urllib.parse.unquote(password, errors="strict")
        except UnicodeDecodeError:
            raise InvalidProxy(proxy, "user info isn't percent-encoded UTF-8") from None
    return Proxy(parts.scheme, host, port, username, password)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProxyConnect:
    """Open a tunnel to a WebSocket server through an HTTP proxy with ``CONNECT``.

    The request is ``CONNECT host:port HTTP/1.1`` with ``Host``, an optional
    ``User-Agent`` and, when the proxy URI has credentials,
    ``Proxy-Authorization: Basic``. The answer is read by
    :class:`~tether.protocol.http11.ResponseParser` in its proxy mode
    (``HTTP/1.0`` accepted, no body) within ``limits``.

    :meth:`receive_data` returns ``True`` once the proxy accepted (a 2xx) and
    raises :class:`~tether.exceptions.InvalidProxyStatus` when it refused,
    :class:`~tether.exceptions.InvalidProxyMessage` when its answer is
    malformed, too large, or followed by bytes (nothing may come from the
    server before the client speaks). :meth:`receive_eof` raises
    :class:`~tether.exceptions.InvalidProxyMessage` when the proxy closed
    before answering.
    """

    def __init__(
        self,
        proxy: Proxy,
        uri: WebSocketURI,
        *,
        user_agent_header: str | None = USER_AGENT,
        limits: Limits | None = None,
    ) -> None:
        self.proxy = proxy
        self.uri = uri
        headers = Headers([("Host", uri.host_header)])
        if user_agent_header is not None:
            headers["User-Agent"] = user_agent_header
        if proxy.user_info is not None:
            headers["Proxy-Authorization"] = build_authorization_basic(*proxy.user_info)
        target = _authority(uri.host, uri.port)
        self.request = f"CONNECT {target} HTTP/1.1\r\n".encode("ascii") + headers.serialize()
        """The bytes of the ``CONNECT`` request."""
        self.response: Response | None = None
        """The proxy's answer once complete."""
        self._parser = ResponseParser(limits, proxy=True)

    def data_to_send(self) -> bytes:
        """Return the request to write to the proxy."""
        return self.request

    def receive_data(self, data: bytes | bytearray | memoryview) -> bool:
        """Take bytes from the proxy; return ``True`` once the tunnel is open."""
        if self.response is not None:
            raise InvalidState("the proxy already answered")
        try:
            response = self._parser.receive_data(data)
        except InvalidHandshake as exc:
            raise InvalidProxyMessage("did not receive a valid HTTP response from proxy") from exc
        if response is None:
            return False
        self.response = response
        if not 200 <= response.status_code < 300:
            raise InvalidProxyStatus(response)
        if self._parser.leftover:
            raise InvalidProxyMessage("the proxy sent data after its response")
        return True

    def receive_eof(self) -> None:
        """Note that the proxy closed the connection before its answer was complete."""
        if self.response is not None:
            raise InvalidState("the proxy already answered")
        try:
            self._parser.receive_eof()
        except InvalidHandshake as exc:
            raise InvalidProxyMessage("did not receive a valid HTTP response from proxy") from exc
        # The parser completes a head at the end of the stream only if it
        # already had it, and receive_data returned then.
        raise InvalidProxyMessage("did not receive a valid HTTP response from proxy")
