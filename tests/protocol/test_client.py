"""Tests of the client's opening handshake (tether.protocol.client)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tether.exceptions import (
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
    StatusLineTooLong,
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
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    State,
    parse_uri,
)
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.handshake import USER_AGENT, accept_key, check_key
from tether.protocol.headers import HeadersLike
from tether.version import __version__

from .handshake_helpers import (
    REFUSE,
    XTestClientFactory,
    XTestExtension,
    parse_request,
    response_bytes,
    response_headers,
    state_of,
)


def started(uri: str = "ws://example.com/chat", **kwargs: Any) -> ClientProtocol:
    """A client that has sent its request; its output is drained."""
    client = ClientProtocol(uri, **kwargs)
    client.send_request(client.connect())
    client.data_to_send()
    return client


def ok_response(client: ClientProtocol, *extra: tuple[str, str]) -> bytes:
    """A valid 101 answer to ``client``, with these extra fields."""
    return response_bytes(response_headers(accept_key(client.key), *extra))


def assert_failed(client: ClientProtocol, exc_type: type[InvalidHandshake]) -> InvalidHandshake:
    """Check that the handshake failed with ``exc_type`` and closed; return the exception."""
    exc = client.handshake_exc
    assert isinstance(exc, exc_type), repr(exc)
    assert client.state is State.CLOSED
    assert client.close_transport
    assert client.subprotocol is None
    assert client.extensions == []
    assert client.data_to_send() == []
    return exc


def request_of(client: ClientProtocol) -> Headers:
    """The headers of the request ``client`` builds."""
    return client.connect().headers


# Building the request (RFC 6455 section 4.1)


def test_4_1_client_request_has_required_headers() -> None:
    client = ClientProtocol("ws://example.com/chat")
    assert client.state is State.CONNECTING
    assert client.data_to_send() == []
    request = client.connect()
    client.send_request(request)
    (data,) = client.data_to_send()
    assert data.startswith(b"GET /chat HTTP/1.1\r\n")
    parsed = parse_request([data])
    assert parsed.path == "/chat"
    headers = parsed.headers
    assert headers["Host"] == "example.com"
    assert headers["Upgrade"] == "websocket"
    assert headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Key"] == client.key
    check_key(headers["Sec-WebSocket-Key"])
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["User-Agent"] == USER_AGENT
    for name in ("Origin", "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Authorization"):
        assert name not in headers
    assert client.request is request
    assert client.response is None


def test_4_1_nonce_is_fresh_for_each_connection() -> None:
    keys = {ClientProtocol("ws://example.com/").key for _ in range(10)}
    assert len(keys) == 10
    for key in keys:
        assert len(base64.b64decode(key, validate=True)) == 16


def test_4_1_connect_repeats_the_same_key() -> None:
    client = ClientProtocol("ws://example.com/")
    assert request_of(client)["Sec-WebSocket-Key"] == request_of(client)["Sec-WebSocket-Key"]


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("ws://example.com", "/"),
        ("ws://example.com/", "/"),
        ("ws://example.com/chat", "/chat"),
        ("ws://example.com/chat?room=1&user=2", "/chat?room=1&user=2"),
        ("ws://example.com?x=1", "/?x=1"),
        ("wss://example.com/a/b/c/", "/a/b/c/"),
        ("ws://example.com/caf%C3%A9", "/caf%C3%A9"),
    ],
)
def test_4_1_request_line_has_resource_name(uri: str, path: str) -> None:
    client = ClientProtocol(uri)
    assert client.connect().path == path
    assert client.connect().serialize().startswith(f"GET {path} HTTP/1.1\r\n".encode())


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        ("ws://example.com/", "example.com"),
        ("ws://example.com:80/", "example.com"),
        ("ws://example.com:443/", "example.com:443"),
        ("ws://example.com:8080/", "example.com:8080"),
        ("wss://example.com/", "example.com"),
        ("wss://example.com:443/", "example.com"),
        ("wss://example.com:80/", "example.com:80"),
        ("ws://127.0.0.1:8765/", "127.0.0.1:8765"),
        ("ws://[::1]/", "[::1]"),
        ("ws://[::1]:80/", "[::1]"),
        ("ws://[2001:db8::1]:9000/", "[2001:db8::1]:9000"),
        ("wss://[2001:DB8::1]/", "[2001:db8::1]"),
        ("ws://user:pass@example.com:8080/", "example.com:8080"),
    ],
)
def test_4_1_host_header(uri: str, host: str) -> None:
    assert request_of(ClientProtocol(uri))["Host"] == host


def test_client_accepts_a_parsed_uri() -> None:
    uri = parse_uri("wss://example.com:8443/feed?x=1")
    client = ClientProtocol(uri)
    assert client.uri is uri
    request = client.connect()
    assert request.path == "/feed?x=1"
    assert request.headers["Host"] == "example.com:8443"


def test_4_1_origin() -> None:
    client = ClientProtocol("ws://example.com/", origin="https://example.com")
    assert request_of(client)["Origin"] == "https://example.com"


def test_4_1_extensions_from_factories() -> None:
    client = ClientProtocol(
        "ws://example.com/",
        extensions=[
            ClientPerMessageDeflateFactory(server_max_window_bits=10),
            XTestClientFactory(("level", "1"), ("fast", None)),
        ],
    )
    assert request_of(client)["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits, "
        "x-test; level=1; fast"
    )


def test_4_1_subprotocols() -> None:
    client = ClientProtocol("ws://example.com/", subprotocols=["chat.v2", "chat.v1"])
    assert request_of(client)["Sec-WebSocket-Protocol"] == "chat.v2, chat.v1"


def test_empty_lists_send_no_header() -> None:
    client = ClientProtocol("ws://example.com/", extensions=[], subprotocols=[])
    headers = request_of(client)
    assert "Sec-WebSocket-Extensions" not in headers
    assert "Sec-WebSocket-Protocol" not in headers


@pytest.mark.parametrize(
    ("uri", "credentials"),
    [
        ("ws://user:pass@example.com/", "user:pass"),
        ("ws://user@example.com/", "user:"),
        ("ws://user:@example.com/", "user:"),
        ("ws://us%C3%A9r:p%40ss%3A1@example.com/", "usér:p@ss:1"),
    ],
)
def test_authorization_from_user_info(uri: str, credentials: str) -> None:
    headers = request_of(ClientProtocol(uri))
    expected = base64.b64encode(credentials.encode()).decode()
    assert headers["Authorization"] == f"Basic {expected}"
    assert "@" not in headers["Host"]


def test_authorization_rfc_7617_example() -> None:
    headers = request_of(ClientProtocol("ws://Aladdin:open%20sesame@example.com/"))
    assert headers["Authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="


@pytest.mark.parametrize(
    "additional",
    [
        pytest.param({"X-Token": "abc", "Cookie": "a=1"}, id="dict"),
        pytest.param([("X-Token", "abc"), ("Cookie", "a=1")], id="pairs"),
        pytest.param(Headers([("X-Token", "abc"), ("Cookie", "a=1")]), id="headers"),
    ],
)
def test_additional_headers(additional: HeadersLike) -> None:
    headers = request_of(ClientProtocol("ws://example.com/", additional_headers=additional))
    assert headers["X-Token"] == "abc"
    assert headers["Cookie"] == "a=1"
    # They come after the handshake's own headers.
    names = [name for name, _ in headers.raw_items()]
    assert names.index("Sec-WebSocket-Version") < names.index("X-Token")


def test_additional_headers_pairs_keep_duplicates() -> None:
    pairs = [("Cookie", "a=1"), ("X-Other", "y"), ("cookie", "b=2")]
    headers = request_of(ClientProtocol("ws://example.com/", additional_headers=pairs))
    assert headers.get_all("Cookie") == ["a=1", "b=2"]


def test_additional_headers_object_keeps_duplicates() -> None:
    additional = Headers([("Cookie", "a=1"), ("Cookie", "b=2")])
    headers = request_of(ClientProtocol("ws://example.com/", additional_headers=additional))
    assert headers.get_all("Cookie") == ["a=1", "b=2"]


def test_user_agent_default() -> None:
    user_agent = request_of(ClientProtocol("ws://example.com/"))["User-Agent"]
    assert user_agent == USER_AGENT
    python, tether = user_agent.split(" ")
    assert python.startswith("Python/3.")
    assert tether == f"tether/{__version__}"


def test_user_agent_replaced() -> None:
    client = ClientProtocol("ws://example.com/", user_agent_header="my-app/2.0")
    assert request_of(client).get_all("User-Agent") == ["my-app/2.0"]


def test_user_agent_removed() -> None:
    client = ClientProtocol("ws://example.com/", user_agent_header=None)
    assert "User-Agent" not in request_of(client)


@pytest.mark.parametrize("name", ["User-Agent", "user-agent", "USER-AGENT"])
def test_user_agent_from_additional_headers_not_duplicated(name: str) -> None:
    client = ClientProtocol("ws://example.com/", additional_headers={name: "other/1.0"})
    assert request_of(client).get_all("User-Agent") == ["other/1.0"]


def test_request_can_be_adjusted_before_sending() -> None:
    client = ClientProtocol("ws://example.com/")
    request = client.connect()
    request.headers["X-Extra"] = "1"
    client.send_request(request)
    (data,) = client.data_to_send()
    assert parse_request([data]).headers["X-Extra"] == "1"


def test_send_request_twice() -> None:
    client = ClientProtocol("ws://example.com/")
    client.send_request(client.connect())
    with pytest.raises(InvalidState, match="already sent"):
        client.send_request(client.connect())
    assert len(client.data_to_send()) == 1


def test_send_request_after_the_handshake() -> None:
    client = started()
    client.receive_data(ok_response(client))
    with pytest.raises(InvalidState):
        client.send_request(client.connect())
    assert client.data_to_send() == []


def test_send_request_after_eof() -> None:
    client = ClientProtocol("ws://example.com/")
    client.receive_eof()
    with pytest.raises(InvalidState, match="while CLOSED"):
        client.send_request(client.connect())
    assert client.request is None


def test_no_data_frames_before_the_handshake() -> None:
    client = started()
    with pytest.raises(InvalidState):
        client.send_text("too early")


# Reading the response (RFC 6455 section 4.1, from "the client MUST validate")


def test_4_1_101_opens_the_connection() -> None:
    client = started()
    data = ok_response(client)
    client.receive_data(data)
    (event,) = client.events()
    assert isinstance(event, ResponseReceived)
    assert event.response is client.response
    assert event.response.status_code == 101
    assert event.response.headers["Sec-WebSocket-Accept"] == accept_key(client.key)
    assert client.state is State.OPEN
    assert client.handshake_exc is None
    assert not client.close_transport
    assert client.subprotocol is None
    assert client.extensions == []
    assert client.data_to_send() == []
    client.send_text("hi")
    assert len(client.data_to_send()) == 1


def test_4_1_101_byte_by_byte() -> None:
    client = started()
    data = ok_response(client)
    for index in range(len(data) - 1):
        client.receive_data(data[index : index + 1])
        assert client.events() == []
        assert client.state is State.CONNECTING
    client.receive_data(data[-1:])
    assert len(client.events()) == 1
    assert client.state is State.OPEN


def test_empty_chunks_are_ignored() -> None:
    client = started()
    client.receive_data(b"")
    client.receive_data(bytearray())
    assert client.events() == []
    assert state_of(client) is State.CONNECTING
    client.receive_data(memoryview(ok_response(client)))
    assert client.state is State.OPEN


def test_4_1_subprotocol_set() -> None:
    client = started(subprotocols=["chat.v2", "chat.v1"])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Protocol", "chat.v1")))
    assert client.state is State.OPEN
    assert client.subprotocol == "chat.v1"


def test_4_1_extensions_set() -> None:
    client = started(extensions=[ClientPerMessageDeflateFactory()])
    answer = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=10")
    client.receive_data(ok_response(client, answer))
    assert client.state is State.OPEN
    (extension,) = client.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert extension.local_max_window_bits == 10
    assert extension.remote_max_window_bits == 15


def test_4_1_extensions_in_order_across_fields() -> None:
    pmd = ClientPerMessageDeflateFactory()
    xtest = XTestClientFactory()
    client = started(extensions=[pmd, xtest])
    client.receive_data(
        ok_response(
            client,
            ("Sec-WebSocket-Extensions", "x-test; a=1"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        )
    )
    assert client.state is State.OPEN
    first, second = client.extensions
    # The server's order is the order in which they apply, not the offer's.
    assert isinstance(first, XTestExtension)
    assert first.params == [("a", "1")]
    assert isinstance(second, PerMessageDeflate)


def test_4_1_extension_answered_by_a_later_factory_of_the_same_name() -> None:
    # Two offers of x-test: the answer does not suit the first factory.
    first = XTestClientFactory(("a", "1"), refuse=True)
    second = XTestClientFactory(("a", "2"))
    client = started(extensions=[first, second])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "x-test; a=2")))
    assert first.seen == second.seen == [[("a", "2")]]
    assert client.state is State.OPEN
    (extension,) = client.extensions
    assert isinstance(extension, XTestExtension)
    assert extension.params == [("a", "2")]


def test_4_1_extension_refused_by_every_factory() -> None:
    first = XTestClientFactory(refuse=True)
    second = XTestClientFactory()
    client = started(extensions=[first, second])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "x-test; refuse")))
    assert first.seen == second.seen == [[REFUSE]]
    exc = assert_failed(client, NegotiationError)
    assert "x-test" in str(exc)
    assert str(exc.__cause__) == "x-test answer refused"


def test_4_1_extension_not_offered_has_no_cause() -> None:
    client = started(extensions=[XTestClientFactory()])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "x-other")))
    exc = assert_failed(client, NegotiationError)
    assert exc.__cause__ is None


def test_4_1_permessage_deflate_second_offer_accepted() -> None:
    # The first offer forbids client_max_window_bits, the second allows it.
    client = started(
        extensions=[
            ClientPerMessageDeflateFactory(client_max_window_bits=None),
            ClientPerMessageDeflateFactory(client_max_window_bits=True),
        ]
    )
    answer = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=9")
    client.receive_data(ok_response(client, answer))
    assert client.state is State.OPEN
    (extension,) = client.extensions
    assert isinstance(extension, PerMessageDeflate)
    assert extension.local_max_window_bits == 9


def test_4_1_frames_after_101_in_the_same_chunk() -> None:
    client = started()
    frames = serialize_frame(Opcode.TEXT, b"hello", mask=False) + serialize_frame(
        Opcode.PING, b"hb", mask=False
    )
    client.receive_data(ok_response(client) + frames)
    response, *rest = client.events()
    assert isinstance(response, ResponseReceived)
    assert rest == [Message("hello"), Ping(b"hb")]
    assert client.state is State.OPEN
    (pong,) = client.data_to_send()
    assert pong[0] == 0x8A  # The pong was queued.


def test_4_1_compressed_frame_after_101_in_the_same_chunk() -> None:
    client = started(extensions=[ClientPerMessageDeflateFactory()])
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    server.receive_data(client.connect().serialize())
    (event,) = server.events()
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    server.send_text("compressed " * 10)
    client.receive_data(b"".join(server.data_to_send()))
    response, message = client.events()
    assert isinstance(response, ResponseReceived)
    assert message == Message("compressed " * 10)


def test_4_1_frames_after_101_in_a_partial_frame() -> None:
    client = started()
    frame = serialize_frame(Opcode.BINARY, b"0123456789", mask=False)
    client.receive_data(ok_response(client) + frame[:4])
    assert len(client.events()) == 1
    client.receive_data(frame[4:])
    assert client.events() == [Message(b"0123456789")]


def test_4_1_protocol_error_in_leftover_fails_the_open_connection() -> None:
    client = started()
    masked = serialize_frame(Opcode.TEXT, b"x", mask=True)  # servers must not mask
    client.receive_data(ok_response(client) + masked)
    assert len(client.events()) == 1
    assert client.handshake_exc is None
    assert client.error is not None
    assert client.close_transport


@pytest.mark.parametrize(
    ("status", "reason", "extra", "body", "wire_body"),
    [
        pytest.param(
            403,
            "Forbidden",
            [("Content-Type", "text/plain"), ("Content-Length", "10")],
            b"Forbidden\n",
            b"Forbidden\n",
            id="403-content-length",
        ),
        pytest.param(
            404,
            "Not Found",
            [("Transfer-Encoding", "chunked")],
            b"no such chat room",
            b"5\r\nno su\r\nc\r\nch chat room\r\n0\r\n\r\n",
            id="404-chunked",
        ),
        pytest.param(
            302, "Found", [("Location", "/elsewhere"), ("Content-Length", "0")], b"", b"", id="302"
        ),
        pytest.param(200, "OK", [("Content-Length", "2")], b"ok", b"ok", id="200"),
        pytest.param(204, "No Content", [], b"", b"", id="204"),
    ],
)
def test_4_1_non_101_status_fails(
    status: int, reason: str, extra: list[tuple[str, str]], body: bytes, wire_body: bytes
) -> None:
    client = started()
    client.receive_data(response_bytes(extra, status, reason, wire_body))
    (event,) = client.events()
    assert isinstance(event, ResponseReceived)
    exc = assert_failed(client, InvalidStatus)
    assert isinstance(exc, InvalidStatus)
    assert exc.response is event.response is client.response
    assert exc.response.status_code == status
    assert exc.response.reason_phrase == reason
    assert exc.response.body == body
    assert f"HTTP {status}" in str(exc)


def test_4_1_interim_responses_before_the_101_are_skipped() -> None:
    # RFC 9110 section 15.2: a client must read past 1xx responses it did
    # not ask for; only the final response answers the handshake.
    client = started()
    client.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert client.events() == []
    assert client.response is None
    client.receive_data(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok_response(client))
    (event,) = client.events()
    assert isinstance(event, ResponseReceived)
    assert event.response.status_code == 101
    assert client.state is State.OPEN


def test_4_1_non_101_with_body_until_eof() -> None:
    client = started()
    client.receive_data(response_bytes([], 500, "Internal Server Error", b"it broke"))
    client.receive_data(b", badly")
    assert client.events() == []
    assert client.state is State.CONNECTING
    client.receive_eof()
    (event,) = client.events()
    assert isinstance(event, ResponseReceived)
    exc = assert_failed(client, InvalidStatus)
    assert isinstance(exc, InvalidStatus)
    assert exc.response.status_code == 500
    assert exc.response.body == b"it broke, badly"
    assert client.eof_received


def test_4_1_101_is_required_even_with_valid_headers() -> None:
    client = started()
    headers = response_headers(accept_key(client.key), ("Content-Length", "0"))
    client.receive_data(response_bytes(headers, 200, "OK"))
    assert_failed(client, InvalidStatus)


def test_4_1_body_of_a_refusal_arriving_in_pieces() -> None:
    client = started()
    data = response_bytes([("Content-Length", "5")], 403, "Forbidden", b"nope!")
    client.receive_data(data[:-3])
    assert client.state is State.CONNECTING
    assert client.events() == []
    client.receive_data(data[-3:])
    assert_failed(client, InvalidStatus)


def test_data_after_handshake_failure_is_ignored() -> None:
    client = started()
    refusal = response_bytes([("Content-Length", "0")], 403, "Forbidden")
    client.receive_data(refusal + serialize_frame(Opcode.TEXT, b"ignored", mask=False))
    assert len(client.events()) == 1
    exc = client.handshake_exc
    client.receive_data(serialize_frame(Opcode.PING, b"", mask=False))
    client.receive_data(b"garbage")
    client.receive_eof()
    assert client.events() == []
    assert client.data_to_send() == []
    assert client.handshake_exc is exc
    assert client.state is State.CLOSED


def test_4_1_accept_wrong() -> None:
    client = started()
    client.receive_data(response_bytes(response_headers(accept_key("something else"))))
    exc = assert_failed(client, InvalidHeaderValue)
    assert isinstance(exc, InvalidHeaderValue)
    assert exc.name == "Sec-WebSocket-Accept"
    assert exc.value == accept_key("something else")


def test_4_1_accept_of_a_replayed_handshake_is_wrong() -> None:
    # The RFC's example answer is right for the RFC's key only.
    client = started()
    client.receive_data(response_bytes(response_headers("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")))
    assert_failed(client, InvalidHeaderValue)


def test_4_1_accept_missing() -> None:
    client = started()
    client.receive_data(response_bytes([("Upgrade", "websocket"), ("Connection", "Upgrade")]))
    exc = assert_failed(client, InvalidHeader)
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Sec-WebSocket-Accept"
    assert exc.value is None


def test_4_1_accept_repeated() -> None:
    client = started()
    accept = accept_key(client.key)
    client.receive_data(response_bytes(response_headers(accept, ("Sec-WebSocket-Accept", accept))))
    exc = assert_failed(client, InvalidHeader)
    assert isinstance(exc, InvalidHeader)
    assert exc.value == "multiple values"


@pytest.mark.parametrize(
    ("pairs", "name"),
    [
        pytest.param([("Connection", "Upgrade")], "Upgrade", id="no-upgrade"),
        pytest.param([("Upgrade", "websocket")], "Connection", id="no-connection"),
        pytest.param([("Connection", "Upgrade"), ("Upgrade", "h2c")], "Upgrade", id="h2c"),
        pytest.param(
            [("Connection", "keep-alive"), ("Upgrade", "websocket")], "Connection", id="keep-alive"
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket, h2c")], "Upgrade", id="two"
        ),
    ],
)
def test_4_1_upgrade_and_connection_required(pairs: list[tuple[str, str]], name: str) -> None:
    client = started()
    client.receive_data(response_bytes([*pairs, ("Sec-WebSocket-Accept", accept_key(client.key))]))
    exc = assert_failed(client, InvalidUpgrade)
    assert isinstance(exc, InvalidUpgrade)
    assert exc.name == name


def test_4_1_upgrade_and_connection_any_case() -> None:
    client = started()
    client.receive_data(
        response_bytes(
            [
                ("upgrade", "WebSocket"),
                ("connection", "keep-alive, UPGRADE"),
                ("sec-websocket-accept", accept_key(client.key)),
            ]
        )
    )
    assert client.state is State.OPEN


def test_4_1_subprotocol_not_offered() -> None:
    client = started(subprotocols=["chat.v1"])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Protocol", "chat.v2")))
    exc = assert_failed(client, NegotiationError)
    assert "chat.v2" in str(exc)


def test_4_1_subprotocol_when_none_offered() -> None:
    client = started()
    client.receive_data(ok_response(client, ("Sec-WebSocket-Protocol", "chat.v1")))
    assert_failed(client, NegotiationError)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([("Sec-WebSocket-Protocol", "chat.v1, chat.v2")], id="one-field"),
        pytest.param(
            [("Sec-WebSocket-Protocol", "chat.v1"), ("Sec-WebSocket-Protocol", "chat.v2")],
            id="two-fields",
        ),
        pytest.param(
            [("Sec-WebSocket-Protocol", "chat.v1"), ("Sec-WebSocket-Protocol", "chat.v1")],
            id="same-twice",
        ),
    ],
)
def test_4_1_several_subprotocols(extra: list[tuple[str, str]]) -> None:
    client = started(subprotocols=["chat.v1", "chat.v2"])
    client.receive_data(ok_response(client, *extra))
    exc = assert_failed(client, InvalidHeader)
    assert isinstance(exc, InvalidHeader)
    assert exc.name == "Sec-WebSocket-Protocol"


def test_4_1_malformed_subprotocol() -> None:
    client = started(subprotocols=["chat.v1"])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Protocol", "chat v1")))
    assert_failed(client, InvalidHeaderFormat)


def test_4_1_extension_not_offered() -> None:
    client = started()
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "permessage-deflate")))
    exc = assert_failed(client, NegotiationError)
    assert "permessage-deflate" in str(exc)


def test_4_1_extension_of_another_name_not_offered() -> None:
    client = started(extensions=[ClientPerMessageDeflateFactory()])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "x-test")))
    assert_failed(client, NegotiationError)


def test_4_1_extension_refused_by_the_factory() -> None:
    # The client offered server_max_window_bits=10; a larger window is refused.
    client = started(extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)])
    answer = ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=12")
    client.receive_data(ok_response(client, answer))
    exc = assert_failed(client, NegotiationError)
    # The factory's own reason is kept as the cause.
    assert isinstance(exc.__cause__, NegotiationError)
    assert "server_max_window_bits=12" in str(exc.__cause__)


def test_4_1_extension_accepted_twice() -> None:
    client = started(extensions=[ClientPerMessageDeflateFactory()])
    answer = ("Sec-WebSocket-Extensions", "permessage-deflate, permessage-deflate")
    client.receive_data(ok_response(client, answer))
    assert_failed(client, NegotiationError)


def test_4_1_malformed_extensions() -> None:
    client = started(extensions=[ClientPerMessageDeflateFactory()])
    client.receive_data(ok_response(client, ("Sec-WebSocket-Extensions", "permessage-deflate;")))
    assert_failed(client, InvalidHeaderFormat)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"HTTP/1.0 101 Switching Protocols\r\n\r\n", id="http-1.0"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\n\n", id="bare-lf"),
        pytest.param(b"HTTP/1.1 1O1 Switching Protocols\r\n\r\n", id="bad-status"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n", id="not-http"),
        pytest.param(b"HTTP/1.1 101 OK\r\nUpgrade websocket\r\n\r\n", id="no-colon"),
        pytest.param(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n folded\r\n\r\n", id="folding"),
    ],
)
def test_malformed_response(data: bytes) -> None:
    client = started()
    client.receive_data(data)
    assert client.events() == []
    assert_failed(client, InvalidMessage)


def test_response_over_limits() -> None:
    client = started(limits=Limits(max_line=100))
    client.receive_data(ok_response(client, ("X-Long", "x" * 200)))
    assert client.events() == []
    assert_failed(client, HeaderLineTooLong)


def test_status_line_over_limits() -> None:
    client = started(limits=Limits(max_line=20))
    client.receive_data(b"HTTP/1.1 101 " + b"S" * 30 + b"\r\n")
    assert_failed(client, StatusLineTooLong)


def test_response_body_over_limits() -> None:
    client = started(limits=Limits(max_body=10))
    client.receive_data(response_bytes([("Content-Length", "11")], 403, "Forbidden"))
    assert_failed(client, SecurityError)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"HTTP/1.1 101 Switching", id="status-line"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n", id="head"),
        pytest.param(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nForb", id="body"),
    ],
)
def test_eof_during_handshake(data: bytes) -> None:
    client = started()
    client.receive_data(data)
    client.receive_eof()
    assert client.events() == []
    exc = assert_failed(client, InvalidMessage)
    assert isinstance(exc.__cause__, EOFError)
    assert client.eof_received


def test_eof_after_the_handshake() -> None:
    client = started()
    client.receive_data(ok_response(client))
    client.events()
    client.receive_eof()
    assert client.handshake_exc is None
    assert client.state is State.CLOSED
    assert client.close_code == 1006


def test_eof_twice_during_handshake() -> None:
    client = started()
    client.receive_eof()
    exc = client.handshake_exc
    client.receive_eof()
    assert client.handshake_exc is exc
    assert client.state is State.CLOSED
