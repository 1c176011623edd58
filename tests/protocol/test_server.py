"""Tests of the server's opening handshake (tether.protocol.server)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from tether.exceptions import (
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidOrigin,
    InvalidProtocol,
    InvalidState,
    InvalidUpgrade,
    NegotiationError,
    RequestLineTooLong,
    SecurityError,
    TooManyHeaders,
)
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from tether.protocol import (
    ClientProtocol,
    Headers,
    Limits,
    Message,
    Ping,
    Request,
    RequestReceived,
    Response,
    ResponseReceived,
    ServerProtocol,
    State,
)
from tether.protocol.frames import Frame, Opcode, serialize_frame
from tether.protocol.handshake import USER_AGENT, accept_key
from tether.protocol.http11 import InvalidMethod
from tether.protocol.server import server_engines

from .handshake_helpers import (
    REFUSE,
    RFC_ACCEPT,
    RFC_KEY,
    XTestExtension,
    XTestServerFactory,
    parse_response,
    replaced,
    request_bytes,
    request_headers,
    state_of,
    without,
)


def received(server: ServerProtocol, data: bytes) -> Request:
    """Feed ``data`` to ``server`` and return the request it read."""
    server.receive_data(data)
    (event,) = server.events()
    assert isinstance(event, RequestReceived)
    assert event.request is server.request
    return event.request


def answer(pairs: Sequence[tuple[str, str]], **kwargs: Any) -> tuple[ServerProtocol, Response]:
    """Give a request with these header fields to a new server; return its answer."""
    server = ServerProtocol(**kwargs)
    response = server.accept(received(server, request_bytes(pairs)))
    return server, response


def assert_accepted(server: ServerProtocol, response: Response) -> None:
    assert server.handshake_exc is None
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Accept"] == RFC_ACCEPT


def assert_refused(
    server: ServerProtocol,
    response: Response,
    status: int,
    exc_type: type[InvalidHandshake],
    *,
    exact: bool = True,
) -> InvalidHandshake:
    """Check an error answer and what sending it does; return the exception."""
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(response.body))
    assert response.headers.get_all("Connection")[0] == "close"
    assert "Sec-WebSocket-Accept" not in response.headers
    text = response.body.decode()
    assert text.startswith("Failed to open a WebSocket connection: ")
    assert text.endswith(".\n")
    assert len(text) < 300
    exc = server.handshake_exc
    assert isinstance(exc, exc_type), repr(exc)
    assert type(exc) is exc_type or not exact, repr(exc)
    assert str(exc) in text
    assert server.state is State.CONNECTING
    server.send_response(response)
    assert state_of(server) is State.CLOSED
    assert server.close_transport
    assert server.handshake_exc is exc
    assert server.extensions == []
    assert server.subprotocol is None
    (data,) = server.data_to_send()
    parsed, leftover = parse_response([data])
    assert parsed == response
    assert leftover == b""
    return exc


# Reading the request


def test_4_2_1_request_received() -> None:
    server = ServerProtocol()
    assert server.state is State.CONNECTING
    request = received(server, request_bytes(request_headers(), path="/chat?room=1"))
    assert request.path == "/chat?room=1"
    assert request.headers["Sec-WebSocket-Key"] == RFC_KEY
    assert server.state is State.CONNECTING
    assert server.data_to_send() == []


def test_4_2_1_request_byte_by_byte() -> None:
    server = ServerProtocol()
    data = request_bytes(request_headers())
    for index in range(len(data) - 1):
        server.receive_data(data[index : index + 1])
    assert server.events() == []
    assert server.request is None
    server.receive_data(data[-1:])
    assert len(server.events()) == 1
    assert server.request is not None


def test_empty_chunks_are_ignored() -> None:
    server = ServerProtocol()
    server.receive_data(b"")
    server.receive_data(memoryview(b""))
    assert server.events() == []
    server.receive_data(bytearray(request_bytes(request_headers())))
    assert len(server.events()) == 1
    server.receive_data(b"")
    assert server.events() == []


# Accepting (RFC 6455 section 4.2.2)


def test_4_2_2_accept_gives_101() -> None:
    server, response = answer(request_headers())
    assert_accepted(server, response)
    assert response.reason_phrase == "Switching Protocols"
    assert response.body == b""
    headers = response.headers
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Server"] == USER_AGENT
    assert headers["Date"].endswith(" GMT")
    assert "Sec-WebSocket-Protocol" not in headers
    assert "Sec-WebSocket-Extensions" not in headers
    assert "Content-Length" not in headers
    assert server.state is State.CONNECTING
    server.send_response(response)
    assert state_of(server) is State.OPEN
    # Packed with the request until read again, then the same at every read.
    assert server.response == response
    assert server.response is server.response
    assert not server.close_transport
    (data,) = server.data_to_send()
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    parsed, leftover = parse_response([data])
    assert parsed == response
    assert leftover == b""


def test_4_2_2_accept_key_rfc_example() -> None:
    _, response = answer(request_headers(RFC_KEY))
    assert response.headers["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_4_2_2_accept_key_of_another_key() -> None:
    key = "AAECAwQFBgcICQoLDA0ODw=="
    _, response = answer(request_headers(key))
    assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)


def test_server_header_replaced() -> None:
    _, response = answer(request_headers(), server_header="my-server/3")
    assert response.headers.get_all("Server") == ["my-server/3"]


def test_server_header_removed() -> None:
    server, response = answer(request_headers(), server_header=None)
    assert "Server" not in response.headers
    assert "Server" not in server.reject(403, "no").headers
    _, refusal = answer(without(request_headers(), "Host"), server_header=None)
    assert "Server" not in refusal.headers


def test_4_2_1_headers_any_case() -> None:
    pairs = [(name.lower(), value) for name, value in request_headers()]
    pairs = [*replaced(pairs, "upgrade", "WebSocket")]
    pairs = [*replaced(pairs, "connection", "keep-alive, UPGRADE")]
    server, response = answer(pairs)
    assert_accepted(server, response)


def test_response_can_be_adjusted_before_sending() -> None:
    server, response = answer(request_headers())
    response.headers["Set-Cookie"] = "session=1"
    server.send_response(response)
    parsed, _ = parse_response(server.data_to_send())
    assert parsed.headers["Set-Cookie"] == "session=1"


def test_with_a_real_client() -> None:
    client = ClientProtocol("ws://example.com:8000/ws?x=1", origin="https://example.com")
    server = ServerProtocol(origins=["https://example.com"])
    client.send_request(client.connect())
    request = received(server, b"".join(client.data_to_send()))
    assert request.path == "/ws?x=1"
    assert request.headers["Host"] == "example.com:8000"
    server.send_response(server.accept(request))
    for data in server.data_to_send():
        client.receive_data(data)
    (event,) = client.events()
    assert isinstance(event, ResponseReceived)
    assert client.state is server.state is State.OPEN


def test_open_connection_keeps_its_handshake_packed() -> None:
    server = ServerProtocol()
    request = received(
        server, request_bytes([*request_headers(), ("X-Custom", "a"), ("x-custom", "")])
    )
    response = server.accept(request)
    response.headers["Set-Cookie"] = "session=1"
    fields = list(request.headers.raw_items()), list(response.headers.raw_items())
    server.send_response(response)
    # Both are one block of bytes until either is read again.
    assert isinstance(server._handshake, bytes)
    assert server._request is None
    assert server._response is None
    again = server.response
    assert again is not None
    assert server._handshake is None
    assert server.request is server.request
    assert server.response is again
    assert server.request is not None
    # Their headers stay packed until they are read, as they were once read.
    assert isinstance(server.request.headers._fields, bytes)
    assert isinstance(again.headers._fields, bytes)
    assert server.request == request
    assert again == response
    assert (again.status_code, again.reason_phrase, again.body) == (101, "Switching Protocols", b"")
    assert server.request.path == request.path
    read = list(server.request.headers.raw_items()), list(again.headers.raw_items())
    assert read == fields
    assert server.request.headers.get_all("x-custom") == ["a", ""]
    assert again.headers["set-cookie"] == "session=1"
    assert state_of(server) is State.OPEN
    with pytest.raises(InvalidState):
        server.send_response(response)


@pytest.mark.parametrize("path", ["/é€", "/a\r\n\r\nb", "/\udc80", ""])
def test_any_path_reads_back_the_same(path: str) -> None:
    # The path ends the block: a hook may have set any string.
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()))
    request.path = path
    response = server.accept(request)
    server.send_response(response)
    assert server._handshake is not None
    assert server.request == request
    assert server.request is not None
    assert server.request.path == path
    assert server.response == response


@pytest.mark.parametrize(
    ("reason", "fields"),
    [
        ("Switching", [("X-Custom", "a")]),
        ("Switching Protocols", [("X-Custom", "a\nb")]),
        ("Switching Protocols", None),
    ],
)
def test_handshake_that_would_not_read_back_the_same_keeps_its_objects(
    reason: str, fields: list[tuple[str, str]] | None
) -> None:
    # A reason phrase of the application's, a field that the block would not
    # give back, no fields: the objects stay, only their headers are packed.
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()))
    response = server.accept(request)
    response.reason_phrase = reason
    if fields is None:
        response.headers._fields.clear()
    else:
        response.headers._fields.extend(fields)
    server.send_response(response)
    assert server._handshake is None
    assert server.request is request
    assert server.response is response
    assert response.headers.get_all("X-Custom") == [value for _, value in fields or []]
    assert request.headers["Upgrade"] == "websocket"


@pytest.mark.parametrize("fields", [[], [("X-Custom", "€")]])
def test_request_set_by_the_application_that_cannot_be_packed_stays(
    fields: list[tuple[str, str]],
) -> None:
    # request and response are settable, as attributes; a request with no
    # fields, or one past Latin-1, is not packed with the response.
    server = ServerProtocol()
    request = Request("/", Headers._adopt(fields))
    response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    server.request = request
    server.response = None
    server.send_response(response)
    assert server._handshake is None
    assert server.request is request
    assert server.response is response
    assert list(request.headers.raw_items()) == fields


def test_request_or_response_set_after_packing_is_what_reads_back() -> None:
    # Setting either while both are packed keeps the value set, and the
    # other reads back as sent.
    server, response = answer(request_headers())
    server.send_response(response)
    assert server._handshake is not None
    other = Request("/other", Headers([("Host", "example.com")]))
    server.request = other
    assert server.request is other
    assert server.response == response
    server, response = answer(request_headers())
    request = server.request
    server.send_response(response)
    server.response = None
    assert server.response is None
    assert server.request == request


def test_request_read_first_unpacks_both() -> None:
    server, response = answer(request_headers())
    request = server.request
    server.send_response(response)
    assert server._handshake is not None
    assert server.request == request
    assert server._handshake is None
    assert server.response == response


def test_response_sent_before_any_request_is_packed_alone() -> None:
    server = ServerProtocol()
    response = Response(101, "Switching Protocols", Headers([("Upgrade", "websocket")]))
    server.send_response(response)
    assert server.request is None
    assert state_of(server) is State.OPEN
    assert response.headers["upgrade"] == "websocket"


def test_refused_handshake_is_not_packed() -> None:
    server = ServerProtocol()
    request = received(server, request_bytes(without(request_headers(), "Host")))
    response = server.accept(request)
    server.send_response(response)
    assert isinstance(request.headers._fields, list)


# Refusing


def test_reject() -> None:
    server = ServerProtocol()
    received(server, request_bytes(request_headers()))
    response = server.reject(403, "Go away.")
    assert response.status_code == 403
    assert response.reason_phrase == "Forbidden"
    # As websockets: the text as given, no newline added.
    assert response.body == b"Go away."
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == "8"
    assert response.headers["Server"] == USER_AGENT
    assert server.handshake_exc is None
    server.send_response(response)
    assert server.state is State.CLOSED
    assert server.close_transport
    exc: object = server.handshake_exc
    assert type(exc) is InvalidHandshake
    assert "403" in str(exc)
    parsed, _ = parse_response(server.data_to_send())
    assert parsed.body == b"Go away."


def test_reject_unregistered_status() -> None:
    response = ServerProtocol().reject(499, "Later.")
    assert response.status_code == 499
    assert response.serialize().startswith(b"HTTP/1.1 499 \r\n")


def test_reject_after_a_valid_request() -> None:
    server, response = answer(request_headers(), extensions=[ServerPerMessageDeflateFactory()])
    assert response.status_code == 101
    server.send_response(server.reject(401, "Log in first."))
    assert server.state is State.CLOSED
    assert server.extensions == []


def test_4_2_1_server_rejects_missing_host_400() -> None:
    server, response = answer(without(request_headers(), "Host"))
    exc = assert_refused(server, response, 400, InvalidHeader)
    assert str(exc) == "missing Host header"


def test_4_2_1_server_rejects_duplicate_host_400() -> None:
    server, response = answer([*request_headers(), ("Host", "other.example")])
    exc = assert_refused(server, response, 400, InvalidHeader)
    assert isinstance(exc, InvalidHeader)
    assert exc.value == "multiple values"


def assert_upgrade_required(response: Response) -> None:
    # RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to, and
    # section 7.8: Upgrade goes with the "upgrade" connection option.
    assert response.reason_phrase == "Upgrade Required"
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers.get_all("Connection") == ["close", "Upgrade"]
    assert b"You need a WebSocket client." in response.body


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(without(request_headers(), "Upgrade"), id="missing"),
        pytest.param(replaced(request_headers(), "Upgrade", "h2c"), id="h2c"),
        pytest.param(replaced(request_headers(), "Upgrade", "websocket, h2c"), id="two"),
        pytest.param([*request_headers(), ("Upgrade", "websocket")], id="twice"),
    ],
)
def test_4_2_1_server_rejects_missing_or_invalid_upgrade_426(
    pairs: list[tuple[str, str]],
) -> None:
    server, response = answer(pairs)
    exc = assert_refused(server, response, 426, InvalidUpgrade)
    assert isinstance(exc, InvalidUpgrade)
    assert exc.name == "Upgrade"
    assert_upgrade_required(response)


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(without(request_headers(), "Connection"), id="missing"),
        pytest.param(replaced(request_headers(), "Connection", "keep-alive"), id="keep-alive"),
        pytest.param(replaced(request_headers(), "Connection", "close"), id="close"),
    ],
)
def test_4_2_1_server_rejects_missing_connection_upgrade_426(
    pairs: list[tuple[str, str]],
) -> None:
    # A request without the "upgrade" option is plain HTTP, not a WebSocket
    # handshake: "426 Upgrade Required" with "Upgrade: websocket" tells the
    # client what this resource needs (RFC 6455 only suggests 400 "such as").
    server, response = answer(pairs)
    exc = assert_refused(server, response, 426, InvalidUpgrade)
    assert isinstance(exc, InvalidUpgrade)
    assert exc.name == "Connection"
    assert_upgrade_required(response)


def test_4_2_1_server_rejects_malformed_connection_400() -> None:
    server, response = answer(replaced(request_headers(), "Connection", "Upgrade;"))
    exc = assert_refused(server, response, 400, InvalidHeaderFormat)
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Connection"


def test_4_2_1_server_rejects_missing_key_400() -> None:
    server, response = answer(without(request_headers(), "Sec-WebSocket-Key"))
    exc = assert_refused(server, response, 400, InvalidHeader)
    assert str(exc) == "missing Sec-WebSocket-Key header"


def test_4_2_1_server_rejects_duplicate_key_400() -> None:
    pairs = [*request_headers(), ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]
    server, response = answer(pairs)
    assert_refused(server, response, 400, InvalidHeader)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("not-base64", id="not-base64"),
        pytest.param("dGhlIHNhbXBsZSBub25jZQ", id="no-padding"),
        pytest.param("AAAAAAAAAAAAAAAAAAAA", id="15-bytes"),
        pytest.param("AAAAAAAAAAAAAAAAAAAAAAA=", id="17-bytes"),
    ],
)
def test_4_2_1_server_rejects_invalid_key_400(key: str) -> None:
    server, response = answer(replaced(request_headers(), "Sec-WebSocket-Key", key))
    exc = assert_refused(server, response, 400, InvalidHeaderValue)
    assert isinstance(exc, InvalidHeaderValue)
    assert exc.name == "Sec-WebSocket-Key"


@pytest.mark.parametrize("version", ["8", "12", "14", "13, 8", "013", "13.0"])
def test_4_2_2_server_rejects_other_versions_426(version: str) -> None:
    server, response = answer(replaced(request_headers(), "Sec-WebSocket-Version", version))
    # A subclass of InvalidHeaderValue, private to the server.
    exc = assert_refused(server, response, 426, InvalidHeaderValue, exact=False)
    assert isinstance(exc, InvalidHeaderValue)
    assert exc.name == "Sec-WebSocket-Version"
    assert exc.value == version
    assert response.headers["Sec-WebSocket-Version"] == "13"
    # RFC 9110 section 15.5.22: a 426 says which protocol to upgrade to.
    assert response.headers["Upgrade"] == "websocket"
    assert response.headers.get_all("Connection") == ["close", "Upgrade"]


def test_4_2_1_server_rejects_missing_version_400() -> None:
    server, response = answer(without(request_headers(), "Sec-WebSocket-Version"))
    exc = assert_refused(server, response, 400, InvalidHeader)
    assert str(exc) == "missing Sec-WebSocket-Version header"


def test_4_2_1_server_rejects_duplicate_version_400() -> None:
    pairs = [*request_headers(), ("Sec-WebSocket-Version", "13")]
    server, response = answer(pairs)
    assert_refused(server, response, 400, InvalidHeader)


def test_4_2_1_checks_in_order() -> None:
    # With several faults, the first check to fail decides.
    pairs = without(without(request_headers(), "Host"), "Upgrade")
    server, response = answer(pairs)
    assert_refused(server, response, 400, InvalidHeader)


# Origins (RFC 6455 section 4.2.1, item 7, and section 10.2)


def with_origin(*origins: str) -> list[tuple[str, str]]:
    return [*request_headers(), *(("Origin", origin) for origin in origins)]


def test_origin_not_checked_by_default() -> None:
    for pairs in (with_origin(), with_origin("https://evil.example")):
        server, response = answer(pairs)
        assert_accepted(server, response)
    # Without a list of origins, duplicates go unchecked too.
    server, response = answer(with_origin("https://a.example", "https://b.example"))
    assert_accepted(server, response)


def test_origin_allowed_string() -> None:
    server, response = answer(
        with_origin("https://example.com"), origins=["https://other.com", "https://example.com"]
    )
    assert_accepted(server, response)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://example.com.evil.example",
        "http://example.com",
        "https://EXAMPLE.com",
        "https://example.com/",
        "null",
        "",
    ],
)
def test_10_2_origin_rejected_403(origin: str) -> None:
    server, response = answer(with_origin(origin), origins=["https://example.com"])
    exc = assert_refused(server, response, 403, InvalidOrigin)
    assert isinstance(exc, InvalidOrigin)
    assert exc.name == "Origin"
    assert exc.value == origin
    assert response.reason_phrase == "Forbidden"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://chat.example.com", True),
        ("https://example.com", True),
        ("https://a.b.example.com", True),
        ("https://chat.example.com.evil.example", False),
        ("https://evil.example/https://chat.example.com", False),
        ("http://chat.example.com", False),
    ],
)
def test_origin_pattern_must_match_whole(origin: str, allowed: bool) -> None:
    pattern = re.compile(r"https://([a-z]+\.)*example\.com")
    server, response = answer(with_origin(origin), origins=[pattern])
    if allowed:
        assert_accepted(server, response)
    else:
        assert_refused(server, response, 403, InvalidOrigin)


def test_origin_none_allows_missing_origin() -> None:
    server, response = answer(with_origin(), origins=["https://example.com", None])
    assert_accepted(server, response)
    server, response = answer(with_origin("https://example.com"), origins=[None])
    assert_refused(server, response, 403, InvalidOrigin)


@pytest.mark.parametrize(
    "origins",
    [
        pytest.param(["https://example.com"], id="string"),
        pytest.param([re.compile(".*")], id="pattern"),
        pytest.param([], id="empty-list"),
    ],
)
def test_10_2_missing_origin_rejected_403(origins: list[str | re.Pattern[str]]) -> None:
    server, response = answer(with_origin(), origins=origins)
    exc = assert_refused(server, response, 403, InvalidOrigin)
    assert str(exc) == "missing Origin header"


def test_duplicate_origin_400() -> None:
    pairs = with_origin("https://example.com", "https://example.com")
    server, response = answer(pairs, origins=["https://example.com"])
    exc = assert_refused(server, response, 400, InvalidHeader)
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Origin"


# Requests too broken to answer with accept(): the engine answers itself


def assert_answered(
    server: ServerProtocol, status: int, exc_type: type[InvalidHandshake]
) -> Response:
    """Check the engine's own answer to an unreadable request."""
    assert server.events() == []
    assert server.request is None
    assert type(server.handshake_exc) is exc_type, repr(server.handshake_exc)
    assert server.state is State.CLOSED
    assert server.close_transport
    response, leftover = parse_response(server.data_to_send())
    assert leftover == b""
    assert response is not None
    assert server.response == response
    assert response.status_code == status
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Length"] == str(len(response.body))
    text = response.body.decode()
    assert text == f"Failed to open a WebSocket connection: {server.handshake_exc}.\n"
    # Anything more is ignored.
    server.receive_data(request_bytes(request_headers()))
    server.receive_eof()
    assert server.events() == []
    assert server.data_to_send() == []
    assert server.state is State.CLOSED
    return response


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "OPTIONS", "CONNECT", "get"])
def test_non_get_method_405(method: str) -> None:
    server = ServerProtocol()
    data = request_bytes(request_headers()).replace(b"GET", method.encode(), 1)
    server.receive_data(data)
    response = assert_answered(server, 405, InvalidMethod)
    assert response.reason_phrase == "Method Not Allowed"
    assert response.headers["Allow"] == "GET"
    assert response.headers["Server"] == USER_AGENT


