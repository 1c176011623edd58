from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.exceptions import (
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidMessage,
    InvalidProtocol,
    InvalidState,
    RequestLineTooLong,
    SecurityError,
    StatusLineTooLong,
    TooManyHeaders,
)
from tether.protocol.headers import Headers
from tether.protocol.http11 import (
    InvalidMethod,
    Limits,
    Request,
    RequestParser,
    Response,
    ResponseParser,
    limit_from_environment,
)

REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

RESPONSE_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)

CHUNKED = (
    b"HTTP/1.1 403 Forbidden\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    b"5\r\nhello\r\n"
    b"1;name=value\r\n \r\n"
    b"6 ; x\r\nworld!\r\n"
    b"0\r\n"
    b"Trailer: yes\r\n"
    b"\r\n"
)


def parse_request(data: bytes, limits: Limits | None = None) -> RequestParser:
    parser = RequestParser(limits)
    parser.receive_data(data)
    return parser


def parse_response(data: bytes, limits: Limits | None = None) -> ResponseParser:
    parser = ResponseParser(limits)
    parser.receive_data(data)
    return parser


def request_with(line: bytes) -> bytes:
    """A valid request with one more header line."""
    return REQUEST[:-2] + line + b"\r\n\r\n"


def response_with(head: bytes, rest: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + rest


# Serializing


def test_request_serialize() -> None:
    request = Request("/chat?room=1", Headers([("Host", "example.com")]))
    assert request.serialize() == b"GET /chat?room=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"


@pytest.mark.parametrize("path", ["", "chat", "/a b", "/a\r\nX: y", "/caf\xe9", "/\x00"])
def test_request_serialize_invalid_path(path: str) -> None:
    with pytest.raises(ValueError, match="invalid request target"):
        Request(path, Headers()).serialize()


def test_request_round_trip() -> None:
    request = parse_request(REQUEST).result
    assert request is not None
    assert request.serialize() == REQUEST


def test_response_serialize() -> None:
    response = Response(404, "Not Found", Headers([("Content-Length", "2")]), b"no")
    assert response.serialize() == b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"


def test_response_serialize_latin1_reason() -> None:
    response = Response(200, "\tOK caf\xe9", Headers())
    assert response.serialize() == b"HTTP/1.1 200 \tOK caf\xe9\r\n\r\n"


@pytest.mark.parametrize("code", [0, 99, 1000])
def test_response_serialize_invalid_code(code: int) -> None:
    with pytest.raises(ValueError, match="invalid status code"):
        Response(code, "X", Headers()).serialize()


@pytest.mark.parametrize("reason", ["a\r\nX: y", "a\nb", "\x7f", "\u20ac"])
def test_response_serialize_invalid_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="invalid reason phrase"):
        Response(200, reason, Headers()).serialize()


def test_response_round_trip() -> None:
    response = parse_response(RESPONSE_101).result
    assert response is not None
    assert response.serialize() == RESPONSE_101


# Limits


def test_limits_defaults() -> None:
    assert Limits() == Limits(max_line=8192, max_headers=128, max_size=65536, max_body=1 << 20)


@pytest.mark.parametrize("name", ["max_line", "max_headers", "max_size", "max_body"])
def test_limits_negative(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name} must be positive or zero"):
        Limits(**{name: -1})


def test_limits_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().max_line = 1  # type: ignore[misc]


# Requests


def test_request() -> None:
    parser = parse_request(REQUEST + b"\x81\x00")
    request = parser.result
    assert request is not None
    assert request.path == "/chat?room=1"
    assert request.headers["host"] == "example.com"
    assert request.headers["Sec-WebSocket-Version"] == "13"
    assert list(request.headers) == [
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
    ]
    assert parser.leftover == b"\x81\x00"


def test_request_returns_result() -> None:
    parser = RequestParser()
    assert parser.receive_data(REQUEST[:10]) is None
    assert parser.result is None
    assert parser.leftover == b""
    request = parser.receive_data(memoryview(REQUEST[10:]))
    assert request is parser.result
    assert parser.leftover == b""


def test_request_byte_by_byte() -> None:
    parser = RequestParser()
    for byte in REQUEST:
        assert parser.result is None
        parser.receive_data(bytes([byte]))
    assert parser.result == parse_request(REQUEST).result


def test_request_empty_data() -> None:
    parser = RequestParser()
    assert parser.receive_data(b"") is None


def test_request_no_headers() -> None:
    request = parse_request(b"GET / HTTP/1.1\r\n\r\n").result
    assert request == Request("/", Headers())


