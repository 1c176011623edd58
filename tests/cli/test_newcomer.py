"""What a newcomer hits first: the version line, and errors that say what went wrong."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.cli.conftest import TETHER, WAIT
from tether.cli import version_line
from tether.protocol import speedups
from tether.version import __version__


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``tether`` with ``args`` to completion, with text output."""
    return subprocess.run(
        [*TETHER, *args], capture_output=True, text=True, timeout=WAIT, check=False, env=env
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