@pytest.mark.parametrize("version", [b"HTTP/1.0", b"http/1.1"])
def test_other_http_version_505(version: bytes) -> None:
    # As websockets: 505 HTTP Version Not Supported, with InvalidProtocol.
    server = ServerProtocol()
    server.receive_data(b"GET /chat " + version + b"\r\nHost: example.com\r\n\r\n")
    response = assert_answered(server, 505, InvalidProtocol)
    assert response.reason_phrase == "HTTP Version Not Supported"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET /chat HTTP/1.1\nHost: example.com\n\n", id="bare-lf"),
        pytest.param(b"GET chat HTTP/1.1\r\n\r\n", id="target"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", id="tls"),
        pytest.param(b"GET / HTTP/1.1\r\nHost : example.com\r\n\r\n", id="space-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody", id="body"),
        pytest.param(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", id="chunked"),
    ],
)
def test_malformed_request_400(data: bytes) -> None:
    server = ServerProtocol()
    server.receive_data(data)
    response = assert_answered(server, 400, InvalidMessage)
    assert response.reason_phrase == "Bad Request"
    assert "Allow" not in response.headers


def test_request_line_over_limits_431() -> None:
    server = ServerProtocol(limits=Limits(max_line=100))
    server.receive_data(request_bytes(request_headers(), path="/" + "x" * 200))
    response = assert_answered(server, 431, RequestLineTooLong)
    assert response.reason_phrase == "Request Header Fields Too Large"