def test_request_header_values() -> None:
    request = parse_request(
        request_with(b"X-A:  padded \t\r\nX-B:\r\nX-C: caf\xe9 \x80\xff\r\nX-D:a:b")
    ).result
    assert request is not None
    assert request.headers["X-A"] == "padded"
    assert request.headers["X-B"] == ""
    assert request.headers["X-C"] == "caf\xe9 \x80\xff"
    assert request.headers["X-D"] == "a:b"


def test_request_content_length_zero() -> None:
    assert parse_request(request_with(b"Content-Length: 0")).result is not None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"GET /", "invalid request line: b'GET /'"),
        (b"GET  / HTTP/1.1", "invalid request line"),
        (b"GET / HTTP/1.1 ", "invalid request line"),
        (b"", "invalid request line: b''"),
        (b"G\xc9T / HTTP/1.1", "invalid method in request line"),
        (b"GET chat HTTP/1.1", "invalid request target: b'chat'"),
        (b"GET ws://example.com/ HTTP/1.1", "invalid request target"),
        (b"GET http:example.com/ HTTP/1.1", "invalid request target"),
        (b"GET http:///chat HTTP/1.1", "invalid request target"),
        (b"GET http://user@example.com/ HTTP/1.1", "invalid request target"),
        (b"GET http://example.com#top HTTP/1.1", "invalid request target"),
        (b"GET http://caf\xc3\xa9.example/ HTTP/1.1", "invalid request target"),
        (b"GET /caf\xc3\xa9 HTTP/1.1", "invalid request target"),
        (b"GET /\x7f HTTP/1.1", "invalid request target"),
        (b"GET /\r HTTP/1.1", "invalid request target"),
    ],
)
def test_invalid_request_line(line: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message) as exc_info:
        parse_request(line + b"\r\n\r\n")
    assert not isinstance(exc_info.value, InvalidMethod)


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://example.com/chat?room=1", "/chat?room=1"),
        (b"HTTPS://example.com:443/a/b", "/a/b"),
        (b"http://example.com", "/"),
        (b"http://example.com?x=1", "/?x=1"),
        (b"http://[::1]:8080/", "/"),
    ],
)
def test_request_absolute_form_target(target: bytes, path: str) -> None:
    # RFC 6455 section 4.2.1 allows an absolute http or https URI as the
    # target; the resource name is its path and query.
    request = parse_request(b"GET " + target + b" HTTP/1.1\r\n\r\n").result
    assert request is not None
    assert request.path == path


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"example.com:8080",
        b"127.0.0.1",
        b"[::1]:80",
        b"[fe80::1%25eth0]",
        b"",
        b"a_b~c.%41",
        b"example.com:",
        b"!$&'()*+,;=",
    ],
)
def test_request_valid_host(host: bytes) -> None:
    request = parse_request(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n").result
    assert request is not None
    assert request.headers["Host"] == host.decode()


@pytest.mark.parametrize(
    "host",
    [b"a b", b"a/b", b"user@a", b"a:http", b"caf\xc3\xa9", b"::1", b"[::1", b"a%zz", b"a\tb"],
)
def test_request_invalid_host(host: bytes) -> None:
    # RFC 9112 section 3.2: a server answers 400 to an invalid Host value.
    with pytest.raises(InvalidMessage, match="invalid Host header"):
        parse_request(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")


def test_request_every_host_is_checked() -> None:
    # Two Host fields are the handshake's to refuse, whatever their syntax.
    with pytest.raises(InvalidMessage, match="invalid Host header"):
        parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a b\r\n\r\n")


@pytest.mark.parametrize("method", ["POST", "HEAD", "get", "CONNECT"])
def test_request_invalid_method(method: str) -> None:
    with pytest.raises(InvalidMethod) as exc_info:
        parse_request(f"{method} / HTTP/1.1\r\n".encode())
    assert exc_info.value.method == method
    assert str(exc_info.value) == (
        f"unsupported HTTP method {method}; a WebSocket handshake uses GET"
    )


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"http/1.1", b"HTTP/2"])
def test_request_invalid_protocol(version: bytes) -> None:
    with pytest.raises(InvalidProtocol) as exc_info:
        parse_request(b"GET / " + version + b"\r\n")
    assert exc_info.value.protocol == repr(version)
    assert str(exc_info.value) == f"unsupported HTTP version {version!r}; expected HTTP/1.1"


