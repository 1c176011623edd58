"""The examples in the user docs run as written."""

from __future__ import annotations

import re
import runpy
import socket
from pathlib import Path

import pytest

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
        # The examples use port 8765 for readability; a free port keeps tests apart.
        code = block.replace("8765", str(_free_port()))
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert capsys.readouterr().out.count("Hello!") == 2


def test_core_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "core_demo.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "subprotocol: chat.v1" in out
    assert "permessage-deflate" in out
    assert "server got Message(data='fragmented')" in out
    assert "ConnectionClosedOK" in out
