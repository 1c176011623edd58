"""The examples in the user docs run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


def test_readme_examples_run() -> None:
    blocks = _python_blocks(ROOT / "README.md")
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_core_demo_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "core_demo.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "subprotocol: chat.v1" in out
    assert "permessage-deflate" in out
    assert "server got Message(data='fragmented')" in out
    assert "ConnectionClosedOK" in out