def test_request_invalid_method_checked_after_syntax() -> None:
    with pytest.raises(InvalidProtocol, match="unsupported HTTP version"):
        parse_request(b"POST / HTTP/1.0\r\n")


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\n",
        b"GET / HTTP/1.1\r\nHost: x\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\n",
        b"GET / HTTP/1.1\r\n\n",
    ],
)
def test_bare_lf(data: bytes) -> None:
    with pytest.raises(InvalidMessage, match="line ends with a bare LF instead of CRLF"):
        parse_request(data)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b" continued", "obsolete line folding in a header"),
        (b"\tcontinued", "obsolete line folding in a header"),
        (b"NoColon", "header line without a colon: b'NoColon'"),
        (b"Host : x", "whitespace between header name and colon: b'Host '"),
        (b"Host\t: x", "whitespace between header name and colon"),
        (b": x", "invalid header name: b''"),
        (b"Ho st: x", "invalid header name: b'Ho st'"),
        (b"H\xc3\xb4st: x", "invalid header name"),
        (b"X: a\x00b", "invalid value for header X: b'a\\\\x00b'"),
        (b"X: a\rb", "invalid value for header X"),
        (b"X: a\x7f", "invalid value for header X"),
    ],
)
def test_invalid_header_line(line: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        parse_request(request_with(line))


def test_obsolete_line_folding_after_start_line() -> None:
    with pytest.raises(InvalidMessage, match="obsolete line folding"):
        parse_request(b"GET / HTTP/1.1\r\n folded\r\n\r\n")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"Transfer-Encoding: chunked", "Transfer-Encoding in a handshake request"),
        (b"transfer-encoding: identity", "Transfer-Encoding in a handshake request"),
        (b"Content-Length: 5", "handshake request with a body: Content-Length 5"),
        (b"Content-Length: 00", "handshake request with a body"),
        (b"Content-Length: 0\r\nContent-Length: 0", "duplicate Content-Length header"),
    ],
)
def test_request_smuggling(line: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        parse_request(request_with(line))


def test_long_message_is_shown_short() -> None:
    with pytest.raises(InvalidMessage) as exc_info:
        parse_request(b"X" * 200 + b"\r\n")
    assert str(exc_info.value) == "invalid request line: " + repr(b"X" * 80) + "..."


# Limits on the head


def test_max_line_exact() -> None:
    limits = Limits(max_line=40)
    line = b"X-Long: " + b"a" * 32
    assert len(line) == 40
    assert parse_request(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n", limits).result is not None


def test_max_line_exceeded() -> None:
    limits = Limits(max_line=40)
    line = b"X-Long: " + b"a" * 33
    with pytest.raises(SecurityError, match="line longer than max_line = 40 bytes"):
        parse_request(b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n", limits)


def test_max_line_exact_incremental() -> None:
    limits = Limits(max_line=40)
    parser = RequestParser(limits)
    parser.receive_data(b"GET / HTTP/1.1\r\n")
    parser.receive_data(b"X-Long: " + b"a" * 32)
    parser.receive_data(b"\r")
    parser.receive_data(b"\n\r\n")
    assert parser.result is not None


def test_max_line_exceeded_before_line_end() -> None:
    limits = Limits(max_line=40)
    parser = RequestParser(limits)
    parser.receive_data(b"GET / HTTP/1.1\r\n")
    parser.receive_data(b"X-Long: " + b"a" * 32)
    with pytest.raises(SecurityError, match="max_line"):
        parser.receive_data(b"a")


def test_megabyte_line_fails_early() -> None:
    parser = RequestParser()
    parser.receive_data(b"GET /")
    received = 5
    with pytest.raises(SecurityError, match="max_line"):  # noqa: PT012
        while received < 1 << 20:
            parser.receive_data(b"a" * 1000)
            received += 1000
    # The call that took the line from 8005 to 9005 bytes failed.
    assert received == 8005


def test_max_line_applies_to_start_line() -> None:
    path = b"/" + b"a" * 100
    data = b"GET " + path + b" HTTP/1.1\r\n\r\n"
    assert parse_request(data, Limits(max_line=len(data) - 4)).result is not None
    with pytest.raises(SecurityError, match="max_line"):
        parse_request(data, Limits(max_line=len(data) - 5))


def test_max_headers_exact() -> None:
    limits = Limits(max_headers=5)
    assert parse_request(REQUEST, limits).result is not None


def test_max_headers_exceeded() -> None:
    limits = Limits(max_headers=4)
    with pytest.raises(SecurityError, match="more than max_headers = 4 headers"):
        parse_request(REQUEST, limits)


def test_max_size_exact() -> None:
    limits = Limits(max_size=len(REQUEST))
    assert parse_request(REQUEST + b"after", limits).result is not None
    parser = RequestParser(limits)
    for byte in REQUEST:
        parser.receive_data(bytes([byte]))
    assert parser.result is not None


def test_max_size_exceeded_at_end_of_head() -> None:
    limits = Limits(max_size=len(REQUEST) - 1)
    with pytest.raises(SecurityError, match="request head larger than max_size"):
        parse_request(REQUEST + b"after", limits)


def test_max_size_exceeded_byte_by_byte() -> None:
    limits = Limits(max_size=len(REQUEST) - 1)
    parser = RequestParser(limits)
    for byte in REQUEST[:-1]:
        parser.receive_data(bytes([byte]))
    with pytest.raises(SecurityError, match="max_size"):
        parser.receive_data(REQUEST[-1:])


def test_max_size_exceeded_before_head_ends() -> None:
    limits = Limits(max_size=100)
    parser = RequestParser(limits)
    parser.receive_data(b"GET / HTTP/1.1\r\n")
    for _ in range(3):
        parser.receive_data(b"X-Header: 0123456789\r\n")
    parser.receive_data(b"X" * 18)
    with pytest.raises(SecurityError, match="request head larger than max_size = 100 bytes"):
        parser.receive_data(b"X")


# States and end of stream


def test_data_after_result() -> None:
    parser = parse_request(REQUEST)
    with pytest.raises(InvalidState, match="the request is complete"):
        parser.receive_data(b"x")


def test_data_after_eof() -> None:
    parser = RequestParser()
    with pytest.raises(InvalidMessage):
        parser.receive_eof()
    with pytest.raises(InvalidState, match="data received after the end of the stream"):
        parser.receive_data(b"x")


def test_eof_before_request() -> None:
    parser = RequestParser()
    with pytest.raises(InvalidMessage, match="connection closed before any request") as exc_info:
        parser.receive_eof()
    assert isinstance(exc_info.value.__cause__, EOFError)
    parser.receive_eof()


def test_eof_in_request_head() -> None:
    parser = parse_request(REQUEST[:-1])
    with pytest.raises(InvalidMessage, match="connection closed in the middle of the request head"):
        parser.receive_eof()


def test_eof_after_request() -> None:
    parser = parse_request(REQUEST)
    parser.receive_eof()
    assert parser.result is not None


# Responses


def test_response_101() -> None:
    parser = parse_response(RESPONSE_101 + b"\x81\x05hello")
    response = parser.result
    assert response is not None
    assert response.status_code == 101
    assert response.reason_phrase == "Switching Protocols"
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert response.body == b""
    assert parser.leftover == b"\x81\x05hello"


def test_response_101_ignores_content_length() -> None:
    parser = parse_response(b"HTTP/1.1 101 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert parser.result is not None
    assert parser.result.body == b""
    assert parser.leftover == b"abc"


@pytest.mark.parametrize(
    ("line", "code", "reason"),
    [
        (b"HTTP/1.1 101", 101, ""),
        (b"HTTP/1.1 101 ", 101, ""),
        (b"HTTP/1.1 101  spaced ", 101, " spaced "),
        (b"HTTP/1.1 304 caf\xe9\t\x80", 304, "caf\xe9\t\x80"),
    ],
)
def test_status_line(line: bytes, code: int, reason: str) -> None:
    response = parse_response(line + b"\r\n\r\n").result
    assert response == Response(code, reason, Headers())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"HTTP/1.0 200 OK", "unsupported HTTP version b'HTTP/1.0'"),
        (b"HTTP/1.1", "invalid status code in status line"),
        (b"", "unsupported HTTP version b''"),
        (b"http/1.1 200 OK", "unsupported HTTP version"),
        (b"HTTP/1.1  200 OK", "invalid status code"),
        (b"HTTP/1.1 20 OK", "invalid status code"),
        (b"HTTP/1.1 20", "invalid status code"),
        (b"HTTP/1.1 099 OK", "invalid status code"),
        (b"HTTP/1.1 2x0 OK", "invalid status code"),
        (b"HTTP/1.1 2000 OK", "invalid status code"),
        (b"HTTP/1.1 200\tOK", "invalid status code"),
        (b"HTTP/1.1 200 O\rK", "invalid reason phrase: b'O\\\\rK'"),
        (b"HTTP/1.1 200 O\x00K", "invalid reason phrase"),
    ],
)
def test_invalid_status_line(line: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        parse_response(line + b"\r\n\r\n")


def test_interim_responses_are_dropped() -> None:
    # RFC 9110 section 15.2: a client reads past any 1xx but 101 to the
    # final response, whether it expected them or not.
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 199\r\n\r\n"
    )
    whole = parse_response(interim + RESPONSE_101 + b"\x81\x00")
    assert whole.result == parse_response(RESPONSE_101).result
    assert whole.leftover == b"\x81\x00"
    trickled = ResponseParser()
    for byte in interim + RESPONSE_101:
        assert trickled.result is None
        trickled.receive_data(bytes([byte]))
    assert trickled.result == whole.result


def test_interim_responses_alone_are_not_an_answer() -> None:
    parser = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert parser.result is None
    with pytest.raises(InvalidMessage, match="in the middle of the response head"):
        parser.receive_eof()


def test_interim_responses_count_towards_max_size() -> None:
    # A server sending 1xx forever is stopped by the head's size limit.
    parser = ResponseParser(Limits(max_size=1000))
    with pytest.raises(SecurityError, match="max_size"):
        parser.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n" * 100)


def test_interim_response_fields_count_separately() -> None:
    limits = Limits(max_headers=2)
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: a\r\nLink: b\r\n\r\n"
    final = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    parser = parse_response(interim + final, limits)
    assert parser.result is not None
    assert parser.result.headers.get_all("Link") == []


@pytest.mark.parametrize("code", [101, 204, 304])
def test_response_without_body(code: int) -> None:
    parser = parse_response(f"HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nab".encode())
    assert parser.result == Response(code, "X", Headers({"Content-Length": "2"}))
    assert parser.leftover == b"ab"


def test_response_content_length() -> None:
    parser = parse_response(response_with(b"Content-Length: 5\r\n", b"helloextra"))
    assert parser.result is not None
    assert parser.result.body == b"hello"
    assert parser.leftover == b"extra"


@pytest.mark.parametrize(("value", "body"), [(b"0", b""), (b"00", b""), (b"0003", b"abc")])
def test_response_content_length_leading_zeros(value: bytes, body: bytes) -> None:
    parser = parse_response(response_with(b"Content-Length: " + value + b"\r\n", b"abc"))
    assert parser.result is not None
    assert parser.result.body == body


def test_response_content_length_incremental() -> None:
    parser = ResponseParser()
    parser.receive_data(response_with(b"Content-Length: 10\r\n", b"abc"))
    assert parser.result is None
    # This call drops the consumed head from the buffer first.
    parser.receive_data(b"defg")
    assert parser.result is None
    parser.receive_data(b"hij")
    assert parser.result is not None
    assert parser.result.body == b"abcdefghij"


@pytest.mark.parametrize("value", [b"abc", b"-1", b"+1", b"1.0", b"1, 1", b"\xb2"])
def test_response_invalid_content_length(value: bytes) -> None:
    with pytest.raises(InvalidMessage, match="invalid Content-Length"):
        parse_response(response_with(b"Content-Length: " + value + b"\r\n"))


def test_response_duplicate_content_length() -> None:
    with pytest.raises(InvalidMessage, match="duplicate Content-Length header"):
        parse_response(response_with(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"a"))


def test_response_max_body_content_length() -> None:
    limits = Limits(max_body=5)
    parser = parse_response(response_with(b"Content-Length: 5\r\n", b"hello"), limits)
    assert parser.result is not None
    with pytest.raises(SecurityError, match="response body larger than max_body = 5 bytes"):
        parse_response(response_with(b"Content-Length: 6\r\n"), limits)


@pytest.mark.parametrize("digits", [19, 20, 5000])
def test_response_huge_content_length(digits: int) -> None:
    with pytest.raises(SecurityError, match="max_body"):
        parse_response(response_with(b"Content-Length: " + b"9" * digits + b"\r\n"))


def test_response_long_zero_padded_content_length() -> None:
    value = b"0" * 5000 + b"2"
    parser = parse_response(response_with(b"Content-Length: " + value + b"\r\n", b"ok"))
    assert parser.result is not None
    assert parser.result.body == b"ok"


def test_response_body_until_eof() -> None:
    parser = parse_response(response_with(b"", b"some"))
    parser.receive_data(b" body")
    assert parser.result is None
    parser.receive_eof()
    assert parser.result == Response(200, "OK", Headers(), b"some body")
    assert parser.leftover == b""


def test_response_empty_body_until_eof() -> None:
    parser = parse_response(response_with(b""))
    parser.receive_eof()
    assert parser.result == Response(200, "OK", Headers(), b"")


def test_response_max_body_until_eof() -> None:
    limits = Limits(max_body=5)
    parser = parse_response(response_with(b"", b"hel"), limits)
    parser.receive_data(b"lo")
    parser.receive_eof()
    assert parser.result is not None
    parser = parse_response(response_with(b"", b"hel"), limits)
    with pytest.raises(SecurityError, match="response body larger than max_body = 5 bytes"):
        parser.receive_data(b"lo!")


def test_eof_in_response_head() -> None:
    parser = parse_response(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(InvalidMessage, match="in the middle of the response head"):
        parser.receive_eof()


def test_eof_before_response() -> None:
    with pytest.raises(InvalidMessage, match="connection closed before any response"):
        ResponseParser().receive_eof()


def test_eof_in_content_length_body() -> None:
    parser = parse_response(response_with(b"Content-Length: 5\r\n", b"hel"))
    with pytest.raises(InvalidMessage, match="in the middle of the response body") as exc_info:
        parser.receive_eof()
    assert isinstance(exc_info.value.__cause__, EOFError)


def test_response_chunked() -> None:
    parser = parse_response(CHUNKED + b"extra")
    assert parser.result is not None
    assert parser.result.status_code == 403
    assert parser.result.body == b"hello world!"
    assert "Trailer" not in parser.result.headers
    assert parser.leftover == b"extra"


def test_response_chunked_byte_by_byte() -> None:
    parser = ResponseParser()
    for byte in CHUNKED:
        assert parser.result is None
        parser.receive_data(bytes([byte]))
    assert parser.result == parse_response(CHUNKED).result


@pytest.mark.parametrize("value", [b"chunked", b"Chunked", b", chunked ,", b"CHUNKED,"])
def test_response_chunked_spelling(value: bytes) -> None:
    data = response_with(b"Transfer-Encoding: " + value + b"\r\n", b"0\r\n\r\n")
    assert parse_response(data).result is not None


@pytest.mark.parametrize(
    "head",
    [
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: \r\n",
    ],
)
def test_response_unsupported_transfer_encoding(head: bytes) -> None:
    with pytest.raises(InvalidMessage, match="unsupported Transfer-Encoding"):
        parse_response(response_with(head))


def test_response_both_transfer_encoding_and_content_length() -> None:
    head = b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
    with pytest.raises(InvalidMessage, match="both Transfer-Encoding and Content-Length"):
        parse_response(response_with(head))


def chunked(body: bytes) -> bytes:
    return response_with(b"Transfer-Encoding: chunked\r\n", body)


def test_response_chunk_size_leading_zeros() -> None:
    parser = parse_response(chunked(b"0" * 100 + b"2\r\nok\r\n00\r\n\r\n"))
    assert parser.result is not None
    assert parser.result.body == b"ok"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\r\n", "invalid chunk size: b''"),
        (b"x\r\n", "invalid chunk size: b'x'"),
        (b" 5\r\n", "invalid chunk size"),
        (b"5 \r\n", "invalid chunk size"),
        (b";x\r\n", "invalid chunk size"),
        (b"-5\r\n", "invalid chunk size"),
        (b"5;\x00\r\n", "invalid chunk extension"),
        (b"5\r\nhelloX\r\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\n\r\n", "chunk data not followed by CRLF"),
        (b"5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n", "invalid header name"),
        (b"0\r\n\n", "bare LF"),
    ],
)
def test_response_invalid_chunked(body: bytes, message: str) -> None:
    with pytest.raises(InvalidMessage, match=message):
        parse_response(chunked(body))


