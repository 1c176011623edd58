from __future__ import annotations

import dataclasses

import pytest

from tether.exceptions import InvalidURI
from tether.protocol.header_values import parse_authorization_basic
from tether.protocol.uri import WebSocketURI, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ws://localhost", WebSocketURI(False, "localhost", 80, "/")),
        ("ws://localhost/", WebSocketURI(False, "localhost", 80, "/")),
        ("wss://localhost", WebSocketURI(True, "localhost", 443, "/")),
        ("WS://LocalHost:8080", WebSocketURI(False, "localhost", 8080, "/")),
        ("WsS://example.com:443/", WebSocketURI(True, "example.com", 443, "/")),
        ("ws://example.com:/", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com:00080/", WebSocketURI(False, "example.com", 80, "/")),
        ("ws://example.com:65535/", WebSocketURI(False, "example.com", 65535, "/")),
        ("ws://example.com./", WebSocketURI(False, "example.com.", 80, "/")),
        ("ws://192.0.2.1:8765/", WebSocketURI(False, "192.0.2.1", 8765, "/")),
        ("ws://my_host-1.example~/", WebSocketURI(False, "my_host-1.example~", 80, "/")),
        ("ws://[::1]", WebSocketURI(False, "::1", 80, "/")),
        ("ws://[2001:DB8::1]:8080/", WebSocketURI(False, "2001:db8::1", 8080, "/")),
        ("wss://[::ffff:192.0.2.1]/x", WebSocketURI(True, "::ffff:192.0.2.1", 443, "/x")),
        ("ws://host/chat", WebSocketURI(False, "host", 80, "/chat")),
        ("ws://host/chat?room=1&x", WebSocketURI(False, "host", 80, "/chat", "room=1&x")),
        ("ws://host?room=1", WebSocketURI(False, "host", 80, "/", "room=1")),
        ("ws://host/chat?", WebSocketURI(False, "host", 80, "/chat")),
        ("ws://host/a?b?c/d", WebSocketURI(False, "host", 80, "/a", "b?c/d")),
        ("ws://host/%7Eme%20x", WebSocketURI(False, "host", 80, "/%7Eme%20x")),
        (
            "ws://host/p:@!$&'()*+,;=~-._/%41?q:@/?!$&'()*+,;=",
            WebSocketURI(False, "host", 80, "/p:@!$&'()*+,;=~-._/%41", "q:@/?!$&'()*+,;="),
        ),
        ("ws://host/caf\xe9?\u20ac", WebSocketURI(False, "host", 80, "/caf%C3%A9", "%E2%82%AC")),
        (
            'ws://host/"<>\\^`{|}[]',
            WebSocketURI(False, "host", 80, "/%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D"),
        ),
        ("ws://b\xfccher.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/")),
        ("ws://B\xdcCHER.example/", WebSocketURI(False, "xn--bcher-kva.example", 80, "/")),
        ("ws://user@host", WebSocketURI(False, "host", 80, "/", "", "user", None)),
        ("ws://user:@host", WebSocketURI(False, "host", 80, "/", "", "user", "")),
        ("ws://user:pass@host", WebSocketURI(False, "host", 80, "/", "", "user", "pass")),
        ("ws://user:pa:ss@host", WebSocketURI(False, "host", 80, "/", "", "user", "pa:ss")),
        ("ws://@host", WebSocketURI(False, "host", 80, "/", "", "", None)),
        (
            "ws://us%20er:p%40ss%C3%A9@host",
            WebSocketURI(False, "host", 80, "/", "", "us er", "p@ss\xe9"),
        ),
    ],
)
def test_parse_uri(uri: str, expected: WebSocketURI) -> None:
    assert parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://example.com/", "scheme isn't ws or wss"),
        ("https://example.com/", "scheme isn't ws or wss"),
        ("example.com", "scheme isn't ws or wss"),
        ("//example.com/", "scheme isn't ws or wss"),
        ("", "scheme isn't ws or wss"),
        ("ws://host/#", "fragments aren't allowed in WebSocket URIs"),
        ("ws://host/#frag", "fragments aren't allowed"),
        ("ws://host/path?q#frag", "fragments aren't allowed"),
        ("ws://host/a b", "whitespace or control characters aren't allowed"),
        (" ws://host/", "whitespace or control characters"),
        ("ws://host/\t", "whitespace or control characters"),
        ("ws://ho\nst/", "whitespace or control characters"),
        ("ws://host/\r\nX: y", "whitespace or control characters"),
        ("ws://host/\x00", "whitespace or control characters"),
        ("ws://host/\x7f", "whitespace or control characters"),
        ("ws://host/\xa0", "whitespace or control characters"),
        ("ws://host/\u200b", "whitespace or control characters"),
        ("ws:", "missing host"),
        ("ws:/path", "missing host"),
        ("ws://", "missing host"),
        ("ws:///path", "missing host"),
        ("ws://:80/", "missing host"),
        ("ws://user@/", "missing host"),
        ("ws://host:0/", "port out of range"),
        ("ws://host:65536/", "port out of range"),
        ("ws://host:123456/", "invalid port"),
        ("ws://host:http/", "invalid port"),
        ("ws://host:+80/", "invalid port"),
        ("ws://host:8_0/", "invalid port"),
        ("ws://host:-1/", "invalid port"),
        ("ws://host:\u0668\u0660/", "invalid port"),
        ("ws://host:80:80/", "invalid port"),
        ("ws://::1/", "missing host"),
        ("ws://[::1/", "Invalid IPv6 URL"),
        ("ws://[::1]]/", "invalid data after IPv6 address"),
        ("ws://[::1]80/", "invalid data after IPv6 address"),
        ("ws://[::1]:x/", "invalid port"),
        # Since Python 3.11.4, urlsplit() rejects most of these itself.
        ("ws://[example.com]/", "IPv6 address"),
        ("ws://[::g]/", "IPv6 address"),
        ("ws://[]/", "IPv6 address"),
        ("ws://[v1.x]/", "invalid IPv6 address"),
        ("ws://a..b/", "invalid host"),
        ("ws://.a/", "invalid host"),
        ("ws://./", "invalid host"),
        ("ws://ex%41mple.com/", "invalid host"),
        ("ws://host!/", "invalid host"),
        ("ws://a\\b/", "invalid host"),
        ("ws://" + "\xe9" * 64 + ".com/", "invalid internationalized host name"),
        ("ws://a@b@host/", "unescaped @ in user info"),
        ("ws://a:b@c@host/", "unescaped @ in user info"),
        ("ws://us%3Aer:pass@host/", "colon in username"),
    ],
)
def test_parse_uri_invalid(uri: str, reason: str) -> None:
    with pytest.raises(InvalidURI) as exc_info:
        parse_uri(uri)
    exc = exc_info.value
    assert exc.uri == uri
    assert reason in exc.msg
    assert str(exc) == f"{uri} isn't a valid URI: {exc.msg}"


