"""What a newcomer hits first: the version line, and errors that say what went wrong."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import TETHER, WAIT, DemoServer
from tether.cli import version_line
from tether.cli.client import format_json_line, parse_json_line
from tether.protocol import speedups
from tether.sync import connect
from tether.version import __version__


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``tether`` with ``args`` to completion, with text input and output."""
    return subprocess.run(
        [*TETHER, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        env=env,
        encoding="utf-8",
    )


def test_version_says_the_accelerator_is_active() -> None:
    env = {key: value for key, value in os.environ.items() if key != "TETHER_NO_SPEEDUPS"}
    result = run("--version", env=env)
    assert result.returncode == 0
    assert result.stdout == f"tether {__version__} (C accelerator: active)\n"


def test_version_says_the_accelerator_is_turned_off() -> None:
    result = run("--version", env={**os.environ, "TETHER_NO_SPEEDUPS": "1"})
    assert result.returncode == 0
    assert result.stdout == (
        f"tether {__version__} (C accelerator: off (TETHER_NO_SPEEDUPS is set), pure Python)\n"
    )


def test_version_says_the_accelerator_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a machine without a C compiler, where the import of tether._speedups failed.
    monkeypatch.delenv("TETHER_NO_SPEEDUPS", raising=False)
    monkeypatch.setattr(speedups, "speedups", None)
    assert version_line() == f"tether {__version__} (C accelerator: not built, pure Python)"


@pytest.fixture
def plain_http_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A plain HTTP server (Python's http.server) that knows nothing of WebSocket."""
    version: str = getattr(request, "param", "HTTP/1.0")

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = version

        def do_GET(self) -> None:
            body = b"<h1>just a web page</h1>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


def test_wss_against_a_plain_server_says_so(demo_server: DemoServer) -> None:
    result = run(f"wss://127.0.0.1:{demo_server.port}/echo")
    assert result.returncode == 1
    assert result.stderr == (
        "tether: TLS handshake failed (WRONG_VERSION_NUMBER): the server does not speak TLS; "
        "for a plain server, use ws:// instead of wss://\n"
    )


def test_http_1_0_server_is_not_a_websocket_server(plain_http_server: str) -> None:
    result = run(f"ws://{plain_http_server}/")
    assert result.returncode == 1
    assert result.stderr == (
        f"tether: ws://{plain_http_server}/ is not a WebSocket server: its answer is not a "
        "valid HTTP/1.1 handshake response (unsupported HTTP version 'HTTP/1.0'; "
        "expected HTTP/1.1)\n"
    )


@pytest.mark.parametrize("plain_http_server", ["HTTP/1.1"], indirect=True)
def test_web_server_that_ignores_the_upgrade(plain_http_server: str) -> None:
    result = run(f"ws://{plain_http_server}/page")
    assert result.returncode == 1
    assert result.stderr == (
        f"tether: ws://{plain_http_server}/page is not a WebSocket endpoint: the server "
        "answered HTTP 200 OK instead of switching to WebSocket\n"
    )


def test_server_that_closes_without_answering() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept_and_close() -> None:
            connection, _ = listener.accept()
            connection.recv(4096)
            connection.close()

        thread = threading.Thread(target=accept_and_close, daemon=True)
        thread.start()
        result = run(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        thread.join(WAIT)
    assert result.returncode == 1
    assert result.stderr == (
        "tether: the server closed the connection without answering the WebSocket handshake\n"
    )


def test_jsonl_keeps_messages_apart(demo_server: DemoServer) -> None:
    lines = ['"two\\nlines"', '{"binary": "AAH/"}', '"caf\\u00e9 \\ud83d\\ude00"', '""']
    result = run("--jsonl", demo_server.uri("/echo"), stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out == ['"two\\nlines"', '{"binary": "AAH/"}', '"café 😀"', '""']
    assert [parse_json_line(line) for line in out] == ["two\nlines", b"\x00\x01\xff", "café 😀", ""]


@pytest.mark.parametrize("line", ["[1]", '{"binary": "%%%"}'])
def test_jsonl_refuses_other_values(demo_server: DemoServer, line: str) -> None:
    result = run("--jsonl", demo_server.uri("/echo"), stdin=f'"first"\n{line}\n')
    assert result.returncode == 1
    assert result.stderr.startswith("tether: --jsonl: line 2 of stdin: ")


def test_json_lines_of_each_kind() -> None:
    assert format_json_line("a\nb") == '"a\\nb"'
    assert format_json_line(b"\x00") == '{"binary": "AA=="}'
    assert parse_json_line(format_json_line("ünï")) == "ünï"


def test_faq_shutdown_client_against_the_demo(demo_server: DemoServer) -> None:
    # The FAQ's program as a user runs it: its default URI, the demo's chat room.
    example = Path(__file__).resolve().parents[2] / "examples" / "faq" / "shutdown_client.py"
    code = example.read_text().replace("8765", str(demo_server.port))
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        connected = process.stdout.readline()
        assert connected == f"connected to {demo_server.uri('/chat')}; send SIGTERM to stop\n"
        with connect(demo_server.uri("/chat")) as other:
            other.send("hello room")
            assert other.recv(timeout=WAIT) == "hello room"
        assert process.stdout.readline() == "hello room\n"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=WAIT)
        assert process.returncode == 0, err
        assert out == "closed with 1000\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
