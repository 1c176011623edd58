"""The source distribution: built without setuptools' warnings, with what it takes to test."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUILD = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"


def test_sdist_holds_docs_tests_and_examples(tmp_path: Path) -> None:
    # The same backend pip runs, in this environment: its output is what a user sees.
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    # The extension is declared in setup.py, not in the experimental pyproject table.
    assert "experimental" not in output
    assert "warning" not in output.lower()
    name = result.stdout.splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        names = {member.split("/", 1)[1] for member in sdist.getnames() if "/" in member}
    for expected in (
        "setup.py",
        "src/tether/_speedups.c",
        "src/tether/cli/page.html",
        "CHANGELOG.md",
        "Makefile",
        "docs/conf.py",
        "docs/index.md",
        "docs/client-faq.md",
        "examples/faq/shutdown_client.py",
        "tests/conftest.py",
        "tests/docs/test_pages.py",
        "tests/protocol/test_frames.py",
        "tests/interop/node/package-lock.json",
        "bench/memory.py",
        "fuzz/frames.py",
    ):
        assert expected in names, expected
    # Nothing built or installed locally comes along.
    assert not [n for n in names if n.endswith((".so", ".pyc")) or "node_modules" in n]
