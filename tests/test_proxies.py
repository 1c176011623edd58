"""The client's address behind proxies: X-Forwarded-For, X-Real-IP, the PROXY protocol."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from tether.protocol.headers import Headers
from tether.proxies import PROXY_V2_SIGNATURE, TrustedProxies, parse_proxy_header

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1"])


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(list(pairs))


@pytest.mark.parametrize(
    ("peer", "pairs", "client"),
    [
        # The rightmost address that is not a trusted proxy is the client.
        (("127.0.0.1", 5), [("X-Forwarded-For", "203.0.113.7")], ("203.0.113.7", 0)),
        (
            ("127.0.0.1", 5),
            [("X-Forwarded-For", "198.51.100.1, 203.0.113.7, 10.1.2.3")],
            ("203.0.113.7", 0),
        ),
        # Several headers are one list.
        (
            ("127.0.0.1", 5),
            [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "10.0.0.2")],
            ("203.0.113.7", 0),
        ),
        # With ports, and IPv6 in brackets.
        (("::1", 5, 0, 0), [("X-Forwarded-For", "[2001:db8::1]:443")], ("2001:db8::1", 0)),
        (("127.0.0.1", 5), [("X-Forwarded-For", "192.0.2.1:80")], ("192.0.2.1", 0)),
        # Only trusted hops: the first is the client.
        (("127.0.0.1", 5), [("X-Forwarded-For", "10.0.0.9, 10.0.0.8")], ("10.0.0.9", 0)),
        # Garbage anywhere in the part read: nothing is believed.
        (("127.0.0.1", 5), [("X-Forwarded-For", "203.0.113.7, nonsense")], None),
        (("127.0.0.1", 5), [("X-Real-IP", "203.0.113.9")], ("203.0.113.9", 0)),
        (("127.0.0.1", 5), [("X-Real-IP", "not an address")], None),
        (("127.0.0.1", 5), [], None),
        # An IPv4-mapped IPv6 peer is its IPv4 address.
        (("::ffff:127.0.0.1", 5, 0, 0), [("X-Real-IP", "203.0.113.9")], ("203.0.113.9", 0)),
        # Headers from a peer that is not a trusted proxy are ignored.
        (("192.0.2.50", 5), [("X-Forwarded-For", "203.0.113.7")], None),
        (("192.0.2.50", 5), [("X-Real-IP", "203.0.113.7")], None),
    ],
)
def test_client_address(peer: object, pairs: list[tuple[str, str]], client: object) -> None:
    assert PROXIES.client(peer, headers(*pairs)) == client


def test_everyone_and_unix() -> None:
    assert TrustedProxies(["*"]).trusts(("192.0.2.1", 1))
    assert TrustedProxies(["unix"]).trusts("")
    assert not TrustedProxies(["127.0.0.1"]).trusts("")
    assert not PROXIES.trusts(None)


def test_bad_proxy() -> None:
    with pytest.raises(ValueError, match="not an IP address or network: 'localhost'"):
        TrustedProxies(["localhost"])


def v2(command: int, family: int, body: bytes) -> bytes:
    return PROXY_V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(body)) + body


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PROXY TCP4 198.51.100.1 10.0.0.1 5555 80\r\nGET", (42, ("198.51.100.1", 5555))),
        (b"PROXY TCP6 2001:db8::1 ::1 1 443\r\n", (34, ("2001:db8::1", 1))),
        (b"PROXY UNKNOWN\r\n", (15, None)),
        (b"PROXY TCP4 198.51", None),
        (b"PRO", None),
        (b"", None),
        (
            v2(1, 0x11, bytes([198, 51, 100, 1, 10, 0, 0, 1]) + struct.pack("!HH", 5555, 80)),
            (28, ("198.51.100.1", 5555)),
        ),
        (
            v2(
                1,
                0x21,
                ipaddress.IPv6Address("2001:db8::2").packed
                + bytes(16)
                + struct.pack("!HH", 7, 443),
            ),
            (52, ("2001:db8::2", 7)),
        ),
        (v2(0, 0x00, b""), (16, None)),  # LOCAL
        (v2(1, 0x31, bytes(216)), (232, None)),  # a Unix socket: no address
        (PROXY_V2_SIGNATURE[:5], None),
        (v2(1, 0x11, bytes(12))[:20], None),
    ],
)
def test_parse_proxy_header(data: bytes, expected: object) -> None:
    assert parse_proxy_header(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXZ",
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY TCP4 2001:db8::1 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
        b"PROXY TCP4 1.2.3.x 5.6.7.8 1 80\r\n",
        b"PROXY " + b"x" * 120,
        b"PROXY " + b"x" * 110 + b"\r\n",
        b"\r\n\r\nnope",
        PROXY_V2_SIGNATURE + b"\x31\x11\x00\x00",
        PROXY_V2_SIGNATURE + b"\x23\x11\x00\x00",
    ],
)
def test_invalid_proxy_header(data: bytes) -> None:
    with pytest.raises(ValueError, match="PROXY protocol header"):
        parse_proxy_header(data)
