"""Corrupted handshake requests against both servers: the exact HTTP status, then TCP closed.

Each case takes a valid request (:func:`tests.conformance.servers.request_lines`)
and corrupts one field of it. RFC 6455 section 4.2.1 says the server answers a
request that breaks its rules with "an appropriate error code (such as 400
Bad Request)"; tether's engine picks, and both servers must send:

* 426 Upgrade Required, with ``Upgrade: websocket``, when the request does
  not ask for a WebSocket upgrade, and with ``Sec-WebSocket-Version: 13``
  when it asks for another version (section 4.2.2);
* 405 Method Not Allowed, with ``Allow: GET``, for another method;
* 400 Bad Request for anything else malformed: Host, Sec-WebSocket-Key,
  HTTP version, request target.

The header floods, smuggling and non-ASCII of test_attacks_handshake are not
repeated here. Every case runs with a bystander (see
:mod:`tests.conformance.servers`). Requests that look odd but are valid come
last, and must open the connection.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass

import pytest

import tether.sync
from tests.conformance.edits import Edit, add, drop, lower_name, replace, start_line
from tests.conformance.servers import (
    DEADLINE,
    echo,
    exchange,
    expect_refused,
    request_lines,
    server_with_bystander,
    status_of,
    sync_echo,
    sync_echo_server,
    sync_server_with_bystander,
)
from tests.conformance.servers import echo_server as asyncio_echo_server
from tether.asyncio.server import ServerConnection


@dataclass(frozen=True)
class Refusal:
    """One corrupted request, the status it gets and headers the answer must have."""

    id: str
    edit: Edit
    status: int
    headers: tuple[tuple[str, str], ...] = ()


def key_of(size: int) -> bytes:
    """A Sec-WebSocket-Key of ``size`` bytes, where 16 are required."""
    return base64.b64encode(bytes(range(size)))


UPGRADE = (("Upgrade", "websocket"),)

REFUSALS = [
    Refusal("host-missing", drop(b"Host"), 400),
    Refusal("host-duplicate", add(b"Host: 127.0.0.1"), 400),
    # RFC 9112 section 3.2: 400 for "a Host header field with an invalid
    # field value" too.
    Refusal("host-with-space", replace(b"Host", b"127.0.0.1 evil"), 400),
    Refusal("host-with-path", replace(b"Host", b"127.0.0.1/chat"), 400),
    Refusal("host-with-user-info", replace(b"Host", b"user@127.0.0.1"), 400),
    Refusal("host-port-not-digits", replace(b"Host", b"127.0.0.1:http"), 400),
    Refusal("host-non-ascii", replace(b"Host", b"caf\xc3\xa9.example"), 400),
    Refusal("host-ipv6-unbracketed", replace(b"Host", b"::1"), 400),
    Refusal("key-missing", drop(b"Sec-WebSocket-Key"), 400),
    Refusal("key-duplicate", add(b"Sec-WebSocket-Key: " + key_of(16)), 400),
    Refusal("key-empty", replace(b"Sec-WebSocket-Key", b""), 400),
    Refusal("key-not-base64", replace(b"Sec-WebSocket-Key", b"not base64 at all!!!!!=="), 400),
    Refusal("key-15-bytes", replace(b"Sec-WebSocket-Key", key_of(15)), 400),
    Refusal("key-17-bytes", replace(b"Sec-WebSocket-Key", key_of(17)), 400),
    Refusal(
        "version-12",
        replace(b"Sec-WebSocket-Version", b"12"),
        426,
        (*UPGRADE, ("Sec-WebSocket-Version", "13")),
    ),
    Refusal(
        "version-8",
        replace(b"Sec-WebSocket-Version", b"8"),
        426,
        (("Sec-WebSocket-Version", "13"),),
    ),
    Refusal("version-missing", drop(b"Sec-WebSocket-Version"), 400),
    Refusal("version-duplicate", add(b"Sec-WebSocket-Version: 13"), 400),
    Refusal("upgrade-missing", drop(b"Upgrade"), 426, UPGRADE),
    Refusal("upgrade-h2c", replace(b"Upgrade", b"h2c"), 426, UPGRADE),
    Refusal("upgrade-two-protocols", replace(b"Upgrade", b"websocket, h2c"), 426, UPGRADE),
    Refusal("connection-missing", drop(b"Connection"), 426, UPGRADE),
    Refusal("connection-keep-alive", replace(b"Connection", b"keep-alive"), 426, UPGRADE),
    Refusal("method-post", start_line(b"POST / HTTP/1.1"), 405, (("Allow", "GET"),)),
    Refusal("method-head", start_line(b"HEAD / HTTP/1.1"), 405, (("Allow", "GET"),)),
    # Methods are case-sensitive (RFC 9110 section 9.1).
    Refusal("method-lower-case", start_line(b"get / HTTP/1.1"), 405, (("Allow", "GET"),)),
    Refusal("http-1.0", start_line(b"GET / HTTP/1.0"), 505),
    Refusal("http-0.9", start_line(b"GET /"), 400),
    Refusal("http-lower-case", start_line(b"GET / http/1.1"), 505),
    Refusal("target-asterisk", start_line(b"GET * HTTP/1.1"), 400),
    Refusal("target-authority-form", start_line(b"GET 127.0.0.1:80 HTTP/1.1"), 400),
    Refusal("target-relative", start_line(b"GET chat HTTP/1.1"), 400),
    # RFC 6455 section 4.2.1 allows absolute http and https URIs, not ws.
    Refusal("target-absolute-ws", start_line(b"GET ws://127.0.0.1/ HTTP/1.1"), 400),
    # RFC 9110 section 4.2.1 and 4.2.4: no empty host, no user info.
    Refusal("target-absolute-empty-host", start_line(b"GET http:///chat HTTP/1.1"), 400),
    Refusal("target-absolute-user-info", start_line(b"GET http://u@127.0.0.1/ HTTP/1.1"), 400),
    Refusal("request-line-extra-space", start_line(b"GET  / HTTP/1.1"), 400),
]


async def check_refused(port: int, case: Refusal) -> None:
    """Send the corrupted request; check the status, the headers, and that TCP closes."""
    data = b"\r\n".join(case.edit(request_lines(port))) + b"\r\n\r\n"
    head = await expect_refused(port, data, case.status)
    for name, value in case.headers:
        assert head.get(name) == [value], head


@pytest.mark.parametrize("case", REFUSALS, ids=[case.id for case in REFUSALS])
async def test_asyncio_server_refuses(case: Refusal) -> None:
    async with asyncio_echo_server() as (_, port):
        await check_refused(port, case)


@pytest.mark.asyncio(loop_factories=["asyncio"])
@pytest.mark.parametrize("case", REFUSALS, ids=[case.id for case in REFUSALS])
async def test_sync_server_refuses(case: Refusal) -> None:
    with sync_echo_server() as (_, port):
        await check_refused(port, case)


# Odd but valid requests: 101, and the handler sees the resource name.

ACCEPTED = {
    # RFC 6455 section 4.2.1, item 1: "or an absolute HTTP/HTTPS URI
    # containing the /resource name/"; RFC 9112 section 3.2.2 too.
    "target-absolute-http": (
        start_line(b"GET http://127.0.0.1/chat?room=1 HTTP/1.1"),
        "/chat?room=1",
    ),
    "target-absolute-https": (start_line(b"GET HTTPS://example.com:443/a/b HTTP/1.1"), "/a/b"),
    "target-absolute-no-path": (start_line(b"GET http://127.0.0.1 HTTP/1.1"), "/"),
    "target-absolute-query-only": (start_line(b"GET http://127.0.0.1?x=1 HTTP/1.1"), "/?x=1"),
    "names-in-any-case": (lambda lines: [lines[0], *map(lower_name, lines[1:])], "/"),
    "host-name": (replace(b"Host", b"ws.example.com"), "/"),
    "host-ipv6": (replace(b"Host", b"[::1]:8080"), "/"),
    "host-reg-name-characters": (replace(b"Host", b"a-b_c~d.%41!$&'()*+,;=:80"), "/"),
    # RFC 9112 section 3.2: empty when the target URI has no authority.
    "host-empty": (replace(b"Host", b""), "/"),
    "upgrade-any-case": (replace(b"Upgrade", b"WebSocket"), "/"),
    "connection-list": (replace(b"Connection", b"keep-alive, Upgrade"), "/"),
    "content-length-zero": (add(b"Content-Length: 0"), "/"),
}


async def check_accepted(port: int, edit: Edit) -> None:
    """Send the edited request; check that it gets a 101."""
    head, _ = await exchange(port, b"\r\n".join(edit(request_lines(port))) + b"\r\n\r\n")
    assert status_of(head) == 101, head


@pytest.mark.parametrize(("edit", "path"), ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_asyncio_server_accepts(edit: Edit, path: str) -> None:
    paths: list[str] = []
    opened = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        opened.set()
        await echo(ws)

    async with server_with_bystander(handler) as (_, port):
        await check_accepted(port, edit)
        async with asyncio.timeout(DEADLINE):
            await opened.wait()
    assert paths == [path]


@pytest.mark.asyncio(loop_factories=["asyncio"])
@pytest.mark.parametrize(("edit", "path"), ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_sync_server_accepts(edit: Edit, path: str) -> None:
    paths: list[str] = []
    opened = threading.Event()

    def handler(ws: tether.sync.ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        opened.set()
        sync_echo(ws)

    with sync_server_with_bystander(handler) as (_, port):
        await check_accepted(port, edit)
        assert await asyncio.to_thread(opened.wait, DEADLINE)
    assert paths == [path]