def test_header_over_limits_431() -> None:
    server = ServerProtocol(limits=Limits(max_line=100))
    server.receive_data(request_bytes([*request_headers(), ("Cookie", "x" * 200)]))
    assert_answered(server, 431, HeaderLineTooLong)


def test_too_many_headers_431() -> None:
    server = ServerProtocol(limits=Limits(max_headers=5))
    server.receive_data(request_bytes([*request_headers(), ("X-Sixth", "1")]))
    assert_answered(server, 431, TooManyHeaders)


def test_over_limits_detected_before_the_line_ends() -> None:
    server = ServerProtocol(limits=Limits(max_line=100))
    server.receive_data(b"GET /" + b"x" * 150)
    assert_answered(server, 431, RequestLineTooLong)


def test_unreadable_request_without_server_header() -> None:
    server = ServerProtocol(server_header=None)
    server.receive_data(b"POST / HTTP/1.1\r\n\r\n")
    response = assert_answered(server, 405, InvalidMethod)
    assert "Server" not in response.headers


# The end of the stream


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"GET /chat HTTP/1.1\r\nHost: exa", id="partial"),
    ],
)
def test_eof_before_request(data: bytes) -> None:
    server = ServerProtocol()
    server.receive_data(data)
    server.receive_eof()
    assert isinstance(server.handshake_exc, InvalidMessage)
    assert server.state is State.CLOSED
    assert server.close_transport
    assert server.eof_received
    assert server.events() == []
    assert server.data_to_send() == []
    with pytest.raises(InvalidState, match="while CLOSED"):
        server.send_response(server.reject(400, "Too late."))