def test_frozen() -> None:
    uri = parse_uri("ws://host/")
    with pytest.raises(dataclasses.FrozenInstanceError):
        uri.host = "other"  # type: ignore[misc]


def test_defaults() -> None:
    uri = WebSocketURI(False, "host", 80)
    assert uri.path == "/"
    assert uri.query == ""
    assert uri.username is None
    assert uri.password is None


def test_resource_name() -> None:
    assert parse_uri("ws://host").resource_name == "/"
    assert parse_uri("ws://host/chat?room=1").resource_name == "/chat?room=1"
    # As websockets: the path and the query apart.
    uri = parse_uri("ws://host/chat?room=1")
    assert (uri.path, uri.query) == ("/chat", "room=1")
    assert parse_uri("ws://host/chat?").resource_name == "/chat"


@pytest.mark.parametrize(
    ("uri", "host_header"),
    [
        ("ws://example.com", "example.com"),
        ("ws://example.com:80", "example.com"),
        ("ws://example.com:443", "example.com:443"),
        ("wss://example.com:443", "example.com"),
        ("wss://example.com:80", "example.com:80"),
        ("ws://example.com:8080", "example.com:8080"),
        ("ws://[::1]", "[::1]"),
        ("wss://[::1]:8443", "[::1]:8443"),
        ("ws://b\xfccher.example:81", "xn--bcher-kva.example:81"),
    ],
)
def test_host_header(uri: str, host_header: str) -> None:
    assert parse_uri(uri).host_header == host_header


@pytest.mark.parametrize(
    ("uri", "user_info"),
    [
        ("ws://host", None),
        ("ws://user@host", ("user", "")),
        ("ws://user:pass@host", ("user", "pass")),
        ("ws://:pass@host", ("", "pass")),
    ],
)
def test_user_info(uri: str, user_info: tuple[str, str] | None) -> None:
    assert parse_uri(uri).user_info == user_info


def test_authorization() -> None:
    uri = parse_uri("ws://Aladdin:open%20sesame@host/")
    assert uri.authorization == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert parse_authorization_basic(uri.authorization) == ("Aladdin", "open sesame")


def test_authorization_without_user_info() -> None:
    with pytest.raises(ValueError, match="the URI has no user info"):
        _ = parse_uri("ws://host/").authorization


def test_parse_uri_parses_each_uri_once_and_checks_each_time() -> None:
    assert parse_uri("ws://example.com/chat") is parse_uri("ws://example.com/chat")
    for _ in range(2):
        with pytest.raises(InvalidURI):
            parse_uri("http://example.com/")
