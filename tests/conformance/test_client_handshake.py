"""Hostile servers against tether's clients: a corrupted opening handshake response fails cleanly.

A handshake corruption table: each case takes the valid 101 answer of the
peer server (:func:`tests.conformance.peer.accept_lines`) and corrupts one
thing in it, or answers slowly, partly or never. Against both
:func:`tether.connect` and :func:`tether.sync.connect`, each case checks
the exact exception the client raises, and that the client then closes TCP
without sending anything: RFC 6455 section 4.1 says the client MUST "fail
the WebSocket Connection" when the response breaks any of its rules, and
a failed handshake has no frames to send. Timeouts are short here on
purpose: ``open_timeout`` is what these cases test.

A few responses are odd but valid, and must open the connection: they come
last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import tether
import tether.sync
from tests.conformance.edits import Edit, add, both, drop, lower_name, replace, start_line
from tests.conformance.peer import (
    Peer,
    ReadHead,
    Responder,
    accept_lines,
    encode_frame,
    peer_server,
)
from tests.conformance.servers import DEADLINE
from tether.exceptions import (
    DuplicateParameter,
    HeaderLineTooLong,
    InvalidHeader,
    InvalidHeaderFormat,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidParameterName,
    InvalidParameterValue,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
    TooManyHeaders,
)
from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.frames import Opcode
from tether.protocol.handshake import accept_key
from tether.protocol.http11 import Limits

LIMITS = Limits()
"""The clients' HTTP limits: connect() keeps the defaults."""

OPEN_TIMEOUT = 0.5
"""The clients' open_timeout in the cases that wait for it."""

Action = Callable[[Peer], Awaitable[None]]
"""What the peer server does after writing its answer, while the client waits."""


def accept_of(lines: list[bytes]) -> bytes:
    """The ``Sec-WebSocket-Accept`` line of a valid answer."""
    (line,) = [line for line in lines if line.startswith(b"Sec-WebSocket-Accept:")]
    return line


def respond_with(edit: Edit, *, eol: bytes = b"\r\n", tail: bytes = b"") -> Responder:
    """Answer with the valid 101's lines as ``edit`` leaves them, then ``tail``."""

    def respond(request: ReadHead) -> bytes:
        return eol.join(edit(accept_lines(request))) + eol + eol + tail

    return respond


def no_answer(request: ReadHead) -> bytes:
    """Answer nothing, for now."""
    return b""


async def half_close(peer: Peer) -> None:
    """Send EOF and keep reading, to see the client close TCP in turn."""
    peer.writer.write_eof()


async def slowly(peer: Peer) -> None:
    """Write the valid answer one byte every 50 ms: the whole of it takes seconds."""
    assert peer.head is not None
    data = respond_with(lambda lines: lines)(peer.head)
    await peer.write(data, split=range(1, len(data)), pause=0.05)


def pmd(params: str) -> Edit:
    """Answer permessage-deflate with ``params``."""
    return add(b"Sec-WebSocket-Extensions: permessage-deflate" + params.encode())


@dataclass(frozen=True)
class Case:
    """One corrupted answer and what the client must raise."""

    id: str
    respond: Responder
    error: type[Exception]
    then: Action | None = None
    """Run while the client waits: half-close, or write the answer slowly."""
    options: dict[str, Any] = field(default_factory=dict)
    """The client's options: what it offers."""
    name: str | None = None
    """The header an InvalidHeader is about."""
    cause: type[BaseException] | None = None
    """The refusal of the extension factory, or the EOFError, behind the error."""
    status_code: int | None = None


def invalid(
    id: str, edit: Edit, error: type[Exception], *, eol: bytes = b"\r\n", **kwargs: Any
) -> Case:
    return Case(id, respond_with(edit, eol=eol), error, **kwargs)


def refused_deflate(id: str, params: str, cause: type[BaseException], **kwargs: Any) -> Case:
    """An answer with permessage-deflate ``params`` that the client's extension refuses."""
    return invalid(id, pmd(params), NegotiationError, cause=cause, **kwargs)


WITHOUT_CLIENT_WINDOW = {
    "extensions": [ClientPerMessageDeflateFactory(client_max_window_bits=None)],
}