def test_eof_after_request_before_response() -> None:
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()))
    server.receive_eof()
    # The request was fine; the client left before the answer.
    assert server.handshake_exc is None
    assert server.state is State.CLOSED
    with pytest.raises(InvalidState, match="while CLOSED"):
        server.send_response(server.accept(request))
    assert server.data_to_send() == []
    assert server.response is None


def test_eof_after_refusal_keeps_the_reason() -> None:
    server, response = answer(without(request_headers(), "Host"))
    server.send_response(response)
    exc = server.handshake_exc
    server.receive_eof()
    assert server.handshake_exc is exc


def test_eof_after_the_handshake() -> None:
    server, response = answer(request_headers())
    server.send_response(response)
    server.receive_eof()
    assert server.handshake_exc is None
    assert server.state is State.CLOSED


# Bytes that arrive before the response goes out


def ping(data: bytes) -> bytes:
    return serialize_frame(Opcode.PING, data, mask=True)


def test_frames_in_the_request_chunk_wait_for_the_101() -> None:
    server = ServerProtocol()
    data = request_bytes(request_headers())
    text = serialize_frame(Opcode.TEXT, b"early", mask=True)
    request = received(server, data + text + ping(b"a"))
    assert server.events() == []
    response = server.accept(request)
    server.send_response(response)
    assert state_of(server) is State.OPEN
    assert server.events() == [Message("early"), Ping(b"a")]
    handshake, pong = server.data_to_send()
    assert handshake == response.serialize()
    assert pong == serialize_frame(Opcode.PONG, b"a", mask=False)


