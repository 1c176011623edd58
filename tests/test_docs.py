"""The examples in the user docs run as written."""

from __future__ import annotations

import re
import runpy
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tether.sync import ServerConnection
from tether.testing import LocalServer

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_readme_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    for block in blocks:
        # 8765 is the demo's port (make run): the examples must not take it.
        assert "8765" not in block
        # They use 8766; a free port keeps tests apart.
        code = block.replace("8766", str(_free_port()))
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    # One Hello! per example that connects: asyncio, threads and trio.
    assert capsys.readouterr().out.count("Hello!") == 3


def test_core_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "core_demo.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "subprotocol: chat.v1" in out
    assert "permessage-deflate" in out
    assert "server got Message(data='fragmented')" in out
    assert "ConnectionClosedOK" in out


SHUTDOWN_CLIENT = ROOT / "examples" / "faq" / "shutdown_client.py"


def _echo(websocket: ServerConnection) -> None:
    for message in websocket:
        websocket.send(message)


def test_client_faq_examples_run(tether_sync_server: Callable[..., LocalServer]) -> None:
    echo_port = tether_sync_server(_echo).port
    blocks = _python_blocks(ROOT / "docs" / "client-faq.md")
    assert len(blocks) >= 9
    # This one runs until SIGTERM: tests/asyncio/test_faq.py and
    # tests/cli/test_newcomer.py run the file, which the FAQ shows as it is.
    assert blocks.pop(7) == SHUTDOWN_CLIENT.read_text()
    outputs = []
    for block in blocks:
        # Each example runs alone, as a user would run it: signals stay in it.
        result = subprocess.run(
            [sys.executable, "-c", block.replace("8765", str(echo_port))],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == "some work\n"
    assert outputs[1] == "13\nwebsocket\n"
    assert outputs[2] == outputs[3] == "Bearer 0123456789\n"
    assert outputs[4] == "example.invalid:" + str(echo_port) + "\n"
    assert outputs[5] == "1000\n"
    assert outputs[6] == "hello\n"
    assert outputs[7] == f"{int(ssl.CERT_NONE)}\n"
