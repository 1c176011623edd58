"""tether.protocol.proxy: proxy URIs and the HTTP CONNECT exchange, without I/O."""

from __future__ import annotations

import base64

import pytest

from tether.exceptions import (
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    SecurityError,
)
from tether.protocol.http11 import Limits
from tether.protocol.proxy import Proxy, ProxyConnect, parse_proxy
from tether.protocol.uri import parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://proxy.test", Proxy("http", "proxy.test", 80)),
        ("http://proxy.test:3128/", Proxy("http", "proxy.test", 3128)),
        ("https://PROXY.test", Proxy("https", "proxy.test", 443)),
        ("socks5h://127.0.0.1:1080", Proxy("socks5h", "127.0.0.1", 1080)),
        ("socks5://[::1]:1080", Proxy("socks5", "::1", 1080)),
        ("socks4a://proxy.test:1080", Proxy("socks4a", "proxy.test", 1080)),
        ("socks4://proxy.test", Proxy("socks4", "proxy.test", 80)),
        ("http://us%40er:p%3Ass@proxy.test", Proxy("http", "proxy.test", 80, "us@er", "p:ss")),
        ("http://user:@proxy.test", Proxy("http", "proxy.test", 80, "user", "")),
        ("http://bücher.test", Proxy("http", "xn--bcher-kva.test", 80)),
    ],
)
def test_parse_proxy(uri: str, expected: Proxy) -> None:
    assert parse_proxy(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("ftp://proxy.test", "scheme ftp isn't supported"),
        ("proxy.test:3128", "isn't supported"),
        ("http://", "hostname isn't provided"),
        ("http://:3128", "hostname isn't provided"),
        ("http://proxy.test/path", "path is meaningless"),
        ("http://proxy.test/?q", "query is meaningless"),
        ("http://proxy.test?", "query is meaningless"),
        ("http://proxy.test#", "fragment is meaningless"),
        ("http://user@proxy.test", "username provided without password"),
        ("http://proxy.test:99999", "out of range"),
        ("http://proxy.test:x", "Port could not be cast"),
        ("http://proxy .test", "whitespace"),
        ("http://proxy.test\n", "whitespace"),
        ("http://%ff:x@proxy.test", "percent-encoded UTF-8"),
        ("http://a..b\u00e9", "internationalized"),
    ],
)
def test_parse_proxy_refuses(uri: str, reason: str) -> None:
    with pytest.raises(InvalidProxy) as caught:
        parse_proxy(uri)
    assert caught.value.proxy == uri
    assert reason in caught.value.msg


def test_user_info() -> None:
    assert Proxy("http", "p", 80).user_info is None
    assert Proxy("http", "p", 80, "u", "").user_info == ("u", "")


WS = parse_uri("ws://example.test:8080/chat")


def exchange(proxy: str = "http://proxy.test", **kwargs: object) -> ProxyConnect:
    return ProxyConnect(parse_proxy(proxy), WS, **kwargs)  # type: ignore[arg-type]


def test_request() -> None:
    request = exchange("http://alice:s3cret@proxy.test").data_to_send()
    lines = request.decode().split("\r\n")
    assert lines[0] == "CONNECT example.test:8080 HTTP/1.1"
    assert "Host: example.test:8080" in lines
    assert any(line.startswith("User-Agent: Python/") for line in lines)
    token = base64.b64encode(b"alice:s3cret").decode()
    assert f"Proxy-Authorization: Basic {token}" in lines
    assert request.endswith(b"\r\n\r\n")


def test_request_without_user_agent_nor_credentials_and_ipv6() -> None:
    connect = ProxyConnect(
        parse_proxy("http://proxy.test"), parse_uri("wss://[::1]/"), user_agent_header=None
    )
    assert connect.data_to_send() == b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]\r\n\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 Connection established\r\nProxy-Agent: x\r\n\r\n",
        # A 2xx to CONNECT has no body, whatever its headers say.
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
    ],
)
def test_accepted(answer: bytes) -> None:
    connect = exchange()
    # Byte by byte: the answer is complete only at its last byte.
    results = [connect.receive_data(answer[i : i + 1]) for i in range(len(answer))]
    assert results == [False] * (len(answer) - 1) + [True]
    assert connect.response is not None
    assert connect.response.status_code == 200
    with pytest.raises(InvalidState):
        connect.receive_data(b"more")
    with pytest.raises(InvalidState):
        connect.receive_eof()


@pytest.mark.parametrize("status", [403, 407, 502])
def test_refused(status: int) -> None:
    connect = exchange()
    with pytest.raises(InvalidProxyStatus) as caught:
        connect.receive_data(f"HTTP/1.0 {status} No\r\nContent-Length: 5\r\n\r\nnope!".encode())
    assert caught.value.response.status_code == status
    assert caught.value.response.body == b""


@pytest.mark.parametrize(
    "answer",
    [b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/2 200\r\n\r\n", b"HTTP/1.1 200 OK\n\n"],
)
def test_garbage(answer: bytes) -> None:
    with pytest.raises(InvalidProxyMessage) as caught:
        exchange().receive_data(answer)
    assert caught.value.__cause__ is not None


def test_data_after_the_answer() -> None:
    with pytest.raises(InvalidProxyMessage, match="after its response"):
        exchange().receive_data(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03")


def test_answer_over_the_limits() -> None:
    connect = exchange(limits=Limits(max_line=50))
    with pytest.raises(InvalidProxyMessage) as caught:
        connect.receive_data(b"HTTP/1.1 200 OK\r\nX-Long: " + b"x" * 60)
    assert isinstance(caught.value.__cause__, SecurityError)


def test_closed_before_answering() -> None:
    connect = exchange()
    connect.receive_data(b"HTTP/1.1 200")
    with pytest.raises(InvalidProxyMessage) as caught:
        connect.receive_eof()
    assert isinstance(caught.value.__cause__.__cause__, EOFError)  # type: ignore[union-attr]
    # Told twice, it still refuses.
    with pytest.raises(InvalidProxyMessage):
        connect.receive_eof()