def test_frames_in_later_chunks_wait_for_the_101() -> None:
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()))
    frame = ping(b"later")
    server.receive_data(frame[:3])
    server.receive_data(frame[3:] + ping(b"more")[:2])
    assert server.events() == []
    assert server.data_to_send() == []
    server.send_response(server.accept(request))
    assert server.events() == [Ping(b"later")]
    server.receive_data(ping(b"more")[2:])
    assert server.events() == [Ping(b"more")]


def test_buffered_bytes_dropped_when_refused() -> None:
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()) + ping(b"x"))
    server.receive_data(ping(b"y"))
    server.send_response(server.reject(403, "No."))
    assert server.events() == []
    (data,) = server.data_to_send()
    assert data.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert request.path == "/chat"


def test_buffered_protocol_error_fails_after_the_101() -> None:
    server = ServerProtocol()
    unmasked = serialize_frame(Opcode.TEXT, b"x", mask=False)  # clients must mask
    request = received(server, request_bytes(request_headers()) + unmasked)
    server.send_response(server.accept(request))
    assert server.error is not None
    assert server.handshake_exc is None
    assert server.close_transport
    assert server.events() == []


def test_early_data_kept_up_to_64_kib() -> None:
    server = ServerProtocol()
    payload = bytes(65536 - 8)  # with its 8-byte header, exactly 64 KiB
    frame = serialize_frame(Opcode.BINARY, payload, mask=True)
    assert len(frame) == 65536
    request = received(server, request_bytes(request_headers()) + frame[:1000])
    server.receive_data(frame[1000:])
    assert server.state is State.CONNECTING
    server.send_response(server.accept(request))
    assert server.events() == [Message(payload)]


