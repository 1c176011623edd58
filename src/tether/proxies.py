"""The client's address behind a reverse proxy: :class:`TrustedProxies`.

Behind nginx or a load balancer, the peer of every connection is the proxy.
The proxy tells who its client is in a header, ``X-Forwarded-For`` or
``X-Real-IP``, or with the PROXY protocol, in front of the HTTP request.
Anyone can send those headers: they are believed only from the proxies the
server lists (``trusted_proxies`` of :func:`~tether.asyncio.server.serve`).

``X-Forwarded-For`` lists the addresses a request came through, each proxy
appending the one it saw. It is read from the right: the peer, then each
address in turn, while it is that of a trusted proxy. The first address that
is not is the client's; anything to its left came from the client and is
ignored. Without ``X-Forwarded-For``, ``X-Real-IP`` gives the client's
address. The port is unknown then, and given as 0.

The PROXY protocol (versions 1 and 2, as HAProxy defines them) gives the
client's address and port, and :func:`parse_proxy_header` reads it. This
module does no I/O: the servers use it.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from typing import Any

from tether.log import LoggerLike
from tether.protocol.headers import Headers
from tether.protocol.server import ServerProtocol

__all__ = [
    "PROXY_V2_SIGNATURE",
    "ProxyHeaderReader",
    "TrustedProxies",
    "parse_proxy_header",
    "read_proxy_header",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
"""The twelve bytes that open a PROXY protocol version 2 header."""

_V1_MAX = 107  # RFC-style bound of HAProxy's specification, CRLF included.


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        # [2001:db8::1]:443, as some proxies write IPv6 with a port.
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The proxies whose word on the client's address is believed.

    ``proxies`` are IP addresses or networks in CIDR notation, such as
    ``"127.0.0.1"``, ``"10.0.0.0/8"`` or ``"::1"``; ``"*"`` trusts every
    peer (only when nothing but the proxy can reach the server), and
    ``"unix"`` trusts peers on a Unix socket. Raise :class:`ValueError` for
    anything else.
    """

    def __init__(self, proxies: Iterable[str]) -> None:
        self.networks: list[Network] = []
        self.everyone = False
        self.unix = False
        for proxy in proxies:
            if proxy == "*":
                self.everyone = True
            elif proxy == "unix":
                self.unix = True
            else:
                try:
                    network = ipaddress.ip_network(proxy.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"not an IP address or network: {proxy!r}") from None
                self.networks.append(network)

    def trusts(self, peer: Any) -> bool:
        """Whether ``peer``, an address as the socket module gives it or a string, is trusted."""
        if self.everyone:
            return True
        if isinstance(peer, tuple) and peer:
            peer = peer[0]
        if not isinstance(peer, str) or not peer:
            # A Unix socket's peer is an empty string or nothing.
            return self.unix
        address = _address(peer)
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: Any, headers: Headers) -> tuple[str, int] | None:
        """The client's address the headers give, if ``peer`` is trusted; else ``None``."""
        if not self.trusts(peer):
            return None
        forwarded = [
            entry.strip()
            for value in headers.get_all("X-Forwarded-For")
            for entry in value.split(",")
            if entry.strip()
        ]
        if forwarded:
            for entry in reversed(forwarded):
                address = _address(entry)
                if address is None:
                    # Garbage in the chain: nothing left of it can be believed.
                    return None
                if not self.trusts(str(address)):
                    return str(address), 0
            # Every hop is a trusted proxy: the first one is the client.
            first = _address(forwarded[0])
            return None if first is None else (str(first), 0)
        real = headers.get("X-Real-IP")
        if real is not None:
            address = _address(real)
            if address is not None:
                return str(address), 0
        return None


def read_proxy_header(
    data: bytes | bytearray, peer: Any, proxies: TrustedProxies | None
) -> tuple[int, tuple[str, int] | None] | None:
    """Read the PROXY protocol header that ``peer`` sent at the start of ``data``.

    What every server does with it: the check that ``peer`` is one of the
    trusted ``proxies``, then :func:`parse_proxy_header`. Return ``None``
    if more bytes are needed, else the header's length and the client's
    address. Raise :class:`ValueError`, saying why, to refuse the
    connection: a peer that is not trusted, from its first byte on (the
    server keeps nothing it sends, where a version 2 header may announce
    64 KiB), or an invalid header.
    """
    if data and (proxies is None or not proxies.trusts(peer)):
        raise ValueError(f"{peer} is not a trusted proxy: no PROXY protocol header from it")
    return parse_proxy_header(data)


