"""Tests of tether.protocol.handshake, and of both engines wired together.

The engines themselves are tested in test_client.py and test_server.py; the
property test at the end checks that how TCP splits the handshake never
changes its outcome.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.exceptions import (
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidUpgrade,
)
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol import (
    ClientProtocol,
    Event,
    Message,
    Ping,
    Pong,
    RequestReceived,
    ResponseReceived,
    ServerProtocol,
    State,
)
from tether.protocol.handshake import (
    GUID,
    USER_AGENT,
    accept_key,
    check_key,
    check_upgrade,
    error_response,
    generate_key,
    http_date,
    single_value,
)
from tether.protocol.headers import Headers
from tether.version import __version__

from .handshake_helpers import RFC_ACCEPT, RFC_KEY, parse_response

# accept_key and generate_key


def test_1_3_accept_key_rfc_example() -> None:
    # The value printed in RFC 6455 section 1.3 (and checked against hashlib).
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_4_2_2_accept_key_rfc_example() -> None:
    # Section 4.2.2 repeats the computation: SHA-1 of key + GUID, in base64.
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_accept_key_depends_on_the_key() -> None:
    assert accept_key(generate_key()) != RFC_ACCEPT
    # The key is used as written, not decoded: another spelling, another accept.
    assert accept_key(RFC_KEY.lower()) != RFC_ACCEPT


def test_4_1_generate_key_is_16_random_bytes_in_base64() -> None:
    key = generate_key()
    assert len(key) == 24
    assert len(base64.b64decode(key, validate=True)) == 16
    check_key(key)


def test_4_1_generate_key_differs_each_call() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20


def test_user_agent() -> None:
    major, minor = sys.version_info[:2]
    expected = f"Python/{major}.{minor} tether/{__version__}"
    assert expected == USER_AGENT
    assert re.fullmatch(r"Python/3\.\d+ tether/\S+", USER_AGENT)


# single_value


def test_single_value_returns_the_value() -> None:
    assert single_value(["example.com"], "Host") == "example.com"


def test_single_value_missing() -> None:
    with pytest.raises(InvalidHeader) as exc_info:
        single_value([], "Host")
    assert type(exc_info.value) is InvalidHeader
    assert exc_info.value.name == "Host"
    assert exc_info.value.value is None
    assert str(exc_info.value) == "missing Host header"


def test_single_value_repeated() -> None:
    with pytest.raises(InvalidHeader) as exc_info:
        single_value(["a.example", "b.example"], "HOST")
    assert exc_info.value.name == "HOST"
    assert exc_info.value.value == "multiple values"
    # No lookup error shows through in the traceback.
    assert exc_info.value.__cause__ is None
    assert exc_info.value.__context__ is None


def test_single_value_empty_value_is_a_value() -> None:
    assert single_value([""], "Origin") == ""


# check_key


@pytest.mark.parametrize(
    "key",
    [
        RFC_KEY,
        "AAAAAAAAAAAAAAAAAAAAAA==",
        "/////////////////////w==",
        base64.b64encode(bytes(range(16))).decode(),
    ],
)
def test_4_1_check_key_accepts_16_bytes(key: str) -> None:
    check_key(key)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("not base64!", id="not-base64"),
        pytest.param("dGhlIHNhbXBsZSBub25jZQ", id="no-padding"),
        pytest.param(" dGhlIHNhbXBsZSBub25jZQ==", id="leading-space"),
        pytest.param("dGhlIHNhbXBs ZSBub25jZQ==", id="inner-space"),
        pytest.param("dGhlIHNhbXBsZSBub25jZQ==\t", id="trailing-tab"),
        pytest.param("dGhlIHNhbXBsZSBub25jZQ-_", id="urlsafe-alphabet"),
        pytest.param("é" * 24, id="non-ascii"),
        pytest.param(base64.b64encode(bytes(15)).decode(), id="15-bytes"),
        pytest.param(base64.b64encode(bytes(17)).decode(), id="17-bytes"),
        pytest.param(base64.b64encode(bytes(32)).decode(), id="32-bytes"),
    ],
)
def test_4_1_check_key_refuses_anything_but_16_bytes(key: str) -> None:
    with pytest.raises(InvalidHeaderValue) as exc_info:
        check_key(key)
    assert exc_info.value.name == "Sec-WebSocket-Key"
    assert exc_info.value.value == key
    assert exc_info.value.__cause__ is None


# check_upgrade


def check_upgrade_of(headers: Headers) -> None:
    check_upgrade(headers.get_all("Connection"), headers.get_all("Upgrade"))


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("Connection", "Upgrade"), ("Upgrade", "websocket")], id="plain"),
        pytest.param([("connection", "upgrade"), ("upgrade", "WebSocket")], id="case"),
        pytest.param([("CONNECTION", "UPGRADE"), ("UPGRADE", "WEBSOCKET")], id="upper"),
        pytest.param([("Connection", "keep-alive, Upgrade"), ("Upgrade", "websocket")], id="list"),
        pytest.param([("Connection", "Upgrade, keep-alive"), ("Upgrade", "websocket")], id="first"),
        pytest.param(
            [("Connection", " ,keep-alive,,upGrade , "), ("Upgrade", "websocket")], id="ows"
        ),
        pytest.param(
            [("Connection", "keep-alive"), ("Connection", "Upgrade"), ("Upgrade", "websocket")],
            id="two-connection-fields",
        ),
        pytest.param([("Connection", "Upgrade"), ("Upgrade", " websocket ,")], id="upgrade-ows"),
    ],
)
def test_4_2_1_check_upgrade_accepts(pairs: list[tuple[str, str]]) -> None:
    check_upgrade_of(Headers(pairs))


@pytest.mark.parametrize(
    ("pairs", "name", "value"),
    [
        pytest.param([("Upgrade", "websocket")], "Connection", None, id="no-connection"),
        pytest.param(
            [("Connection", "keep-alive"), ("Upgrade", "websocket")],
            "Connection",
            "keep-alive",
            id="connection-keep-alive",
        ),
        pytest.param(
            [("Connection", "close, keep-alive"), ("Upgrade", "websocket")],
            "Connection",
            "close, keep-alive",
            id="connection-list-without-upgrade",
        ),
        pytest.param(
            [("Connection", "Upgraded"), ("Upgrade", "websocket")],
            "Connection",
            "Upgraded",
            id="connection-upgraded",
        ),
        pytest.param([("Connection", "Upgrade")], "Upgrade", None, id="no-upgrade"),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "h2c")], "Upgrade", "h2c", id="upgrade-h2c"
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket, h2c")],
            "Upgrade",
            "websocket, h2c",
            id="upgrade-websocket-and-h2c",
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "h2c"), ("Upgrade", "websocket")],
            "Upgrade",
            "h2c, websocket",
            id="upgrade-two-fields",
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Upgrade", "websocket")],
            "Upgrade",
            "websocket, websocket",
            id="upgrade-websocket-twice",
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websocket/13")],
            "Upgrade",
            "websocket/13",
            id="upgrade-with-version",
        ),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "websockets")],
            "Upgrade",
            "websockets",
            id="upgrade-websockets",
        ),
    ],
)
def test_4_2_1_check_upgrade_refuses(
    pairs: list[tuple[str, str]], name: str, value: str | None
) -> None:
    with pytest.raises(InvalidUpgrade) as exc_info:
        check_upgrade_of(Headers(pairs))
    assert exc_info.value.name == name
    assert exc_info.value.value == value


def test_check_upgrade_says_missing_rather_than_empty() -> None:
    with pytest.raises(InvalidUpgrade, match=r"^missing Connection header$"):
        check_upgrade_of(Headers())
    with pytest.raises(InvalidUpgrade, match=r"^missing Upgrade header$"):
        check_upgrade_of(Headers(Connection="Upgrade"))


@pytest.mark.parametrize(
    ("pairs", "name"),
    [
        pytest.param([("Connection", ""), ("Upgrade", "websocket")], "Connection", id="conn-empty"),
        pytest.param(
            [("Connection", ","), ("Upgrade", "websocket")], "Connection", id="conn-comma"
        ),
        pytest.param(
            [("Connection", "Upgrade;x"), ("Upgrade", "websocket")], "Connection", id="conn-junk"
        ),
        pytest.param([("Connection", "Upgrade"), ("Upgrade", "")], "Upgrade", id="upgrade-empty"),
        pytest.param(
            [("Connection", "Upgrade"), ("Upgrade", "web socket")], "Upgrade", id="upgrade-space"
        ),
    ],
)
def test_check_upgrade_malformed_values(pairs: list[tuple[str, str]], name: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        check_upgrade_of(Headers(pairs))
    assert exc_info.value.name == name


# http_date


@pytest.mark.parametrize(
    ("timestamp", "date"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (784111777, "Sun, 06 Nov 1994 08:49:37 GMT"),  # RFC 9110 section 5.6.7
        (951782400, "Tue, 29 Feb 2000 00:00:00 GMT"),
        (1700000000.9, "Tue, 14 Nov 2023 22:13:20 GMT"),
    ],
)
def test_http_date(timestamp: float, date: str) -> None:
    assert http_date(timestamp) == date


def test_http_date_now_matches_email_utils() -> None:
    for timestamp in range(0, 2_000_000_000, 86_400 * 37 + 3_601):
        assert http_date(timestamp) == email.utils.formatdate(timestamp, usegmt=True)
    date = email.utils.parsedate_to_datetime(http_date())
    assert date.tzinfo is not None


def test_http_date_now_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # The current date is formatted once per second: it must still change
    # when the second does, and never run ahead of or behind the clock.
    clock = [1_700_000_000.25]
    monkeypatch.setattr("time.time", lambda: clock[0])
    for step in (0.0, 0.5, 0.3, 1.0, 86_400.0, 0.1):
        clock[0] += step
        assert http_date() == email.utils.formatdate(int(clock[0]), usegmt=True)


# error_response


def test_error_response() -> None:
    response = error_response(400, "Bad things")
    assert response.status_code == 400
    assert response.reason_phrase == "Bad Request"
    # As websockets: the body is the text as given, no newline added.
    assert response.body == b"Bad things"
    headers = response.headers
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == "10"
    assert headers["Connection"] == "close"
    assert "Server" not in headers
    date = email.utils.parsedate_to_datetime(headers["Date"])
    assert date.tzinfo is not None
    assert headers["Date"].endswith(" GMT")


def test_error_response_keeps_a_final_newline() -> None:
    response = error_response(403, "Forbidden.\n")
    assert response.body == b"Forbidden.\n"
    assert response.headers["Content-Length"] == "11"


def test_error_response_counts_bytes_not_characters() -> None:
    response = error_response(400, "Ünïcödé")
    assert response.body == "Ünïcödé".encode()
    assert response.headers["Content-Length"] == str(len("Ünïcödé".encode()))


def test_error_response_server_and_extra_headers() -> None:
    extra = Headers([("Upgrade", "websocket"), ("Connection", "Upgrade")])
    response = error_response(426, "Upgrade, please", headers=extra, server="test/1.0")
    assert response.reason_phrase == "Upgrade Required"
    assert response.headers["Server"] == "test/1.0"
    assert response.headers["Upgrade"] == "websocket"
    # Extra headers are added, never replace: "close" stays first.
    assert response.headers.get_all("Connection") == ["close", "Upgrade"]


def test_error_response_round_trip() -> None:
    response = error_response(431, "Too big.", server=USER_AGENT)
    parsed, leftover = parse_response([response.serialize()])
    assert leftover == b""
    assert parsed == response


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (400, "Bad Request"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (426, "Upgrade Required"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
    ],
)
def test_error_response_reason_phrases(status: int, phrase: str) -> None:
    assert error_response(status, "x").reason_phrase == phrase


def test_error_response_unregistered_status() -> None:
    response = error_response(499, "Client went away.")
    assert response.status_code == 499
    assert response.reason_phrase == ""
    parsed, _ = parse_response([response.serialize()])
    assert parsed.status_code == 499


# Both engines: TCP may split the handshake anywhere


def handshake_in_pieces(
    request_cuts: list[int], response_cuts: list[int]
) -> tuple[list[Event], list[Event], ClientProtocol, ServerProtocol]:
    """Run a handshake, each side's bytes cut at these offsets; return the events."""
    client = ClientProtocol(
        "ws://example.com:8080/chat?room=1",
        origin="https://example.com",
        subprotocols=["v2", "v1"],
        extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=12)],
    )
    server = ServerProtocol(
        origins=["https://example.com"],
        subprotocols=["v1"],
        extensions=[ServerPerMessageDeflateFactory(client_max_window_bits=10)],
    )
    client.send_request(client.connect())
    client_bytes = b"".join(client.data_to_send())
    # Frames may follow the request before the response goes out; they are
    # built with an engine that is open already, since the client is not.
    client_bytes += (b"\x89\x84" + bytes(4) + b"ping") * 2
    server_events: list[Event] = []
    for piece in _cut(client_bytes, request_cuts):
        server.receive_data(piece)
        server_events.extend(server.events())
    (request_event,) = server_events[:1]
    assert isinstance(request_event, RequestReceived)
    server.send_response(server.accept(request_event.request))
    server_events.extend(server.events())
    server.send_text("hello")
    server_bytes = b"".join(server.data_to_send())
    client_events: list[Event] = []
    for piece in _cut(server_bytes, response_cuts):
        client.receive_data(piece)
        client_events.extend(client.events())
    return client_events, server_events, client, server


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    bounds = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


