"""Tests for tether.exceptions."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, cast

import pytest

import tether.exceptions
from tether.exceptions import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    DuplicateParameter,
    HeaderLineTooLong,
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidMethod,
    InvalidOrigin,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidProtocol,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    InvalidState,
    InvalidStatus,
    InvalidUpgrade,
    InvalidURI,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
    ProxyError,
    RequestLineTooLong,
    SecurityError,
    StatusLineTooLong,
    TooManyFragments,
    TooManyHeaders,
    WebSocketException,
)
from tether.protocol.close import Close, CloseCode
from tether.protocol.headers import Headers, MultipleValuesError
from tether.protocol.http11 import Response

NORMAL = Close(CloseCode.NORMAL_CLOSURE, "done")
AWAY = Close(CloseCode.GOING_AWAY, "")


# --- The tree ------------------------------------------------------------------------------

TREE: list[tuple[type[BaseException], type[BaseException]]] = [
    (ConnectionClosed, WebSocketException),
    (ConnectionClosedOK, ConnectionClosed),
    (ConnectionClosedError, ConnectionClosed),
    (InvalidURI, WebSocketException),
    (InvalidHandshake, WebSocketException),
    (SecurityError, InvalidHandshake),
    (InvalidMessage, InvalidHandshake),
    (InvalidMethod, InvalidHandshake),
    (InvalidProtocol, InvalidHandshake),
    (InvalidStatus, InvalidHandshake),
    (InvalidHeader, InvalidHandshake),
    (InvalidHeaderFormat, InvalidHeader),
    (InvalidHeaderValue, InvalidHeader),
    (InvalidOrigin, InvalidHeader),
    (InvalidUpgrade, InvalidHeader),
    (NegotiationError, InvalidHandshake),
    (DuplicateParameter, NegotiationError),
    (InvalidParameterName, NegotiationError),
    (InvalidParameterValue, NegotiationError),
    (ProtocolError, WebSocketException),
    (PayloadTooBig, WebSocketException),
    (TooManyFragments, WebSocketException),
    (InvalidState, WebSocketException),
    (InvalidState, AssertionError),
    (ConcurrencyError, WebSocketException),
    (ConcurrencyError, RuntimeError),
    (WebSocketException, Exception),
    # The proxy and HTTP-limit exceptions, with websockets 17's bases.
    (InvalidProxy, WebSocketException),
    (ProxyError, InvalidHandshake),
    (InvalidProxyMessage, ProxyError),
    (InvalidProxyStatus, ProxyError),
    (RequestLineTooLong, SecurityError),
    (StatusLineTooLong, SecurityError),
    (HeaderLineTooLong, SecurityError),
    (TooManyHeaders, SecurityError),
]


@pytest.mark.parametrize(("child", "parent"), TREE)
def test_hierarchy(child: type[BaseException], parent: type[BaseException]) -> None:
    assert issubclass(child, parent)


def test_direct_parents() -> None:
    for child, parent in TREE:
        assert parent in child.__bases__, child


def test_everything_in_all_is_importable_and_an_exception() -> None:
    names = tether.exceptions.__all__
    assert len(names) == len(set(names))
    for name in names:
        obj = getattr(tether.exceptions, name)
        assert isinstance(obj, type)
        assert issubclass(obj, WebSocketException), name
    assert {child.__name__ for child, _ in TREE} | {"WebSocketException"} == set(names)


def test_proxy_exceptions_carry_websockets_arguments() -> None:
    invalid = InvalidProxy("ftp://proxy.test", "scheme ftp isn't supported")
    assert (invalid.proxy, invalid.msg) == ("ftp://proxy.test", "scheme ftp isn't supported")
    assert str(invalid) == "ftp://proxy.test isn't a valid proxy: scheme ftp isn't supported"
    refused = InvalidProxyStatus(Response(407, "Proxy Authentication Required", Headers()))
    assert refused.response.status_code == 407
    assert str(refused) == "proxy rejected connection: HTTP 407"


def test_handshake_and_protocol_errors_are_distinct() -> None:
    assert not issubclass(ProtocolError, InvalidHandshake)
    assert not issubclass(InvalidHandshake, ProtocolError)
    assert not issubclass(ConnectionClosed, ProtocolError)


# --- ConnectionClosed --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rcvd", "sent", "rcvd_then_sent", "message"),
    [
        (None, None, None, "no close frame received or sent"),
        (NORMAL, None, None, "received 1000 (OK) done; no close frame sent"),
        (None, NORMAL, None, "sent 1000 (OK) done; no close frame received"),
        (NORMAL, AWAY, True, "received 1000 (OK) done; then sent 1001 (going away)"),
        (NORMAL, AWAY, False, "sent 1001 (going away); then received 1000 (OK) done"),
        (NORMAL, AWAY, None, "sent 1001 (going away); then received 1000 (OK) done"),
        (
            Close(1005),
            Close(1002, "bad frame"),
            True,
            "received 1005 (no status received [internal]); "
            "then sent 1002 (protocol error) bad frame",
        ),
        (Close(4000, "x"), None, True, "received 4000 (private use) x; no close frame sent"),
        (None, Close(3001), False, "sent 3001 (registered); no close frame received"),
    ],
)
@pytest.mark.parametrize("cls", [ConnectionClosed, ConnectionClosedOK, ConnectionClosedError])
def test_connection_closed_message(
    cls: type[ConnectionClosed],
    rcvd: Close | None,
    sent: Close | None,
    rcvd_then_sent: bool | None,
    message: str,
) -> None:
    exc = cls(rcvd, sent, rcvd_then_sent)
    assert str(exc) == message
    assert exc.rcvd is rcvd
    assert exc.sent is sent
    assert exc.rcvd_then_sent is rcvd_then_sent


def test_connection_closed_rcvd_then_sent_defaults_to_none() -> None:
    exc = ConnectionClosed(NORMAL, AWAY)
    assert exc.rcvd_then_sent is None


def test_connection_closed_code_and_reason_come_from_received_frame() -> None:
    ok = ConnectionClosedOK(NORMAL, AWAY, True)
    assert ok.code == 1000
    assert ok.reason == "done"
    error = ConnectionClosedError(Close(4001, "custom"), None)
    assert error.code == 4001
    assert error.reason == "custom"


def test_connection_closed_code_1005_without_status() -> None:
    exc = ConnectionClosed(Close(CloseCode.NO_STATUS_RCVD), NORMAL, True)
    assert exc.code == 1005
    assert exc.reason == ""


@pytest.mark.parametrize("sent", [None, NORMAL])
def test_connection_closed_code_1006_without_received_frame(sent: Close | None) -> None:
    exc = ConnectionClosedError(None, sent)
    assert exc.code == 1006
    assert exc.code == CloseCode.ABNORMAL_CLOSURE
    assert exc.reason == ""


def test_connection_closed_can_be_raised_and_caught() -> None:
    with pytest.raises(ConnectionClosed, match="no close frame received or sent"):
        raise ConnectionClosedError(None, None)


# --- URI and handshake errors --------------------------------------------------------------


def test_invalid_uri() -> None:
    exc = InvalidURI("http://example.com/", "scheme isn't ws or wss")
    assert str(exc) == "http://example.com/ isn't a valid URI: scheme isn't ws or wss"
    assert exc.uri == "http://example.com/"
    assert exc.msg == "scheme isn't ws or wss"


@dataclass
class StandInResponse:
    """Enough of an HTTP response for InvalidStatus (tether.protocol.http11 may not exist)."""

    status_code: int
    reason_phrase: str = ""
    body: bytes = b""


@pytest.mark.parametrize("status", [200, 301, 403, 404, 500, 503])
def test_invalid_status(status: int) -> None:
    response = StandInResponse(status, "Whatever", b"body")
    exc = InvalidStatus(cast(Any, response))
    assert str(exc) == f"server rejected WebSocket connection: HTTP {status}"
    assert cast(object, exc.response) is response
    assert isinstance(exc, InvalidHandshake)


def test_invalid_header_missing() -> None:
    exc = InvalidHeader("Sec-WebSocket-Key")
    assert str(exc) == "missing Sec-WebSocket-Key header"
    assert exc.name == "Sec-WebSocket-Key"
    assert exc.value is None


def test_invalid_header_empty() -> None:
    exc = InvalidHeader("Sec-WebSocket-Key", "")
    assert str(exc) == "empty Sec-WebSocket-Key header"
    assert exc.value == ""


def test_invalid_header_invalid() -> None:
    exc = InvalidHeader("Sec-WebSocket-Version", "12")
    assert str(exc) == "invalid Sec-WebSocket-Version header: 12"
    assert exc.name == "Sec-WebSocket-Version"
    assert exc.value == "12"


def test_invalid_header_format() -> None:
    exc = InvalidHeaderFormat("Sec-WebSocket-Extensions", "expected token", "a;;b", 2)
    assert str(exc) == "invalid Sec-WebSocket-Extensions header: expected token at 2 in a;;b"
    assert exc.name == "Sec-WebSocket-Extensions"
    assert exc.value == "expected token at 2 in a;;b"
    assert exc.error == "expected token"
    assert exc.pos == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "missing Sec-WebSocket-Accept header"),
        ("", "empty Sec-WebSocket-Accept header"),
        ("abc", "invalid Sec-WebSocket-Accept header: abc"),
    ],
)
def test_invalid_header_value(value: str | None, message: str) -> None:
    exc = InvalidHeaderValue("Sec-WebSocket-Accept", value)
    assert str(exc) == message
    assert isinstance(exc, InvalidHeader)


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        (None, "missing Origin header"),
        ("", "empty Origin header"),
        ("https://evil.example", "invalid Origin header: https://evil.example"),
    ],
)
def test_invalid_origin(origin: str | None, message: str) -> None:
    exc = InvalidOrigin(origin)
    assert str(exc) == message
    assert exc.name == "Origin"
    assert exc.value == origin


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("Upgrade", None, "missing Upgrade header"),
        ("Upgrade", "h2c", "invalid Upgrade header: h2c"),
        ("Connection", "close", "invalid Connection header: close"),
    ],
)
def test_invalid_upgrade(name: str, value: str | None, message: str) -> None:
    exc = InvalidUpgrade(name, value)
    assert str(exc) == message
    assert exc.name == name


def test_plain_handshake_errors_keep_their_message() -> None:
    for cls in (InvalidHandshake, SecurityError, InvalidMessage, NegotiationError):
        exc = cls("some text")
        assert str(exc) == "some text"


def test_duplicate_parameter() -> None:
    exc = DuplicateParameter("server_max_window_bits")
    assert str(exc) == "duplicate parameter: server_max_window_bits"
    assert exc.name == "server_max_window_bits"


def test_invalid_parameter_name() -> None:
    exc = InvalidParameterName("bogus")
    assert str(exc) == "invalid parameter name: bogus"
    assert exc.name == "bogus"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "invalid value for parameter client_max_window_bits: (no value)"),
        ("16", "invalid value for parameter client_max_window_bits: '16'"),
        ("", "invalid value for parameter client_max_window_bits: ''"),
    ],
)
def test_invalid_parameter_value(value: str | None, message: str) -> None:
    exc = InvalidParameterValue("client_max_window_bits", value)
    assert str(exc) == message
    assert exc.name == "client_max_window_bits"
    assert exc.value == value


# --- Protocol errors ---------------------------------------------------------------------


def test_protocol_error_default_code() -> None:
    exc = ProtocolError("reserved opcode 0x3")
    assert exc.code == 1002
    assert str(exc) == "reserved opcode 0x3"


@pytest.mark.parametrize("code", [1002, 1007, 1009, 1010, 1011])
def test_protocol_error_code_override(code: int) -> None:
    exc = ProtocolError("text", code)
    assert exc.code == code
    assert str(exc) == "text"
    # The override is the instance's own; the class default stays.
    assert ProtocolError.code == 1002
    assert ProtocolError("other").code == 1002


def test_protocol_error_code_keyword() -> None:
    assert ProtocolError("invalid UTF-8", code=1007).code == 1007


def test_payload_too_big() -> None:
    exc = PayloadTooBig(2000, 1000)
    assert (exc.size, exc.max_size, exc.current_size) == (2000, 1000, None)
    assert exc.code == CloseCode.MESSAGE_TOO_BIG
    assert str(exc) == "frame with 2000 bytes exceeds limit of 1000 bytes"
    assert not isinstance(exc, ProtocolError)


def test_payload_too_big_after_earlier_frames() -> None:
    exc = PayloadTooBig(600, 500, 400)
    # As websockets: the limit counts what came before.
    assert (exc.size, exc.max_size, exc.current_size) == (600, 900, 400)
    assert str(exc) == "frame with 600 bytes after reading 400 bytes exceeds limit of 900 bytes"


def test_payload_too_big_set_current_size_once() -> None:
    exc = PayloadTooBig(None, 100)
    assert str(exc) == "frame exceeds limit of 100 bytes"
    exc.set_current_size(50)
    assert str(exc) == "frame after reading 50 bytes exceeds limit of 150 bytes"
    with pytest.raises(ValueError, match="already set"):
        exc.set_current_size(10)


def test_payload_too_big_message_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match=r"PayloadTooBig\(size, max_size\)"):
        exc = PayloadTooBig("message over 1048576 bytes")
    assert str(exc) == "message over 1048576 bytes"
    assert exc.code == 1009


def test_payload_too_big_needs_max_size() -> None:
    with pytest.raises(TypeError, match="max_size"):
        PayloadTooBig(10)


def test_too_many_fragments() -> None:
    exc = TooManyFragments(1024)
    assert exc.max_fragments == 1024
    assert exc.code == 1009
    assert str(exc) == "fragmented message exceeds limit of 1024 frames"


def test_invalid_method_and_protocol() -> None:
    assert InvalidMethod("POST").method == "POST"
    assert InvalidProtocol("HTTP/1.0").protocol == "HTTP/1.0"
    assert (
        str(InvalidProtocol("HTTP/1.0")) == "unsupported HTTP version HTTP/1.0; expected HTTP/1.1"
    )


# --- Other errors --------------------------------------------------------------------------


def test_invalid_state() -> None:
    assert str(InvalidState("cannot send after close")) == "cannot send after close"
    # As websockets: a bug in the caller, so an AssertionError too.
    with pytest.raises(AssertionError):
        raise InvalidState("closed")


def test_concurrency_error() -> None:
    exc = ConcurrencyError("two readers")
    assert str(exc) == "two readers"
    with pytest.raises(RuntimeError):
        raise exc


# --- Pickling --------------------------------------------------------------------------------

# One instance of every exception, built as tether builds it: whatever their
# __init__ takes, they must cross process boundaries intact.
PICKLED: list[WebSocketException] = [
    WebSocketException("base"),
    ConnectionClosed(NORMAL, AWAY, True),
    ConnectionClosedOK(NORMAL, NORMAL, False),
    ConnectionClosedError(None, None),
    InvalidURI("ws://", "no host"),
    InvalidHandshake("handshake"),
    SecurityError("too big"),
    InvalidMessage("bad request"),
    InvalidStatus(Response(404, "Not Found", Headers({"X": "y"}), b"gone\n")),
    InvalidHeader("Host"),
    InvalidHeaderFormat("Upgrade", "expected token", "web socket", 3),
    InvalidHeaderValue("Sec-WebSocket-Version", "12"),
    InvalidOrigin("https://evil.example"),
    InvalidUpgrade("Connection", "close"),
    NegotiationError("no deflate"),
    DuplicateParameter("server_no_context_takeover"),
    InvalidParameterName("bogus"),
    InvalidParameterValue("client_max_window_bits", "99"),
    ProtocolError("bad frame"),
    PayloadTooBig(2_000_000, 1_000_000, 500),
    TooManyFragments(1024),
    InvalidProtocol("HTTP/1.0"),
    InvalidState("closed"),
    ConcurrencyError("two readers"),
    MultipleValuesError("Host", 2),
    InvalidMethod("POST"),
    InvalidProxy("ftp://proxy.test", "scheme ftp isn't supported"),
    ProxyError("SOCKS proxy refused"),
    InvalidProxyMessage("garbage"),
    InvalidProxyStatus(Response(403, "Forbidden", Headers())),
    RequestLineTooLong("line longer than max_line = 8192 bytes"),
    StatusLineTooLong("line longer than max_line = 8192 bytes"),
    HeaderLineTooLong("line longer than max_line = 8192 bytes"),
    TooManyHeaders("more than max_headers = 128 headers"),
]


def test_every_exception_has_a_pickling_sample() -> None:
    pickled = {type(exc) for exc in PICKLED}
    for name in tether.exceptions.__all__:
        assert getattr(tether.exceptions, name) in pickled, name


@pytest.mark.parametrize("exc", PICKLED, ids=lambda exc: type(exc).__name__)
def test_pickle_round_trip(exc: WebSocketException) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert back.args == exc.args
    assert back.__dict__ == exc.__dict__
