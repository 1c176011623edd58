"""Tests for close codes and close frame payloads (RFC 6455 sections 5.5.1, 7.4)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tether.exceptions import ProtocolError
from tether.protocol.close import Close, CloseCode, is_valid_close_code


def rfc_7_4_sendable(code: int) -> bool:
    """The codes section 7.4 (and the IANA registry) allow in a close frame."""
    return code in range(1000, 1004) or code in range(1007, 1015) or code in range(3000, 5000)


def parse_error(payload: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        Close.parse(payload)
    assert type(info.value) is ProtocolError
    return info.value


# --- Section 7.4: close codes ----------------------------------------------------------


def test_7_4_every_code_up_to_5000() -> None:
    for code in range(5001):
        assert is_valid_close_code(code) == rfc_7_4_sendable(code), code


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 3999, 4000, 4999])
def test_7_4_valid_codes(code: int) -> None:
    assert is_valid_close_code(code)


@pytest.mark.parametrize(
    "code",
    [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 5001, 65535, 65536, -1000],
)
def test_7_4_invalid_codes(code: int) -> None:
    assert not is_valid_close_code(code)


def test_7_4_1_close_code_values() -> None:
    assert {code.name: int(code) for code in CloseCode} == {
        "NORMAL_CLOSURE": 1000,
        "GOING_AWAY": 1001,
        "PROTOCOL_ERROR": 1002,
        "UNSUPPORTED_DATA": 1003,
        "NO_STATUS_RCVD": 1005,
        "ABNORMAL_CLOSURE": 1006,
        "INVALID_DATA": 1007,
        "POLICY_VIOLATION": 1008,
        "MESSAGE_TOO_BIG": 1009,
        "MANDATORY_EXTENSION": 1010,
        "INTERNAL_ERROR": 1011,
        "SERVICE_RESTART": 1012,
        "TRY_AGAIN_LATER": 1013,
        "BAD_GATEWAY": 1014,
        "TLS_HANDSHAKE": 1015,
    }


@pytest.mark.parametrize("code", [1005, 1006, 1015])
def test_7_4_1_reporting_only_codes_are_not_sendable(code: int) -> None:
    assert not is_valid_close_code(CloseCode(code))


# --- Section 5.5.1: parsing the close payload ----------------------------------------------


def test_5_5_1_empty_payload_means_no_status() -> None:
    close = Close.parse(b"")
    assert close == Close(1005)
    assert close.code == CloseCode.NO_STATUS_RCVD
    assert close.reason == ""


@pytest.mark.parametrize("payload", [b"\x03", b"\xe8", b"\x00"])
def test_5_5_1_one_byte_payload_is_protocol_error(payload: bytes) -> None:
    assert parse_error(payload).code == 1002


def test_5_5_1_code_only() -> None:
    assert Close.parse(b"\x03\xe8") == Close(1000, "")
    assert Close.parse(b"\x0f\xa0") == Close(4000, "")


def test_5_5_1_code_and_reason() -> None:
    assert Close.parse(b"\x03\xe9bye") == Close(CloseCode.GOING_AWAY, "bye")


def test_5_5_1_every_code_parses_or_fails_with_1002() -> None:
    for code in [*range(5001), 5001, 9999, 32768, 65534, 65535]:
        payload = code.to_bytes(2, "big")
        if rfc_7_4_sendable(code):
            assert Close.parse(payload) == Close(code), code
        else:
            with pytest.raises(ProtocolError) as info:
                Close.parse(payload)
            assert info.value.code == 1002, code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_5_5_1_invalid_code_is_protocol_error(code: int) -> None:
    error = parse_error(code.to_bytes(2, "big") + b"reason")
    assert error.code == 1002
    assert str(code) in str(error)


@pytest.mark.parametrize(
    "reason",
    [
        b"\xff",  # never valid
        b"\x80",  # lone continuation byte
        b"caf\xc3",  # truncated two-byte sequence
        b"\xe2\x82",  # truncated three-byte sequence
        b"\xc0\x80",  # overlong NUL
        b"\xed\xa0\x80",  # UTF-16 surrogate
        b"\xf4\x90\x80\x80",  # above U+10FFFF
        b"ok\xfe\xffok",
    ],
)
def test_5_5_1_invalid_utf8_reason_is_1007(reason: bytes) -> None:
    error = parse_error(b"\x03\xe8" + reason)
    assert error.code == 1007
    assert isinstance(error.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(
    "reason", ["", "a", "é", "€", "🎉", "x" * 123, "é" * 61 + "x", "€" * 41, "🎉" * 30 + "abc"]
)
def test_5_5_1_valid_reason_up_to_123_bytes(reason: str) -> None:
    encoded = reason.encode()
    assert len(encoded) <= 123
    close = Close.parse(b"\x0b\xb8" + encoded)
    assert close == Close(3000, reason)
    assert close.serialize() == b"\x0b\xb8" + encoded


# --- Serializing ---------------------------------------------------------------------------


def test_serialize_code_and_reason() -> None:
    assert Close(1000).serialize() == b"\x03\xe8"
    assert Close(CloseCode.GOING_AWAY, "bye").serialize() == b"\x03\xe9bye"
    assert Close(4999, "é").serialize() == b"\x13\x87\xc3\xa9"


def test_serialize_no_status_is_empty_payload() -> None:
    assert Close(1005).serialize() == b""
    assert Close(CloseCode.NO_STATUS_RCVD, "").serialize() == b""
    assert Close.parse(Close(1005).serialize()) == Close(1005)


@pytest.mark.parametrize("code", [0, 999, 1004, 1006, 1015, 1016, 2999, 5000, 65535])
def test_serialize_rejects_unsendable_codes(code: int) -> None:
    with pytest.raises(ValueError, match=str(code)):
        Close(code).serialize()
    with pytest.raises(ValueError, match=str(code)):
        Close(code, "reason").serialize()


def test_serialize_rejects_no_status_with_reason() -> None:
    with pytest.raises(ValueError, match="1005"):
        Close(1005, "why").serialize()


@pytest.mark.parametrize("reason", ["x" * 124, "é" * 62, "€" * 41 + "x", "🎉" * 31])
def test_serialize_rejects_reason_over_123_bytes(reason: str) -> None:
    assert len(reason.encode()) > 123
    with pytest.raises(ValueError, match="123"):
        Close(1000, reason).serialize()


def test_serialized_payload_fits_a_control_frame() -> None:
    assert len(Close(1000, "x" * 123).serialize()) == 125


sendable_codes = st.one_of(
    st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]),
    st.integers(3000, 4999),
)


@settings(max_examples=150)
@given(code=sendable_codes, reason=st.text(max_size=30))
def test_round_trip(code: int, reason: str) -> None:
    # 30 characters take at most 120 bytes in UTF-8.
    close = Close(code, reason)
    payload = close.serialize()
    assert len(payload) <= 125
    assert Close.parse(payload) == close


@settings(max_examples=200)
@given(payload=st.binary(max_size=125))
def test_parse_any_payload(payload: bytes) -> None:
    """Any payload gives a Close that serializes back to it, or a ProtocolError."""
    try:
        close = Close.parse(payload)
    except ProtocolError as exc:
        error: ProtocolError | None = exc
    else:
        error = None
        assert close.serialize() == payload
    if error is not None:
        assert error.code in (1002, 1007)


# --- Describing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "text"),
    [
        (Close(1000), "1000 (OK)"),
        (Close(CloseCode.NORMAL_CLOSURE), "1000 (OK)"),
        (Close(1000, "done"), "1000 (OK) done"),
        (Close(CloseCode.GOING_AWAY, "bye"), "1001 (going away) bye"),
        (Close(1002), "1002 (protocol error)"),
        (Close(1003), "1003 (unsupported data)"),
        (Close(1005), "1005 (no status received [internal])"),
        (Close(1006), "1006 (connection closed abnormally [internal])"),
        (Close(1007), "1007 (invalid frame payload data)"),
        (Close(1008), "1008 (policy violation)"),
        (Close(1009), "1009 (message too big)"),
        (Close(1010), "1010 (extension required)"),
        (Close(1011), "1011 (unexpected error)"),
        (Close(1012), "1012 (service restart)"),
        (Close(1013), "1013 (try again later)"),
        (Close(1014), "1014 (bad gateway)"),
        (Close(1015), "1015 (TLS handshake failure [internal])"),
        (Close(3000), "3000 (registered)"),
        (Close(3999, "app"), "3999 (registered) app"),
        (Close(4000), "4000 (private use)"),
        (Close(4999, "mine"), "4999 (private use) mine"),
        (Close(1004), "1004 (unknown)"),
        (Close(999), "999 (unknown)"),
        (Close(2999), "2999 (unknown)"),
        (Close(5000, "?"), "5000 (unknown) ?"),
    ],
)
def test_str(close: Close, text: str) -> None:
    assert str(close) == text


def test_str_of_parsed_empty_payload() -> None:
    assert str(Close.parse(b"")) == "1005 (no status received [internal])"


def test_close_is_a_frozen_value() -> None:
    close = Close(1000, "bye")
    assert close == Close(1000, "bye")
    assert close != Close(1000, "")
    assert close != Close(1001, "bye")
    assert hash(close) == hash(Close(1000, "bye"))
    assert Close(1000).reason == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        close.code = 1001  # type: ignore[misc]
