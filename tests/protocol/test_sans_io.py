"""The core does no I/O: it imports no networking, threading or event loop module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tether.extensions
import tether.protocol

FORBIDDEN = {"asyncio", "socket", "ssl", "threading", "selectors"}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_imports_no_io_module() -> None:
    packages = [tether.protocol, tether.extensions]
    files = [f for package in packages for f in Path(package.__path__[0]).rglob("*.py")]
    assert len(files) > 5
    for path in files:
        assert not (_imported_modules(path) & FORBIDDEN), path


def test_importing_the_core_loads_no_io_module() -> None:
    code = (
        "import sys\n"
        "import tether.protocol, tether.extensions.permessage_deflate\n"
        f"print(sorted(set({sorted(FORBIDDEN)!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
