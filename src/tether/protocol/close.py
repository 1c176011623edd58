"""Close codes and the close frame payload (RFC 6455 sections 5.5.1 and 7.4)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tether.exceptions import ProtocolError

__all__ = ["Close", "CloseCode", "is_valid_close_code"]


class CloseCode(enum.IntEnum):
    """Close codes defined by RFC 6455 section 7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Codes an endpoint may put in a close frame. 1004 is reserved; 1005, 1006
# and 1015 are only for reporting and must never travel on the wire.
_SENDABLE_BELOW_3000 = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

MAX_REASON_BYTES = 123

_DESCRIPTIONS = {
    1000: "OK",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received [internal]",
    1006: "connection closed abnormally [internal]",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "extension required",
    1011: "unexpected error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure [internal]",
}


def is_valid_close_code(code: int) -> bool:
    """Tell whether ``code`` may appear in a close frame on the wire."""
    return code in _SENDABLE_BELOW_3000 or 3000 <= code <= 4999


@dataclass(frozen=True, slots=True)
class Close:
    """The code and reason of a close frame.

    Code 1005 with an empty reason stands for a close frame with no payload.
    """

    code: int
    reason: str = ""

    def __str__(self) -> str:
        if 3000 <= self.code < 4000:
            label = "registered"
        elif 4000 <= self.code < 5000:
            label = "private use"
        else:
            label = _DESCRIPTIONS.get(self.code, "unknown")
        text = f"{self.code} ({label})"
        return f"{text} {self.reason}" if self.reason else text

    @classmethod
    def parse(cls, payload: bytes) -> Close:
        """Read a close frame's payload, raising :class:`ProtocolError` when invalid.

        An empty payload means no status code (1005). A one-byte payload, a
        code that must not be sent, or a reason that is not UTF-8 is an error.
        """
        size = len(payload)
        if size == 0:
            return cls(CloseCode.NO_STATUS_RCVD)
        if size == 1:
            raise ProtocolError("close frame payload of one byte")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_close_code(code):
            raise ProtocolError(f"invalid close code {code}")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("close reason is not valid UTF-8", 1007) from exc
        return cls(code, reason)

    def serialize(self) -> bytes:
        """Build the close frame's payload; 1005 gives an empty payload."""
        if self.code == 1005 and not self.reason:  # NO_STATUS_RCVD, without the Enum lookup
            return b""
        if not is_valid_close_code(self.code):
            raise ValueError(f"close code {self.code} may not be sent")
        reason = self.reason.encode()
        if len(reason) > MAX_REASON_BYTES:
            raise ValueError(f"close reason is over {MAX_REASON_BYTES} bytes")
        return self.code.to_bytes(2, "big") + reason
