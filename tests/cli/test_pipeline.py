"""The client in shell pipelines: stdin lines out, replies on stdout, and its exit status."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

import tether
from tests.cli.conftest import TETHER, WAIT, DemoServer
from tether.asyncio.server import ServerConnection


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``tether`` with ``args`` and ``stdin``, to completion."""
    return subprocess.run(
        [*TETHER, *args], input=stdin, capture_output=True, timeout=WAIT, check=False
    )


async def run_async(*args: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    """Run ``tether`` without blocking the event loop, for servers running in the test."""
    process = await asyncio.create_subprocess_exec(
        *TETHER,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out, err


def test_stdin_lines_are_sent_and_replies_printed(demo_server: DemoServer) -> None:
    result = run(demo_server.uri("/echo"), stdin=b"a\nb\n\nlast line without newline")
    assert result.stdout == b"a\nb\n\nlast line without newline\n"
    assert result.stderr == b""
    assert result.returncode == 0


def test_batch_forced_with_no_input(demo_server: DemoServer) -> None:
    result = run("--batch", "--wait", "0", demo_server.uri("/echo"))
    assert result.stdout == b""
    assert result.returncode == 0


def test_unicode_round_trip(demo_server: DemoServer) -> None:
    result = run(demo_server.uri("/echo"), stdin="héllo wörld ✓\n".encode())
    assert result.stdout.decode() == "héllo wörld ✓\n"
    assert result.returncode == 0


async def test_header_subprotocol_origin_and_compression_reach_the_server() -> None:
    async def report(ws: ServerConnection) -> None:
        headers = ws.request_headers
        await ws.send(f"x-demo={headers.get('X-Demo')}")
        await ws.send(f"x-other={headers.get('X-Other')}")
        await ws.send(f"origin={headers.get('Origin')}")
        await ws.send(f"subprotocol={ws.subprotocol}")
        await ws.send(
            f"deflate={'permessage-deflate' in headers.get('Sec-WebSocket-Extensions', '')}"
        )
        await ws.send(b"\x00\x01\xff")

    async with tether.serve(report, "127.0.0.1", 0, subprotocols=["chat.v2"]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        uri = f"ws://127.0.0.1:{port}/"
        status, out, err = await run_async(
            "-H",
            "X-Demo: a value: with a colon",
            "--header=X-Other:2",
            "--subprotocol",
            "chat.v1",
            "--subprotocol",
            "chat.v2",
            "--origin",
            "https://example.test",
            "--no-compression",
            uri,
        )
        assert out.decode().splitlines() == [
            "x-demo=a value: with a colon",
            "x-other=2",
            "origin=https://example.test",
            "subprotocol=chat.v2",
            "deflate=False",
            "[binary, 3 bytes] 00 01 ff",
        ]
        assert err == b""
        assert status == 0
        # The server has subprotocols: a client must offer one of them.
        status, out, _ = await run_async("--subprotocol", "chat.v2", uri)
        assert "deflate=True" in out.decode().splitlines()
        assert status == 0


async def test_server_error_close_is_a_failure() -> None:
    async def fail(ws: ServerConnection) -> None:
        await ws.recv()
        raise RuntimeError("handler bug")

    async with tether.serve(fail, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        status, out, err = await run_async(f"ws://127.0.0.1:{port}/", stdin=b"boom\n")
    assert status == 1
    assert out == b""
    assert err.decode() == (
        "tether: connection closed: "
        "received 1011 (unexpected error); sent 1011 (unexpected error)\n"
    )


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        # Bound but not listening: connections to it are refused.
        result = run(f"ws://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"tether: cannot connect to ws://127.0.0.1:{port}/: Connection refused\n"
    )


def test_handshake_refused_shows_the_http_status(demo_server: DemoServer) -> None:
    result = run(demo_server.uri("/no/such/path"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "tether: the server refused the WebSocket connection: HTTP 404 Not Found\n"
    )


def test_invalid_uri_is_a_usage_error() -> None:
    result = run("http://127.0.0.1/")
    assert result.returncode == 2
    assert result.stderr.decode().startswith("tether: http://127.0.0.1/ isn't a valid URI")


def test_malformed_header_is_a_usage_error() -> None:
    result = run("-H", "no colon", "ws://127.0.0.1:9/")
    assert result.returncode == 2
    assert b"-H/--header: expected 'Name: value'" in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "tether"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, timeout=WAIT, check=False
    )
    assert result.returncode == 0
    assert result.stdout.decode().startswith("tether ")


def test_help_mentions_both_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    usage = result.stdout.decode()
    assert "tether [options] URI" in usage
    assert "tether serve" in usage
    assert "--insecure" in usage


async def test_wss_with_and_without_insecure() -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)

    async def hello(ws: ServerConnection) -> None:
        await ws.send("over TLS")

    async with tether.serve(hello, "127.0.0.1", 0, ssl=context) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        uri = f"wss://127.0.0.1:{port}/"
        # The test's authority is unknown to the client: verification fails.
        status, out, err = await run_async(uri)
        assert status == 1
        assert out == b""
        assert err.decode().startswith("tether: TLS certificate verification failed: ")
        assert err.decode().endswith("(--insecure skips it)\n")
        status, out, err = await run_async("--insecure", uri)
        assert (status, out, err) == (0, b"over TLS\n", b"")
