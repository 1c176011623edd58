"""Hostile opening handshakes against tether's servers: the right status, quickly, never a hang.

Each case runs an echo server with a bystander (see
:mod:`tests.conformance.servers`): an attack on one connection must not stall
the others.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

import pytest

import tether
import tether.sync
from tests.conformance.peer import read_head
from tests.conformance.servers import (
    DEADLINE,
    echo_server,
    exchange,
    expect_refused,
    request,
    request_lines,
    status_of,
    sync_echo_server,
    sync_exchange,
)
from tether.protocol.header_values import parse_extensions, parse_subprotocols
from tether.protocol.http11 import Limits, Request

KiB = 1 << 10

# The server's HTTP limits: serve() keeps the defaults.
LIMITS = Limits()


async def expect_dropped(reader: asyncio.StreamReader) -> None:
    """Check that tether closes TCP without sending anything."""
    async with asyncio.timeout(DEADLINE):
        try:
            data = await reader.read(1)
        except ConnectionResetError:
            data = b""
    assert data == b"", f"tether answered {data!r}"


# Header floods


async def test_too_many_headers() -> None:
    async with echo_server() as (_, port):
        extra = [b"X-Flood-%d: v" % index for index in range(LIMITS.max_headers + 1)]
        await expect_refused(port, request(port, *extra), 431)


async def test_header_line_over_max_line() -> None:
    async with echo_server() as (_, port):
        line = b"X-Long: " + b"a" * LIMITS.max_line
        await expect_refused(port, request(port, line), 431)


async def test_header_line_over_max_line_without_end() -> None:
    # The limit holds before the line ends: tether need not wait for a CRLF.
    async with echo_server() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\r\n".join(request_lines(port)) + b"\r\nX-Long: ")
            writer.write(b"a" * (LIMITS.max_line + 1))
            await writer.drain()
            head = await read_head(reader)
            assert status_of(head) == 431, head
        finally:
            writer.transport.abort()


async def test_head_over_max_size() -> None:
    async with echo_server() as (_, port):
        count = LIMITS.max_size // 1000 + 1
        extra = [b"X-Big-%d: " % index + b"b" * 1000 for index in range(count)]
        assert count < LIMITS.max_headers
        await expect_refused(port, request(port, *extra), 431)


async def test_slowloris_one_byte_per_write() -> None:
    async with echo_server(open_timeout=0.3) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = request(port)
        dropped = asyncio.ensure_future(expect_dropped(reader))
        try:
            sent = 0
            # 20 ms per byte: the request would take seconds, the timeout is 0.3 s.
            while sent < len(data) and not dropped.done():
                writer.write(data[sent : sent + 1])
                sent += 1
                await asyncio.sleep(0.02)
            await dropped
            assert sent < len(data), "the whole request went through before the timeout"
        finally:
            dropped.cancel()
            writer.transport.abort()
        async with asyncio.timeout(DEADLINE):
            while len(server.connections) > 1:
                await asyncio.sleep(0.01)


async def test_handshake_that_never_completes() -> None:
    async with echo_server(open_timeout=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso")
            await writer.drain()
            await expect_dropped(reader)
        finally:
            writer.transport.abort()


async def test_many_connections_that_never_send_a_handshake() -> None:
    count = 300
    async with echo_server(open_timeout=0.3) as (server, port):
        streams = []
        try:
            for _ in range(count):
                streams.append(await asyncio.open_connection("127.0.0.1", port))
            # Meanwhile a new client gets through, as well as the bystander.
            async with tether.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
                await ws.send("through")
                async with asyncio.timeout(DEADLINE):
                    assert await ws.recv() == "through"
            await asyncio.gather(*(expect_dropped(reader) for reader, _ in streams))
        finally:
            for _, writer in streams:
                writer.transport.abort()
        # Only the bystander is left.
        async with asyncio.timeout(DEADLINE):
            while len(server.connections) > 1:
                await asyncio.sleep(0.01)
        assert len(server.connections) == 1


# Hostile Sec-WebSocket-Extensions and Sec-WebSocket-Protocol values


def hostile(head: str, unit: str, tail: str, size: int) -> str:
    """``unit`` repeated between ``head`` and ``tail``, ``size`` characters in all at most."""
    count = (size - len(head) - len(tail)) // len(unit)
    return head + unit * count + tail


# Values known to make backtracking parsers explode, as (head, unit, tail):
# long runs of separators, of parameters, of escapes, then a bad end.
HOSTILE_EXTENSIONS = [
    ("a", ";", ""),
    ("permessage-deflate; ", "x=", ""),
    ('permessage-deflate; x="', "\\\\", ""),
    ('permessage-deflate; x="', "\\", "\\"),
    ("", ", ", ""),
    ("permessage-deflate;", " ", ";"),
    ("permessage-deflate", ";x", "="),
    ("", "a,", ";"),
    ('"', "\\\\", ""),
    ("", "=", ""),
]


HOSTILE_PROTOCOLS = [
    ("", ", ", ""),
    ("", "a ", "b"),
    ("", "a,", '"'),
    ('"', "\\\\", ""),
    ("", "chat;", ""),
    ("", "\t", "x y"),
]


@pytest.mark.parametrize("parts", HOSTILE_EXTENSIONS, ids=range(len(HOSTILE_EXTENSIONS)))
async def test_hostile_extensions_header(parts: tuple[str, str, str]) -> None:
    async with echo_server(compression="deflate") as (_, port):
        value = hostile(*parts, LIMITS.max_line - 64)
        line = b"Sec-WebSocket-Extensions: " + value.encode()
        async with asyncio.timeout(DEADLINE):
            head = await expect_refused(port, request(port, line), 400)
        # The answer quotes the value, but no more than one line of it.
        (length,) = head.get("Content-Length")
        assert int(length) < 2 * LIMITS.max_line


@pytest.mark.parametrize("parts", HOSTILE_PROTOCOLS, ids=range(len(HOSTILE_PROTOCOLS)))
async def test_hostile_protocol_header(parts: tuple[str, str, str]) -> None:
    async with echo_server(subprotocols=["chat"]) as (_, port):
        value = hostile(*parts, LIMITS.max_line - 64)
        line = b"Sec-WebSocket-Protocol: " + value.encode()
        async with asyncio.timeout(DEADLINE):
            await expect_refused(port, request(port, line), 400)


async def test_hostile_values_fill_the_whole_head() -> None:
    # Several hostile lines up to max_size: still linear, still 400.
    async with echo_server(compression="deflate", subprotocols=["chat"]) as (_, port):
        per_line = LIMITS.max_line - 64
        lines = [b"Sec-WebSocket-Protocol: " + (b"a," * per_line)[:per_line]] * 3
        lines += [b"Sec-WebSocket-Extensions: " + b"a" + b";" * (per_line - 1)] * 3
        data = request(port, *lines)
        assert len(data) < LIMITS.max_size
        async with asyncio.timeout(DEADLINE):
            await expect_refused(port, data, 400)


@pytest.mark.parametrize("parts", HOSTILE_EXTENSIONS, ids=range(len(HOSTILE_EXTENSIONS)))
async def test_extension_parser_is_linear_at_full_length(parts: tuple[str, str, str]) -> None:
    # The server's limits cut these values; the parser itself gets them whole.
    # A thread keeps the loop free, so the timeout fires even on a hang.
    with pytest.raises(tether.exceptions.InvalidHandshake):
        async with asyncio.timeout(DEADLINE):
            await asyncio.to_thread(parse_extensions, hostile(*parts, 60000))


@pytest.mark.parametrize("parts", HOSTILE_PROTOCOLS, ids=range(len(HOSTILE_PROTOCOLS)))
async def test_protocol_parser_is_linear_at_full_length(parts: tuple[str, str, str]) -> None:
    with pytest.raises(tether.exceptions.InvalidHandshake):
        async with asyncio.timeout(DEADLINE):
            await asyncio.to_thread(parse_subprotocols, hostile(*parts, 60000))


@pytest.mark.parametrize(
    "bits", ["0", "7", "16", "99999", "-1", "", "abc", "1" * 4000, '"7"', '"1_"']
)
async def test_server_max_window_bits_out_of_range(bits: str) -> None:
    async with echo_server(compression="deflate") as (_, port):
        offer = f"permessage-deflate; server_max_window_bits={bits}"
        line = b"Sec-WebSocket-Extensions: " + offer.encode()
        async with asyncio.timeout(DEADLINE):
            head, _ = await exchange(port, request(port, line))
        if bits == "":
            # No value after "=" breaks the header's grammar.
            assert status_of(head) == 400, head
        else:
            # A well-formed offer with a bad value is declined: no compression.
            assert status_of(head) == 101, head
            assert head.get("Sec-WebSocket-Extensions") == [], head


async def test_valid_offer_after_out_of_range_one_is_taken() -> None:
    async with echo_server(compression="deflate") as (_, port):
        offer = "permessage-deflate; server_max_window_bits=7, permessage-deflate"
        line = b"Sec-WebSocket-Extensions: " + offer.encode()
        head, _ = await exchange(port, request(port, line))
        assert status_of(head) == 101, head
        (answer,) = head.get("Sec-WebSocket-Extensions")
        assert answer.startswith("permessage-deflate"), head
        assert "server_max_window_bits=7" not in answer, head


# Non-ASCII


@pytest.mark.parametrize(
    "line",
    [b"X-Caf\xc3\xa9: ok", b"X-Caf\xe9: ok", b"\xff: ok", b"X-Nul\x00: ok"],
    ids=["utf8-name", "latin1-name", "byte-name", "nul-name"],
)
async def test_non_ascii_header_name(line: bytes) -> None:
    async with echo_server() as (_, port):
        await expect_refused(port, request(port, line), 400)


async def test_non_ascii_header_value_is_latin1() -> None:
    # Documented in tether.protocol.http11: obs-text survives as latin-1.
    seen: list[str] = []

    def process_request(ws: object, request: Request) -> None:
        seen.extend(request.headers.get_all("X-Name"))

    async with echo_server(process_request=process_request) as (_, port):
        head, _ = await exchange(port, request(port, b"X-Name: caf\xc3\xa9 \xff"))
        assert status_of(head) == 101, head
    assert seen == ["caf\xc3\xa9 \xff"]


@pytest.mark.parametrize(
    "line",
    [b"X-Name: a\x00b", b"X-Name: a\x7fb", b"X-Name: a\rb", b"X-Name: a\x1bb"],
    ids=["nul", "del", "cr", "esc"],
)
async def test_control_character_in_header_value(line: bytes) -> None:
    async with echo_server() as (_, port):
        await expect_refused(port, request(port, line), 400)


async def test_non_ascii_subprotocol() -> None:
    async with echo_server(subprotocols=["chat"]) as (_, port):
        line = b"Sec-WebSocket-Protocol: ch\xc3\xa4t"
        await expect_refused(port, request(port, line), 400)


async def test_non_ascii_in_request_target() -> None:
    async with echo_server() as (_, port):
        data = request(port).replace(b"GET / ", b"GET /caf\xc3\xa9 ", 1)
        await expect_refused(port, data, 400)


# Request smuggling


SMUGGLING = {
    "duplicate-content-length": [b"Content-Length: 0", b"Content-Length: 0"],
    "conflicting-content-length": [b"Content-Length: 0", b"Content-Length: 5"],
    "content-length-list": [b"Content-Length: 0, 0"],
    "content-length-with-body": [b"Content-Length: 5"],
    "transfer-encoding": [b"Transfer-Encoding: chunked"],
    "transfer-encoding-and-length": [b"Transfer-Encoding: chunked", b"Content-Length: 0"],
    "transfer-encoding-identity": [b"Transfer-Encoding: identity"],
    "space-before-colon": [b"Transfer-Encoding : chunked"],
    "obs-fold": [b"X-Folded: a", b" Transfer-Encoding: chunked"],
}


@pytest.mark.parametrize("extra", SMUGGLING.values(), ids=SMUGGLING.keys())
async def test_request_smuggling(extra: list[bytes]) -> None:
    async with echo_server() as (_, port):
        # A body that would read as a frame if tether skipped past it.
        body = b"0\r\n\r\n" if b"chunked" in b"".join(extra) else b"hello"
        await expect_refused(port, request(port, *extra) + body, 400)


async def test_bare_lf_line_endings() -> None:
    async with echo_server() as (_, port):
        data = request(port).replace(b"\r\n", b"\n")
        await expect_refused(port, data, 400)


async def test_two_requests_in_one_write() -> None:
    # A pipelined second request is no handshake: it is bytes for the
    # WebSocket stream, which refuses them as an unmasked or invalid frame.
    async with echo_server() as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request(port) + request(port))
            await writer.drain()
            head = await read_head(reader)
            assert status_of(head) == 101, head
            async with asyncio.timeout(DEADLINE):
                rest = head.rest + await reader.read()
            # A close frame with 1002, then TCP closed.
            assert rest[0] == 0x88, rest
            assert rest[2:4] == b"\x03\xea", rest
        finally:
            writer.transport.abort()


# The threading server


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ([b"X-Flood-%d: v" % index for index in range(LIMITS.max_headers + 1)], 431),
        ([b"X-Long: " + b"a" * LIMITS.max_line], 431),
        ([b"Content-Length: 0", b"Content-Length: 0"], 400),
        ([b"Transfer-Encoding: chunked"], 400),
        (
            [b"Sec-WebSocket-Extensions: " + hostile("a", ";", "", LIMITS.max_line - 64).encode()],
            400,
        ),
        ([b"X-Caf\xc3\xa9: ok"], 400),
    ],
    ids=["too-many", "too-long", "content-length", "transfer-encoding", "extensions", "name"],
)
def test_sync_refused(extra: list[bytes], status: int) -> None:
    with sync_echo_server(compression="deflate") as (_, port):
        answer = sync_exchange(port, request(port, *extra))
        assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]


def test_sync_handshake_that_never_completes() -> None:
    with sync_echo_server(open_timeout=0.3) as (_, port):
        answer = sync_exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso")
        assert answer == b""


def test_sync_many_connections_that_never_send_a_handshake() -> None:
    with sync_echo_server(open_timeout=0.3) as (_, port):
        socks = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) for _ in range(50)]
        try:
            # Each idle connection holds a thread, not the server: others get in.
            with tether.sync.connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as ws:
                ws.send("through")
                assert ws.recv(timeout=DEADLINE) == "through"
            for sock in socks:
                with suppress(ConnectionResetError):
                    assert sock.recv(1) == b""
        finally:
            for sock in socks:
                sock.close()
