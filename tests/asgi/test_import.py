"""uvicorn is an optional dependency: only ``tether.asgi`` imports it."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(output.split())


def test_import_tether_does_not_import_uvicorn() -> None:
    modules = _modules_after("import tether, tether.asyncio, tether.sync")
    assert "tether" in modules
    assert not {name for name in modules if name.split(".")[0] in {"uvicorn", "starlette"}}


def test_tether_asgi_imports_uvicorn() -> None:
    modules = _modules_after("import tether.asgi")
    assert "uvicorn.protocols.utils" in modules