def test_early_data_over_64_kib_in_a_later_chunk() -> None:
    # RFC 6455 section 4.1: the client waits for the response before sending
    # more. A client that floods the server meanwhile is dropped.
    server = ServerProtocol()
    request = received(server, request_bytes(request_headers()))
    server.receive_data(bytes(65536))
    assert server.state is State.CONNECTING
    server.receive_data(b"!")
    assert isinstance(server.handshake_exc, SecurityError)
    assert state_of(server) is State.CLOSED
    assert server.close_transport
    assert server.data_to_send() == []
    server.receive_data(b"more")
    server.receive_eof()
    assert isinstance(server.handshake_exc, SecurityError)
    with pytest.raises(InvalidState, match="while CLOSED"):
        server.send_response(server.accept(request))
    assert server.events() == []


def test_early_data_over_64_kib_with_the_request() -> None:
    server = ServerProtocol()
    server.receive_data(request_bytes(request_headers()) + bytes(65537))
    (event,) = server.events()
    assert isinstance(event, RequestReceived)
    assert isinstance(server.handshake_exc, SecurityError)
    assert server.state is State.CLOSED
    assert server.close_transport


def test_send_response_twice() -> None:
    server, response = answer(request_headers())
    server.send_response(response)
    with pytest.raises(InvalidState, match="already sent"):
        server.send_response(response)
    with pytest.raises(InvalidState, match="already sent"):
        server.send_response(server.reject(500, "Oops."))
    assert len(server.data_to_send()) == 1


def test_send_response_twice_after_refusal() -> None:
    server = ServerProtocol()
    received(server, request_bytes(request_headers()))
    server.send_response(server.reject(503, "Busy."))
    with pytest.raises(InvalidState):
        server.send_response(server.reject(503, "Busy."))


def test_no_data_frames_before_the_handshake() -> None:
    server = ServerProtocol()
    with pytest.raises(InvalidState):
        server.send_text("too early")


# Subprotocols (RFC 6455 section 4.2.2, /subprotocol/)


def with_protocols(*values: str) -> list[tuple[str, str]]:
    return [*request_headers(), *(("Sec-WebSocket-Protocol", value) for value in values)]


def test_subprotocol_server_preference_wins() -> None:
    server, response = answer(with_protocols("v1, v2, v3"), subprotocols=["v3", "v2"])
    assert_accepted(server, response)
    assert response.headers["Sec-WebSocket-Protocol"] == "v3"
    assert server.subprotocol == "v3"
    server.send_response(response)
    assert server.subprotocol == "v3"


def test_subprotocol_offered_across_fields() -> None:
    server, response = answer(with_protocols("v1", "v2"), subprotocols=["v2"])
    assert response.headers["Sec-WebSocket-Protocol"] == "v2"
    assert server.subprotocol == "v2"


def test_subprotocol_is_case_sensitive() -> None:
    server, response = answer(with_protocols("Chat"), subprotocols=["chat"])
    exc = assert_refused(server, response, 400, NegotiationError)
    assert str(exc) == "invalid subprotocol; expected one of chat"


def test_subprotocol_none_supported() -> None:
    # A server without subprotocols ignores those the client offers.
    server, response = answer(with_protocols("v1"), subprotocols=[])
    assert_accepted(server, response)
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert server.subprotocol is None


@pytest.mark.parametrize(
    ("offered", "message"),
    [
        pytest.param(("v1, v2",), "invalid subprotocol; expected one of v3, v4", id="none-common"),
        pytest.param((), "missing subprotocol", id="none-offered"),
    ],
)
def test_subprotocol_none_matching_400(offered: tuple[str, ...], message: str) -> None:
    # As websockets: a server with subprotocols refuses a client that shares none.
    server, response = answer(with_protocols(*offered), subprotocols=["v3", "v4"])
    exc = assert_refused(server, response, 400, NegotiationError)
    assert str(exc) == message


