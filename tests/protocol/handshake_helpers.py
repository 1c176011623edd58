"""Helpers shared by the tests of the opening handshake engines.

They build the raw requests and responses a peer would send, read back what
an engine wrote, and provide a toy extension, ``x-test``, whose factories
accept or refuse on demand, so that negotiation can be driven precisely.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from tether.exceptions import NegotiationError
from tether.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)
from tether.protocol.connection import Connection, State
from tether.protocol.frames import Frame
from tether.protocol.headers import Headers
from tether.protocol.http11 import (
    Request,
    RequestParser,
    Response,
    ResponseParser,
)

# The example of RFC 6455 section 1.3.
RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def request_headers(key: str = RFC_KEY) -> list[tuple[str, str]]:
    """The headers of a minimal valid handshake request, as ``(name, value)`` pairs."""
    return [
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]


def without(pairs: Sequence[tuple[str, str]], name: str) -> list[tuple[str, str]]:
    """``pairs`` without the fields called ``name``, in any case."""
    return [(key, value) for key, value in pairs if key.lower() != name.lower()]


def replaced(pairs: Sequence[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    """``pairs`` with the fields called ``name`` replaced by one with ``value``."""
    return [*without(pairs, name), (name, value)]


def request_bytes(pairs: Sequence[tuple[str, str]], path: str = "/chat") -> bytes:
    """Serialize a ``GET`` request with these header fields."""
    return Request(path, Headers(pairs)).serialize()


def response_headers(accept: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    """The headers of a valid 101 answer to a key whose accept value is ``accept``."""
    return [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept),
        *extra,
    ]


def response_bytes(
    pairs: Sequence[tuple[str, str]],
    status: int = 101,
    reason: str = "Switching Protocols",
    body: bytes = b"",
) -> bytes:
    """Serialize a response with these header fields, sent as they are."""
    return Response(status, reason, Headers(pairs), body).serialize()


def state_of(engine: Connection) -> State:
    """``engine.state``, read through a call so that type checkers don't narrow it."""
    return engine.state


def parse_request(chunks: Sequence[bytes]) -> Request:
    """Read back the request an engine wrote; nothing may follow it."""
    parser = RequestParser()
    parser.receive_data(b"".join(chunks))
    assert parser.result is not None
    assert parser.leftover == b""
    return parser.result


def parse_response(chunks: Sequence[bytes]) -> tuple[Response, bytes]:
    """Read back the response an engine wrote, and the bytes written after it."""
    parser = ResponseParser()
    parser.receive_data(b"".join(chunks))
    assert parser.result is not None
    return parser.result, parser.leftover


class XTestExtension(Extension):
    """A do-nothing extension that remembers the parameters it was built with."""

    name: ClassVar[str] = "x-test"
    rsv_mask: ClassVar[int | None] = 0x20

    def __init__(self, params: Sequence[ExtensionParameter]) -> None:
        self.params = list(params)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame  # pragma: no cover - these tests send no frames through it

    def encode(self, frame: Frame) -> Frame:
        return frame  # pragma: no cover - these tests send no frames through it


REFUSE: ExtensionParameter = ("refuse", None)
"""A parameter that makes either ``x-test`` factory refuse."""


class XTestClientFactory(ClientExtensionFactory):
    """Offers ``x-test`` with ``params``; accepts answers without :data:`REFUSE`.

    With ``refuse``, it refuses every answer.
    """

    name: ClassVar[str] = "x-test"

    def __init__(self, *params: ExtensionParameter, refuse: bool = False) -> None:
        self.params = list(params)
        self.refuse = refuse
        self.seen: list[list[ExtensionParameter]] = []

    def get_request_params(self) -> list[ExtensionParameter]:
        return list(self.params)

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        self.seen.append(list(params))
        if self.refuse or REFUSE in params:
            raise NegotiationError("x-test answer refused")
        return XTestExtension(params)


class XTestServerFactory(ServerExtensionFactory):
    """Echoes any ``x-test`` offer without :data:`REFUSE`, and records what it saw."""

    name: ClassVar[str] = "x-test"

    def __init__(self) -> None:
        self.seen: list[tuple[list[ExtensionParameter], list[Extension]]] = []

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        self.seen.append((list(params), list(accepted_extensions)))
        if REFUSE in params:
            raise NegotiationError("x-test offer refused")
        return list(params), XTestExtension(params)