def test_response_max_body_chunked() -> None:
    limits = Limits(max_body=5)
    data = chunked(b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n")
    parser = parse_response(data, limits)
    assert parser.result is not None
    assert parser.result.body == b"hello"
    with pytest.raises(SecurityError, match="response body larger than max_body = 5 bytes"):
        parse_response(chunked(b"2\r\nhe\r\n4\r\n"), limits)


@pytest.mark.parametrize("digits", [16, 17, 5000])
def test_response_huge_chunk_size(digits: int) -> None:
    with pytest.raises(SecurityError, match="max_body"):
        parse_response(chunked(b"f" * digits + b"\r\n"))


def test_response_chunked_trailers_count_as_headers() -> None:
    body = b"0\r\nA: 1\r\nB: 2\r\n\r\n"
    head = b"Transfer-Encoding: chunked\r\n"
    assert parse_response(response_with(head, body), Limits(max_headers=3)).result is not None
    with pytest.raises(SecurityError, match="max_headers"):
        parse_response(response_with(head, body), Limits(max_headers=2))


def test_response_chunk_line_max_line() -> None:
    body = b"1;" + b"x" * 38 + b"\r\na\r\n0\r\n\r\n"
    assert parse_response(chunked(body), Limits(max_line=40)).result is not None
    with pytest.raises(SecurityError, match="max_line"):
        parse_response(chunked(body), Limits(max_line=39))


def test_eof_in_chunked_body() -> None:
    parser = parse_response(chunked(b"5\r\nhel"))
    with pytest.raises(InvalidMessage, match="in the middle of the response body"):
        parser.receive_eof()


def test_response_many_chunks_compacts_buffer() -> None:
    parser = ResponseParser()
    parser.receive_data(chunked(b""))
    for _ in range(1000):
        parser.receive_data(b"1\r\na\r\n")
        # Consumed chunks are dropped, so the buffer stays small.
        assert len(parser._buf) < 200
    parser.receive_data(b"0\r\n\r\n")
    assert parser.result is not None
    assert parser.result.body == b"a" * 1000


def test_response_max_size() -> None:
    limits = Limits(max_size=len(RESPONSE_101))
    assert parse_response(RESPONSE_101, limits).result is not None
    with pytest.raises(SecurityError, match="response head larger than max_size"):
        parse_response(RESPONSE_101, Limits(max_size=len(RESPONSE_101) - 1))


def test_response_data_after_result() -> None:
    parser = parse_response(RESPONSE_101)
    with pytest.raises(InvalidState, match="the response is complete"):
        parser.receive_data(b"x")


# Incremental parsing gives the same result however the bytes are split.


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


@given(cuts=st.lists(st.integers(min_value=0), max_size=20))
def test_request_any_split(cuts: list[int]) -> None:
    data = REQUEST + b"\x81\x00"
    parser = RequestParser()
    for piece in split(data, cuts):
        if parser.result is None:
            parser.receive_data(piece)
        else:
            parser.leftover += piece
    expected = parse_request(data)
    assert parser.result == expected.result
    assert parser.leftover == expected.leftover


RESPONSES = [
    RESPONSE_101 + b"\x81\x00",
    CHUNKED + b"more",
    response_with(b"Content-Length: 5\r\n", b"hello world"),
    response_with(b"Server: x\r\n", b"until the end"),
]


@given(index=st.integers(min_value=0, max_value=len(RESPONSES) - 1), cuts=st.lists(st.integers()))
def test_response_any_split(index: int, cuts: list[int]) -> None:
    data = RESPONSES[index]
    parser = ResponseParser()
    for piece in split(data, cuts):
        if parser.result is None:
            parser.receive_data(piece)
        else:
            parser.leftover += piece
    parser.receive_eof()
    expected = parse_response(data)
    expected.receive_eof()
    assert parser.result == expected.result
    assert parser.leftover == expected.leftover


def test_max_size_exceeded_mid_chunk() -> None:
    # The head passes max_size within one chunk, long before its end.
    limits = Limits(max_size=100, max_headers=1000)
    parser = RequestParser(limits)
    with pytest.raises(SecurityError, match="max_size"):
        parser.receive_data(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 900)
    assert parser._pos < 110


@pytest.mark.parametrize(
    ("data", "limits", "message"),
    [
        # Found by fuzz/handshake.py: whole, these raised "bare LF" where
        # byte by byte they raised a limit first.
        (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 40 + b"\n", Limits(max_line=40), "max_line"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20 + b"\n", Limits(max_size=30), "max_size"),
        (b"GET / HTTP/1.1\r\nX: a\n", Limits(max_size=30), "bare LF"),
    ],
)
def test_bare_lf_after_a_limit_same_error_whole_or_byte_by_byte(
    data: bytes, limits: Limits, message: str
) -> None:
    whole = RequestParser(limits)
    with pytest.raises(InvalidHandshake, match=message) as whole_error:
        whole.receive_data(data)
    trickle = RequestParser(limits)

    def feed_byte_by_byte() -> None:
        for byte in data:
            trickle.receive_data(bytes([byte]))

    with pytest.raises(InvalidHandshake, match=message) as trickle_error:
        feed_byte_by_byte()
    assert type(whole_error.value) is type(trickle_error.value)


# A head that arrives whole is read at once; one that arrives in pieces, line
# by line. Both must give the same message or the same error.

_START_LINES = [b"GET / HTTP/1.1", b"GET /a?b HTTP/1.1", b"POST / HTTP/1.1", b"GET / HTTP/1.0"]
_HEADER_LINES = [
    b"Host: example.com",
    b"Upgrade: websocket",
    b"Connection:  keep-alive, Upgrade \t",
    b"X-Empty:",
    b"X-Latin: caf\xe9",
    b" folded",
    b"Bad Name: x",
    b"Name : x",
    b"NoColon",
    b"X: a\rb",
    b"X: a\x00b",
    b"X: a\nb",
    b"Content-Length: 0",
    b"Content-Length: 1",
    b"Transfer-Encoding: chunked",
    b"Host: bad host",
    b"X-Long: " + b"v" * 60,
]


def _outcome(limits: Limits, chunks: list[bytes]) -> object:
    parser = RequestParser(limits)
    try:
        for index, chunk in enumerate(chunks):
            parser.receive_data(chunk)
            if parser.result is not None:
                return parser.result, parser.leftover + b"".join(chunks[index + 1 :])
    except SecurityError:
        # Which limit breaks first may depend on how the bytes came.
        return SecurityError
    except InvalidHandshake as exc:
        return type(exc), str(exc)
    return None


@given(
    start=st.sampled_from(_START_LINES),
    lines=st.lists(st.sampled_from(_HEADER_LINES), max_size=8),
    max_line=st.sampled_from([20, 70, 8192]),
    max_headers=st.sampled_from([2, 5, 128]),
    max_size=st.sampled_from([60, 200, 65536]),
)
def test_whole_head_same_outcome_as_line_by_line(
    start: bytes, lines: list[bytes], max_line: int, max_headers: int, max_size: int
) -> None:
    data = b"\r\n".join([start, *lines]) + b"\r\n\r\n\x81\x00"
    limits = Limits(max_line=max_line, max_headers=max_headers, max_size=max_size)
    whole = _outcome(limits, [data])
    trickled = _outcome(limits, [data[i : i + 1] for i in range(len(data))])
    assert whole == trickled


def test_whole_head_shares_common_strings() -> None:
    # Idle connections keep their request: common names and values are one
    # string each, not a copy per connection.
    first = parse_request(REQUEST).result
    second = parse_request(REQUEST).result
    assert first is not None
    assert second is not None
    for (name_a, value_a), (name_b, value_b) in zip(
        first.headers.raw_items(), second.headers.raw_items(), strict=True
    ):
        assert name_a is name_b
        if value_a in ("websocket", "Upgrade", "13"):
            assert value_a is value_b


# websockets' environment variables, and the proxy mode of the response parser


def test_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TETHER_TEST_LIMIT", raising=False)
    assert limit_from_environment("TETHER_TEST_LIMIT", 7) == 7
    monkeypatch.setenv("TETHER_TEST_LIMIT", "1_048_576")
    assert limit_from_environment("TETHER_TEST_LIMIT", 7) == 1 << 20
    for bad in ("lots", "-1"):
        monkeypatch.setenv("TETHER_TEST_LIMIT", bad)
        with pytest.raises(ValueError, match="TETHER_TEST_LIMIT"):
            limit_from_environment("TETHER_TEST_LIMIT", 7)


def test_environment_variables_set_the_default_limits() -> None:
    # Read once, at import: a fresh interpreter shows them.
    code = (
        "from tether.protocol.http11 import Limits; l = Limits(); "
        "print(l.max_line, l.max_headers, l.max_body)"
    )
    env = dict(
        os.environ,
        WEBSOCKETS_MAX_LINE_LENGTH="100",
        WEBSOCKETS_MAX_NUM_HEADERS="5",
        WEBSOCKETS_MAX_BODY_SIZE="10",
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["100", "5", "10"]


def test_proxy_mode_takes_http10_and_no_body() -> None:
    parser = ResponseParser(proxy=True)
    result = parser.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    assert result is not None
    assert (result.status_code, result.body) == (200, b"")
    assert parser.leftover == b"abc"
    with pytest.raises(InvalidMessage, match=r"HTTP/1\.1"):
        ResponseParser().receive_data(b"HTTP/1.0 200 OK\r\n\r\n")
    with pytest.raises(InvalidMessage, match="version"):
        ResponseParser(proxy=True).receive_data(b"HTTP/0.9 200 OK\r\n\r\n")


def test_too_long_lines_name_the_line() -> None:
    limits = Limits(max_line=20)
    with pytest.raises(StatusLineTooLong):
        ResponseParser(limits).receive_data(b"HTTP/1.1 200 " + b"O" * 30 + b"\r\n")
    with pytest.raises(HeaderLineTooLong):
        ResponseParser(limits).receive_data(b"HTTP/1.1 200 OK\r\nX: " + b"v" * 30 + b"\r\n")
    with pytest.raises(RequestLineTooLong):
        RequestParser(limits).receive_data(b"GET /" + b"p" * 30 + b" HTTP/1.1\r\n")
    with pytest.raises(TooManyHeaders):
        RequestParser(Limits(max_headers=1)).receive_data(b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"v" * 30
    with pytest.raises(HeaderLineTooLong):
        ResponseParser(limits).receive_data(chunked + b"\r\n")