CASES = [
    # RFC 6455 section 4.1, step 1: the status code must be 101.
    invalid(
        "status-200",
        both(start_line(b"HTTP/1.1 200 OK"), add(b"Content-Length: 0")),
        InvalidStatus,
        status_code=200,
    ),
    # Redirects are followed (tests/asyncio/test_redirects.py), but not
    # without a Location, nor for a status websockets does not follow.
    invalid(
        "status-301-without-location",
        both(start_line(b"HTTP/1.1 301 Moved Permanently"), add(b"Content-Length: 0")),
        InvalidStatus,
        status_code=301,
    ),
    invalid(
        "status-305-location",
        both(
            start_line(b"HTTP/1.1 305 Use Proxy"),
            add(b"Location: ws://127.0.0.1:1/elsewhere", b"Content-Length: 0"),
        ),
        InvalidStatus,
        status_code=305,
    ),
    Case(
        "status-400",
        respond_with(
            both(start_line(b"HTTP/1.1 400 Bad Request"), add(b"Content-Length: 4")), tail=b"nope"
        ),
        InvalidStatus,
        status_code=400,
    ),
    Case(
        "status-500-body-until-eof",
        respond_with(start_line(b"HTTP/1.1 500 Internal Server Error"), tail=b"oops"),
        InvalidStatus,
        then=half_close,
        status_code=500,
    ),
    # Steps 2 and 3: Upgrade: websocket and Connection: Upgrade.
    invalid("upgrade-missing", drop(b"Upgrade"), InvalidUpgrade, name="Upgrade"),
    invalid("upgrade-h2c", replace(b"Upgrade", b"h2c"), InvalidUpgrade, name="Upgrade"),
    invalid(
        "upgrade-two-protocols",
        replace(b"Upgrade", b"websocket, h2c"),
        InvalidUpgrade,
        name="Upgrade",
    ),
    invalid("connection-missing", drop(b"Connection"), InvalidUpgrade, name="Connection"),
    invalid(
        "connection-keep-alive",
        replace(b"Connection", b"keep-alive"),
        InvalidUpgrade,
        name="Connection",
    ),
    # Step 4: Sec-WebSocket-Accept.
    invalid(
        "accept-wrong",
        replace(b"Sec-WebSocket-Accept", accept_key("another key").encode()),
        InvalidHeaderValue,
        name="Sec-WebSocket-Accept",
    ),
    invalid(
        "accept-missing",
        drop(b"Sec-WebSocket-Accept"),
        InvalidHeader,
        name="Sec-WebSocket-Accept",
    ),
    invalid(
        "accept-duplicate",
        lambda lines: [*lines, accept_of(lines)],
        InvalidHeader,
        name="Sec-WebSocket-Accept",
    ),
    # Step 5: extensions the client did not offer, or answered wrongly
    # (RFC 7692 section 7.1).
    invalid(
        "extension-not-offered",
        pmd(""),
        NegotiationError,
        options={"compression": None},
    ),
    invalid("unknown-extension", add(b"Sec-WebSocket-Extensions: x-unknown"), NegotiationError),
    refused_deflate("deflate-twice", ", permessage-deflate", NegotiationError),
    refused_deflate(
        "server-window-over-offer",
        "; server_max_window_bits=10",
        NegotiationError,
        options={"extensions": [ClientPerMessageDeflateFactory(server_max_window_bits=9)]},
    ),
    refused_deflate("server-window-16", "; server_max_window_bits=16", InvalidParameterValue),
    refused_deflate("server-window-7", "; server_max_window_bits=7", InvalidParameterValue),
    refused_deflate("server-window-abc", "; server_max_window_bits=abc", InvalidParameterValue),
    refused_deflate("server-window-bare", "; server_max_window_bits", InvalidParameterValue),
    refused_deflate(
        "client-window-not-offered",
        "; client_max_window_bits=10",
        NegotiationError,
        options=WITHOUT_CLIENT_WINDOW,
    ),
    refused_deflate("client-window-bare", "; client_max_window_bits", InvalidParameterValue),
    refused_deflate(
        "duplicate-param",
        "; server_no_context_takeover; server_no_context_takeover",
        DuplicateParameter,
    ),
    refused_deflate(
        "duplicate-window",
        "; server_max_window_bits=10; server_max_window_bits=10",
        DuplicateParameter,
    ),
    refused_deflate("unknown-param", "; mystery=1", InvalidParameterName),
    refused_deflate("flag-with-value", "; server_no_context_takeover=1", InvalidParameterValue),
    invalid("extensions-malformed", pmd(";"), InvalidHeaderFormat, name="Sec-WebSocket-Extensions"),
    invalid(
        "extensions-empty",
        add(b"Sec-WebSocket-Extensions: "),
        InvalidHeaderFormat,
        name="Sec-WebSocket-Extensions",
    ),
    # Step 6: subprotocols the client did not offer.
    invalid(
        "subprotocol-not-offered",
        add(b"Sec-WebSocket-Protocol: superchat"),
        NegotiationError,
        options={"subprotocols": ["chat"]},
    ),
    invalid(
        "subprotocol-none-offered",
        add(b"Sec-WebSocket-Protocol: chat"),
        NegotiationError,
    ),
    invalid(
        "subprotocol-empty",
        add(b"Sec-WebSocket-Protocol: "),
        InvalidHeaderFormat,
        name="Sec-WebSocket-Protocol",
        options={"subprotocols": ["chat"]},
    ),
    invalid(
        "two-subprotocols",
        add(b"Sec-WebSocket-Protocol: chat, superchat"),
        InvalidHeader,
        name="Sec-WebSocket-Protocol",
        options={"subprotocols": ["chat", "superchat"]},
    ),
    invalid(
        "two-subprotocol-fields",
        add(b"Sec-WebSocket-Protocol: chat", b"Sec-WebSocket-Protocol: chat"),
        InvalidHeader,
        name="Sec-WebSocket-Protocol",
        options={"subprotocols": ["chat"]},
    ),
    # The head's limits: a header flood.
    invalid(
        "too-many-headers",
        add(*[b"X-Flood-%d: v" % index for index in range(LIMITS.max_headers)]),
        TooManyHeaders,
    ),
    invalid("line-too-long", add(b"X-Long: " + b"a" * LIMITS.max_line), HeaderLineTooLong),
    invalid(
        "head-too-large",
        add(*[b"X-Big-%d: " % index + b"b" * 1000 for index in range(LIMITS.max_size // 1000)]),
        SecurityError,
    ),
    # HTTP syntax.
    invalid("http-1.0", start_line(b"HTTP/1.0 101 Switching Protocols"), InvalidMessage),
    invalid("http-2", start_line(b"HTTP/2 101"), InvalidMessage),
    invalid("not-http", start_line(b"SSH-2.0-OpenSSH_9.6"), InvalidMessage),
    invalid("status-not-digits", start_line(b"HTTP/1.1 1O1 Switching Protocols"), InvalidMessage),
    invalid("bare-lf", lambda lines: lines, InvalidMessage, eol=b"\n"),
    invalid("non-ascii-name-utf8", add(b"X-Caf\xc3\xa9: ok"), InvalidMessage),
    invalid("non-ascii-name-byte", add(b"\xff: ok"), InvalidMessage),
    invalid("nul-in-value", add(b"X-Name: a\x00b"), InvalidMessage),
    invalid("space-before-colon", add(b"X-Name : v"), InvalidMessage),
    invalid("obs-fold", add(b"X-Name: a", b" folded"), InvalidMessage),
    invalid("no-colon", add(b"X-Name"), InvalidMessage),
    # Cut short, slow, silent.
    Case(
        "eof-mid-head",
        lambda request: b"\r\n".join(accept_lines(request)[:2]) + b"\r\n",
        InvalidMessage,
        then=half_close,
        cause=EOFError,
    ),
    Case("eof-before-answer", no_answer, InvalidMessage, then=half_close, cause=EOFError),
    Case(
        "never-answers",
        no_answer,
        TimeoutError,
        options={"open_timeout": OPEN_TIMEOUT},
    ),
    Case(
        "slowloris",
        no_answer,
        TimeoutError,
        then=slowly,
        options={"open_timeout": OPEN_TIMEOUT},
    ),
]

OPTIONS: dict[str, Any] = {"ping_interval": None, "open_timeout": DEADLINE / 2}

Attempt = Callable[..., Awaitable[Exception | None]]
"""Opens a connection with one of the clients; returns what it raised, or ``None``."""


async def asyncio_attempt(uri: str, **options: Any) -> Exception | None:
    try:
        ws = await tether.connect(uri, **options)
    except Exception as exc:
        return exc
    await ws.close()
    return None


async def sync_attempt(uri: str, **options: Any) -> Exception | None:
    def attempt() -> Exception | None:
        try:
            ws = tether.sync.connect(uri, **options)
        except Exception as exc:
            return exc
        ws.close()
        return None

    return await asyncio.to_thread(attempt)


async def check_refused(case: Case, attempt: Attempt) -> None:
    """Play ``case`` against a client; check the exception and that TCP closes."""
    async with peer_server(case.respond) as server:
        outcome = asyncio.ensure_future(attempt(server.uri, **{**OPTIONS, **case.options}))
        action: asyncio.Future[None] | None = None
        try:
            async with asyncio.timeout(DEADLINE):
                peer = await server.peers.get()
                if case.then is not None:
                    action = asyncio.ensure_future(case.then(peer))
                exc = await outcome
        finally:
            outcome.cancel()
            if action is not None:
                action.cancel()
        assert type(exc) is case.error, repr(exc)
        if case.name is not None:
            assert isinstance(exc, InvalidHeader)
            assert exc.name == case.name, exc
        if case.cause is not None:
            assert type(exc.__cause__) is case.cause, repr(exc.__cause__)
        if case.status_code is not None:
            assert isinstance(exc, InvalidStatus)
            assert exc.response.status_code == case.status_code
        # The client drops TCP at once, and sends no frame before that.
        await peer.expect_eof()
        assert peer.frames == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_asyncio_client_refuses(case: Case) -> None:
    await check_refused(case, asyncio_attempt)


@pytest.mark.asyncio(loop_factories=["asyncio"])
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_sync_client_refuses(case: Case) -> None:
    await check_refused(case, sync_attempt)


# Odd but valid answers: the connection opens, and the bytes right after the
# head are the WebSocket stream.

HELLO = encode_frame(Opcode.TEXT, b"hello", mask=False)

ACCEPTED = {
    # RFC 9112 section 6.3: a 1xx response ends with its head, whatever
    # Content-Length or Transfer-Encoding say (RFC 9110 section 8.6 and RFC
    # 9112 section 6.1 forbid the server to send them). Reading a body would
    # eat the first frame.
    "content-length-on-101": add(b"Content-Length: 5"),
    "transfer-encoding-on-101": add(b"Transfer-Encoding: chunked"),
    # RFC 7692 section 7.1.2.1: 8 to 15.
    "server-window-8": pmd("; server_max_window_bits=8"),
    "names-in-any-case": lambda lines: [lines[0], *map(lower_name, lines[1:])],
    "connection-list": replace(b"Connection", b"keep-alive, Upgrade"),
    "empty-reason": start_line(b"HTTP/1.1 101"),
    "unknown-headers": add(b"X-Custom: yes", b"Set-Cookie: a=b"),
}


@pytest.mark.parametrize("edit", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_asyncio_client_accepts(edit: Edit) -> None:
    async with peer_server(respond_with(edit, tail=HELLO)) as server:
        async with asyncio.timeout(DEADLINE):
            async with tether.connect(server.uri, close_timeout=0.1, **OPTIONS) as ws:
                assert await ws.recv() == "hello"


@pytest.mark.asyncio(loop_factories=["asyncio"])
@pytest.mark.parametrize("edit", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_sync_client_accepts(edit: Edit) -> None:
    def run(uri: str) -> str | bytes:
        with tether.sync.connect(uri, close_timeout=0.1, **OPTIONS) as ws:
            return ws.recv(timeout=DEADLINE)

    async with peer_server(respond_with(edit, tail=HELLO)) as server:
        async with asyncio.timeout(DEADLINE):
            assert await asyncio.to_thread(run, server.uri) == "hello"