def test_select_subprotocol_given_to_accept_replaces_the_engines() -> None:
    server = ServerProtocol(subprotocols=["v3"])
    request = received(server, request_bytes(with_protocols("v1, v2")))
    response = server.accept(request, select_subprotocol=lambda _, offered: offered[-1])
    assert_accepted(server, response)
    assert server.subprotocol == "v2"


def test_select_subprotocol_chooses() -> None:
    calls: list[tuple[ServerProtocol, list[str]]] = []

    def select(server: ServerProtocol, offered: Sequence[str]) -> str | None:
        calls.append((server, list(offered)))
        return offered[-1]

    server, response = answer(
        with_protocols("v1, v2", "v3"), subprotocols=["v1"], select_subprotocol=select
    )
    assert calls == [(server, ["v1", "v2", "v3"])]
    assert response.headers["Sec-WebSocket-Protocol"] == "v3"
    assert server.subprotocol == "v3"


def test_select_subprotocol_returns_none() -> None:
    def select(server: ServerProtocol, offered: Sequence[str]) -> str | None:
        return None

    server, response = answer(with_protocols("v1"), subprotocols=["v1"], select_subprotocol=select)
    assert_accepted(server, response)
    assert "Sec-WebSocket-Protocol" not in response.headers
    assert server.subprotocol is None


def test_select_subprotocol_called_without_offers() -> None:
    calls: list[list[str]] = []

    def select(server: ServerProtocol, offered: Sequence[str]) -> str | None:
        calls.append(list(offered))
        return None

    server, response = answer(request_headers(), select_subprotocol=select)
    assert_accepted(server, response)
    assert calls == [[]]


def test_select_subprotocol_not_offered_400() -> None:
    def select(server: ServerProtocol, offered: Sequence[str]) -> str | None:
        return "v9"

    server, response = answer(with_protocols("v1"), select_subprotocol=select)
    exc = assert_refused(server, response, 400, NegotiationError)
    assert "v9" in str(exc)


def test_select_subprotocol_raises_negotiation_error_400() -> None:
    def select(server: ServerProtocol, offered: Sequence[str]) -> str | None:
        raise NegotiationError("no acceptable subprotocol")

    server, response = answer(with_protocols("v1"), select_subprotocol=select)
    exc = assert_refused(server, response, 400, NegotiationError)
    assert str(exc) == "no acceptable subprotocol"


def test_malformed_subprotocols_400() -> None:
    server, response = answer(with_protocols("v1 v2"), subprotocols=["v1"])
    assert_refused(server, response, 400, InvalidHeaderFormat)


# Extensions (RFC 6455 section 9.1, RFC 7692)


def with_extensions(*values: str) -> list[tuple[str, str]]:
    return [*request_headers(), *(("Sec-WebSocket-Extensions", value) for value in values)]


def test_permessage_deflate_with_a_real_client() -> None:
    client = ClientProtocol(
        "ws://example.com/", extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=11)]
    )
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory(client_max_window_bits=10)])
    request = received(server, client.connect().serialize())
    response = server.accept(request)
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=11; client_max_window_bits=10"
    )
    assert server.extensions == []  # Not before the response is sent.
    server.send_response(response)
    (data,) = server.data_to_send()
    client.receive_data(data)
    assert client.state is server.state is State.OPEN
    (client_extension,) = client.extensions
    (server_extension,) = server.extensions
    assert isinstance(client_extension, PerMessageDeflate)
    assert isinstance(server_extension, PerMessageDeflate)
    assert client_extension.local_max_window_bits == server_extension.remote_max_window_bits == 10
    assert client_extension.remote_max_window_bits == server_extension.local_max_window_bits == 11
    client.send_text("squeeze " * 50)
    for chunk in client.data_to_send():
        server.receive_data(chunk)
    assert server.events() == [Message("squeeze " * 50)]


def test_permessage_deflate_second_offer_accepted() -> None:
    # The server requires client_max_window_bits, which only the second offer has.
    client = ClientProtocol(
        "ws://example.com/",
        extensions=[
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
            ClientPerMessageDeflateFactory(client_max_window_bits=True),
        ],
    )
    server = ServerProtocol(
        extensions=[
            ServerPerMessageDeflateFactory(
                client_max_window_bits=9, require_client_max_window_bits=True
            )
        ]
    )
    request = client.connect()
    assert request.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate, permessage-deflate; client_max_window_bits"
    )
    response = server.accept(received(server, request.serialize()))
    assert response.headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; client_max_window_bits=9"
    )
    server.send_response(response)
    client.receive_data(b"".join(server.data_to_send()))
    assert client.state is State.OPEN
    (extension,) = server.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert extension.remote_max_window_bits == 9
    (extension,) = client.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert extension.local_max_window_bits == 9


def test_permessage_deflate_all_offers_declined() -> None:
    server, response = answer(
        with_extensions("permessage-deflate; server_max_window_bits=20"),
        extensions=[ServerPerMessageDeflateFactory()],
    )
    assert_accepted(server, response)
    assert "Sec-WebSocket-Extensions" not in response.headers
    server.send_response(response)
    assert server.extensions == []