class ProxyHeaderReader:
    """Feeds a server's opening handshake to its engine, the PROXY protocol header first.

    For the servers that read the socket themselves (threading and trio):
    the header, read with :func:`read_proxy_header`, may come in pieces, and
    the HTTP request may begin in the read that ends it.
    """

    __slots__ = ("_buffer", "_logger", "_peer", "_proxies", "client")

    def __init__(self, peer: Any, proxies: TrustedProxies | None, logger: LoggerLike) -> None:
        self._buffer: bytearray | None = bytearray()
        self._peer = peer
        self._proxies = proxies
        self._logger = logger
        self.client: tuple[str, int] | None = None
        """The client's address that the header gave, once read (``None`` if it gave none)."""

    def feed(self, protocol: ServerProtocol, data: bytes | bytearray | memoryview) -> bool:
        """Give ``protocol`` what follows the header in ``data`` (empty: the end of the stream).

        Return ``False`` to refuse the connection (logged at INFO): an
        invalid header, one from a peer that is not trusted, or the end of
        the stream before the header's.
        """
        buffer = self._buffer
        if buffer is not None:
            if not data:
                return False
            buffer += data
            try:
                parsed = read_proxy_header(buffer, self._peer, self._proxies)
            except ValueError as exc:
                self._logger.info("refused: %s", exc)
                return False
            if parsed is None:
                return True  # More of the header to read.
            length, self.client = parsed
            self._buffer = None
            data = bytes(buffer[length:])
            if not data:
                return True
        if data:
            protocol.receive_data(data)
        else:
            protocol.receive_eof()
        return True


def parse_proxy_header(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    """Read a PROXY protocol header at the start of ``data``.

    Return ``None`` if more bytes are needed, else the header's length and
    the client's address, ``None`` for a header that gives none (``LOCAL``,
    ``UNKNOWN``, or a family other than TCP over IPv4 or IPv6). Raise
    :class:`ValueError` if ``data`` does not start with a valid header.
    """
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data)
    if not data:
        return None
    raise ValueError("no PROXY protocol header")


def _parse_v1(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    if not b"PROXY "[: len(data)] == bytes(data[:6]):
        raise ValueError("no PROXY protocol header")
    end = data.find(b"\r\n")
    if end == -1:
        if len(data) >= _V1_MAX:
            raise ValueError("PROXY protocol header too long")
        return None
    if end + 2 > _V1_MAX:
        raise ValueError("PROXY protocol header too long")
    fields = bytes(data[:end]).decode("ascii", "replace").split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return end + 2, None
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ValueError("invalid PROXY protocol header")
    source, port = fields[2], fields[4]
    try:
        address = ipaddress.ip_address(source)
        number = int(port)
    except ValueError:
        raise ValueError("invalid PROXY protocol header") from None
    if address.version != (4 if fields[1] == "TCP4" else 6) or not 0 <= number <= 65535:
        raise ValueError("invalid PROXY protocol header")
    return end + 2, (str(address), number)


def _parse_v2(data: bytes | bytearray) -> tuple[int, tuple[str, int] | None] | None:
    signature = PROXY_V2_SIGNATURE
    if bytes(data[: len(signature)]) != signature[: len(data)]:
        raise ValueError("no PROXY protocol header")
    if len(data) < 16:
        return None
    version_command, family, length = struct.unpack_from("!BBH", data, 12)
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise ValueError("invalid PROXY protocol header")
    total = 16 + length
    if len(data) < total:
        return None
    if version_command & 0x0F == 0:
        return total, None  # LOCAL: the proxy's own connection, such as a health check.
    if family == 0x11 and length >= 12:  # TCP over IPv4
        source = ipaddress.IPv4Address(bytes(data[16:20]))
        (port,) = struct.unpack_from("!H", data, 24)
        return total, (str(source), port)
    if family == 0x21 and length >= 36:  # TCP over IPv6
        source6 = ipaddress.IPv6Address(bytes(data[16:32]))
        (port,) = struct.unpack_from("!H", data, 48)
        return total, (str(source6), port)
    return total, None
