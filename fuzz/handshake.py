"""Fuzz the opening handshake: the HTTP/1.1 parsers and both engines.

The input's first byte picks what reads the rest: the request parser, the
response parser, a server engine or a client engine. The parsers must give
the same message, or the same error, whether the bytes come at once or in
pieces, and may raise only :class:`~tether.exceptions.InvalidHandshake`.
With the C accelerator, which reads a whole head in one call, they must give
exactly what the pure-Python parsers give (the same message and leftover
bytes, or the same error and message), and the C reader must take every
request with a ``GET /`` line, and every 101 response, that the Python
parser reads.
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
from tether.protocol.headers import Headers
from tether.protocol.http11 import (
    _SHARED,
    Limits,
    Request,
    RequestParser,
    ResponseParser,
)
from tether.protocol.server import ServerProtocol
from tether.protocol.speedups import speedups

__all__ = [
    "CLIENT_KEY",
    "PythonRequestParser",
    "PythonResponseParser",
    "TestOneInput",
    "check_c_readers",
]

CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
"""The client engine's key, fixed so that a stored response can match it (RFC 6455 section 1.3)."""

# Small enough for the fuzzer to reach every limit.
_LIMITS = Limits(max_line=256, max_headers=16, max_size=1024, max_body=512)


class PythonRequestParser(RequestParser):
    """The request parser without the C accelerator's head reader: the specification."""

    def _read_head_in_c(self) -> bool | None:
        return None


class PythonResponseParser(ResponseParser):
    """The response parser without the C accelerator's head reader: the specification."""

    def _read_head_in_c(self) -> bool | None:
        return None


def _parse(
    parser: RequestParser | ResponseParser,
    chunks: list[bytes],
    eof: bool,
    limits: Limits = _LIMITS,
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
        return ("error", type(exc), str(exc))
    result = parser.result
    if result is None:
        return ("incomplete",)
    if isinstance(result, Request):
        assert result.path.startswith("/")
        assert len(result.headers) <= limits.max_headers
    else:
        assert 100 <= result.status_code <= 999
        assert len(result.body) <= limits.max_body
    # The fields in order, with their spelling: Headers' == ignores both.
    fields = list(result.headers.raw_items())
    return ("done", repr(result), fields, parser.leftover)


def _check_parser(kind: int, data: bytes, step: int, eof: bool) -> None:
    def make() -> RequestParser | ResponseParser:
        return RequestParser(_LIMITS) if kind == 0 else ResponseParser(_LIMITS)

    whole = _parse(make(), [data], eof)
    pieces = _parse(make(), [data[i : i + step] for i in range(0, len(data), step)], eof)
    # How the bytes came may change an error's message (where it was seen),
    # not its type, and what is left over (the pieces after the message are
    # not fed).
    assert whole[:2] == pieces[:2], (whole, pieces)
    if whole[0] == "done":
        assert whole[:3] == pieces[:3], (whole, pieces)
    check_c_readers(kind, data, eof, _LIMITS)


def check_c_readers(kind: int, data: bytes, eof: bool, limits: Limits) -> None:
    """Check the C head readers on ``data``, a request (``kind`` 0) or a response.

    The parser gives what the pure-Python parser gives; the C reader's own
    answer is the Python parser's message and leftover bytes, and it leaves
    no usual head to the Python parser: a request whose line starts with
    ``GET /``, a 101 response. Without the C accelerator, only the first holds.
    """
    if kind == 0:
        parser: RequestParser | ResponseParser = RequestParser(limits)
        python: RequestParser | ResponseParser = PythonRequestParser(limits)
    else:
        parser, python = ResponseParser(limits), PythonResponseParser(limits)
    expected = _parse(python, [data], eof, limits)
    got = _parse(parser, [data], eof, limits)
    assert got == expected, (got, expected)
    if speedups is None:
        return
    if kind == 0:
        head = speedups.read_request_head(
            data, limits.max_line, limits.max_headers, limits.max_size, _SHARED
        )
        if head is not None:
            path, fields, end = head
            request = Request(path, Headers._adopt(fields))
            assert expected[0] == "done", expected
            assert expected[1:] == (repr(request), fields, data[end:])
        elif expected[0] == "done":
            assert not data.startswith(b"GET /"), "the C reader left a usual request"
    else:
        head = speedups.read_response_head(
            data, limits.max_line, limits.max_headers, limits.max_size, _SHARED, False
        )
        if head is None and data.startswith(b"HTTP/1.1 101"):
            assert expected[0] != "done", "the C reader left a usual 101 response"


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