def test_permessage_deflate_accepted_once() -> None:
    server, response = answer(
        with_extensions("permessage-deflate", "permessage-deflate"),
        extensions=[ServerPerMessageDeflateFactory()],
    )
    assert response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"
    server.send_response(response)
    assert len(server.extensions) == 1


def test_unknown_extension_ignored() -> None:
    server, response = answer(
        with_extensions("x-unknown; level=3, permessage-deflate; client_max_window_bits"),
        extensions=[ServerPerMessageDeflateFactory()],
    )
    assert_accepted(server, response)
    assert response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate"


def test_only_unknown_extensions() -> None:
    server, response = answer(
        with_extensions("x-unknown", "x-other; a=1"), extensions=[ServerPerMessageDeflateFactory()]
    )
    assert_accepted(server, response)
    assert "Sec-WebSocket-Extensions" not in response.headers


def test_extensions_offered_to_a_server_without_any() -> None:
    server, response = answer(with_extensions("permessage-deflate"))
    assert_accepted(server, response)
    assert "Sec-WebSocket-Extensions" not in response.headers
    server.send_response(response)
    assert server.extensions == []


def test_extensions_in_the_clients_order() -> None:
    xtest = XTestServerFactory()
    server, response = answer(
        with_extensions("permessage-deflate", "x-test; a=1"),
        extensions=[xtest, ServerPerMessageDeflateFactory()],
    )
    assert response.headers["Sec-WebSocket-Extensions"] == "permessage-deflate, x-test; a=1"
    # The factory was told which extensions were accepted before its own.
    ((params, accepted),) = xtest.seen
    assert params == [("a", "1")]
    (first,) = accepted
    assert isinstance(first, PerMessageDeflate)
    server.send_response(response)
    pmd, mine = server.extensions
    assert isinstance(pmd, PerMessageDeflate)
    assert isinstance(mine, XTestExtension)


def test_extension_offer_declined_then_next_offer_accepted() -> None:
    xtest = XTestServerFactory()
    _, response = answer(with_extensions("x-test; refuse, x-test; b=2"), extensions=[xtest])
    assert [params for params, _ in xtest.seen] == [[REFUSE], [("b", "2")]]
    assert response.headers["Sec-WebSocket-Extensions"] == "x-test; b=2"


def test_extension_tried_with_each_factory_of_its_name() -> None:
    first, second = XTestServerFactory(), XTestServerFactory()
    _, response = answer(with_extensions("x-test; refuse"), extensions=[first, second])
    assert len(first.seen) == len(second.seen) == 1
    assert "Sec-WebSocket-Extensions" not in response.headers


@pytest.mark.parametrize(
    "value",
    ["permessage-deflate;", "permessage-deflate; a=", ";", "x y", 'x; a="b c"'],
)
def test_malformed_extensions_400(value: str) -> None:
    server, response = answer(with_extensions(value), extensions=[ServerPerMessageDeflateFactory()])
    exc = assert_refused(server, response, 400, InvalidHeaderFormat)
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Sec-WebSocket-Extensions"


def test_extensions_pending_until_the_101() -> None:
    # A refusal after negotiation leaves no extension behind.
    server, response = answer(
        with_extensions("permessage-deflate"),
        extensions=[ServerPerMessageDeflateFactory()],
        subprotocols=["v1"],
        select_subprotocol=lambda server, offered: "v2",
    )
    assert_refused(server, response, 400, NegotiationError)


def test_buffered_compressed_frame_decoded_after_101() -> None:
    # Frames that came early go through the extensions negotiated by the 101.
    compressor = PerMessageDeflate(
        remote_no_context_takeover=False,
        local_no_context_takeover=False,
        remote_max_window_bits=15,
        local_max_window_bits=15,
    )
    frame = compressor.encode(Frame(Opcode.TEXT, b"early and compressed " * 5))
    assert frame.rsv1
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    request = received(
        server, request_bytes(with_extensions("permessage-deflate")) + frame.serialize(mask=True)
    )
    server.receive_data(ping(b"hb"))
    server.send_response(server.accept(request))
    assert server.events() == [Message("early and compressed " * 5), Ping(b"hb")]
    _, pong = server.data_to_send()
    assert pong == serialize_frame(Opcode.PONG, b"hb", mask=False)


def test_headers_object_is_the_requests() -> None:
    server = ServerProtocol()
    request = received(server, request_bytes([*request_headers(), ("X-A", "1"), ("x-a", "2")]))
    assert isinstance(request.headers, Headers)
    assert request.headers.get_all("X-A") == ["1", "2"]


SERVE_OPTIONS: dict[str, Any] = {
    "origins": None,
    "extensions": None,
    "subprotocols": None,
    "select_subprotocol": None,
    "server_header": USER_AGENT,
    "max_size": 1024,
}


def test_server_engines_make_a_fresh_engine_each_time() -> None:
    deflate = [ServerPerMessageDeflateFactory()]
    engines = server_engines(**{**SERVE_OPTIONS, "extensions": deflate, "subprotocols": ["a"]})
    first, second = engines(), engines()
    assert first is not second
    assert first.streaming
    assert first.max_size == 1024
    assert first.available_subprotocols == ("a",)
    assert first.available_extensions == tuple(deflate)
    # Made once for all the engines of a server.
    assert second.available_extensions is first.available_extensions


def test_server_engines_refuse_a_bad_option_at_once() -> None:
    with pytest.raises(ValueError, match="max_size"):
        server_engines(**{**SERVE_OPTIONS, "max_size": -1})
