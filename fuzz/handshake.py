"""Fuzz the opening handshake: the HTTP/1.1 parsers and both engines.

The input's first byte picks what reads the rest: the request parser, the
response parser, a server engine or a client engine. The parsers must give
the same message, or the same error, whether the bytes come at once or in
pieces, and may raise only :class:`~tether.exceptions.InvalidHandshake`.
The engines must not raise at all: a server answers what it cannot read
with an error response, a client records why the handshake failed.
"""

from __future__ import annotations

from fuzz._common import Input, run
from tether.exceptions import InvalidHandshake
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import State
from tether.protocol.events import RequestReceived, ResponseReceived
from tether.protocol.http11 import Limits, Request, RequestParser, ResponseParser
from tether.protocol.server import ServerProtocol

__all__ = ["CLIENT_KEY", "TestOneInput"]

CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The client engine's key, fixed so that a stored response can match it (RFC 6455 section 1.3)."""

# Small enough for the fuzzer to reach every limit.
_LIMITS = Limits(max_line=256, max_headers=16, max_size=1024, max_body=512)


def _parse(
    parser: RequestParser | ResponseParser, chunks: list[bytes], eof: bool
) -> tuple[object, ...]:
    """Feed ``chunks``, then the end of the stream if ``eof``; say what came of it."""
    try:
        for chunk in chunks:
            if parser.result is not None:
                break
            parser.receive_data(chunk)
        if eof:
            parser.receive_eof()
    except InvalidHandshake as exc:
        return ("error", type(exc))
    result = parser.result
    if result is None:
        return ("incomplete",)
    if isinstance(result, Request):
        assert result.path.startswith("/")
        assert len(result.headers) <= _LIMITS.max_headers
    else:
        assert 100 <= result.status_code <= 999
        assert len(result.body) <= _LIMITS.max_body
    return ("done", repr(result))


def _check_parser(kind: int, data: bytes, step: int, eof: bool) -> None:
    def make() -> RequestParser | ResponseParser:
        return RequestParser(_LIMITS) if kind == 0 else ResponseParser(_LIMITS)

    whole = _parse(make(), [data], eof)
    pieces = _parse(make(), [data[i : i + step] for i in range(0, len(data), step)], eof)
    assert whole == pieces, (whole, pieces)


def _check_server(data: bytes, flags: int) -> None:
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()] if flags & 1 else None,
        subprotocols=["chat", "superchat"] if flags & 2 else None,
        limits=_LIMITS,
        max_size=1024,
    )
    split = len(data) // 2 if flags & 4 else len(data)
    server.receive_data(data[:split])
    for event in server.events():
        assert isinstance(event, RequestReceived)
        response = server.accept(event.request)
        assert (response.status_code == 101) == (server.handshake_exc is None)
        server.send_response(response)
    server.receive_data(data[split:])
    server.events()
    if server.state is State.CLOSED:
        assert server.close_transport
    output = b"".join(server.data_to_send())
    if server.response is not None:
        # Whatever the server answers, a client must be able to read it.
        parser = ResponseParser()
        parser.receive_data(output)
        assert parser.result is not None
        assert parser.result.status_code == server.response.status_code
    server.receive_eof()


def _check_client(data: bytes, flags: int) -> None:
    client = ClientProtocol(
        "ws://example.com/chat",
        extensions=[ClientPerMessageDeflateFactory()] if flags & 1 else None,
        subprotocols=["chat", "superchat"] if flags & 2 else None,
        limits=_LIMITS,
        max_size=1024,
    )
    client.key = CLIENT_KEY
    client.send_request(client.connect())
    split = len(data) // 2 if flags & 4 else len(data)
    client.receive_data(data[:split])
    client.receive_data(data[split:])
    events = client.events()
    if client.response is not None:
        assert isinstance(events[0], ResponseReceived)
        assert (client.state is State.CLOSED) == (client.handshake_exc is not None)
    if client.handshake_exc is not None:
        assert client.close_transport
    client.receive_eof()
    assert client.state is State.CLOSED


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    flags = source.byte()
    step = source.byte() % 16 + 1
    stream = source.rest()
    target = flags & 3
    if target < 2:
        _check_parser(target, stream, step, bool(flags & 4))
    elif target == 2:
        _check_server(stream, flags >> 2)
    else:
        _check_client(stream, flags >> 2)


if __name__ == "__main__":
    run(TestOneInput)