_REFERENCE = handshake_in_pieces([], [])


def test_reference_handshake() -> None:
    client_events, server_events, client, server = _REFERENCE
    assert isinstance(client_events[0], ResponseReceived)
    # The server answered the pings that were waiting behind the request.
    assert client_events[1:] == [Pong(b"ping"), Pong(b"ping"), Message("hello")]
    assert isinstance(server_events[0], RequestReceived)
    assert server_events[1:] == [Ping(b"ping"), Ping(b"ping")]
    assert client.state is server.state is State.OPEN
    assert client.subprotocol == server.subprotocol == "v1"
    assert len(client.extensions) == len(server.extensions) == 1


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1000), max_size=12),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=12),
)
def test_any_split_gives_the_same_handshake(
    request_cuts: list[int], response_cuts: list[int]
) -> None:
    client_events, server_events, client, server = handshake_in_pieces(request_cuts, response_cuts)
    ref_client_events, ref_server_events, ref_client, ref_server = _REFERENCE
    assert client_events[1:] == ref_client_events[1:]
    assert server_events[1:] == ref_server_events[1:]
    (response_event, request_event) = (client_events[0], server_events[0])
    assert isinstance(response_event, ResponseReceived)
    assert isinstance(request_event, RequestReceived)
    assert request_event.request.path == "/chat?room=1"
    # The keys differ from run to run; everything else is the same.
    assert without_keys(request_event.request.headers) == without_keys(
        _request_of(ref_server_events).request.headers
    )
    assert response_event.response.status_code == 101
    assert client.state is server.state is State.OPEN
    assert client.subprotocol == ref_client.subprotocol
    assert server.subprotocol == ref_server.subprotocol
    assert repr(client.extensions) == repr(ref_client.extensions)
    assert repr(server.extensions) == repr(ref_server.extensions)
    assert client.handshake_exc is server.handshake_exc is None


def _request_of(events: list[Event]) -> RequestReceived:
    event = events[0]
    assert isinstance(event, RequestReceived)
    return event


def without_keys(headers: Headers) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers.raw_items() if name != "Sec-WebSocket-Key"]
