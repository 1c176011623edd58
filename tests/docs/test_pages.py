"""Every code example of the documentation runs, and every shown program has a test.

- A ``python`` block of a page is a complete program: it runs in its own
  process, with an echo server on a free port in place of the demo's port
  8765 and a free port in place of the examples' 8766 (for programs that
  start their own server), and must exit with status 0. A ``text`` block
  right after it, with nothing but blank lines between, is what it prints.
- A ``pycon`` block is a doctest: its ``>>>`` lines run, and what they print
  must match.
- A program shown with ``literalinclude`` lives in ``examples/``, and a test
  of ``tests/docs`` runs it.
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.programs import DEMO_PORT, DOCS, EXAMPLE_PORT, ROOT, WAIT, free_port
from tether.sync import ServerConnection
from tether.testing import start_sync_server

# The FAQ's answers have a test of their own, which checks what each prints.
OWN_TESTS = {DOCS / "client-faq.md"}

PAGES = sorted(path for path in DOCS.rglob("*.md") if path not in OWN_TESTS)


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of ``path`` in ``language``."""
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), re.DOTALL | re.MULTILINE)


def programs(path: Path) -> list[tuple[str, str | None]]:
    """The ``python`` blocks of ``path``, each with the output shown right after it, if any."""
    found = re.findall(
        r"^```python\n(.*?)^```\n(?:\s*^```text\n(.*?)^```)?",
        path.read_text(),
        re.DOTALL | re.MULTILINE,
    )
    return [(code, output or None) for code, output in found]


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """A threading echo server, standing in for the demo server."""

    def echo(websocket: ServerConnection) -> None:
        for message in websocket:
            websocket.send(message)

    server = start_sync_server(echo)
    yield server.port
    server.stop()
    assert server.errors == []


def run_block(code: str, port: int) -> subprocess.CompletedProcess[str]:
    """Run one ``python`` block as a program, its ports replaced by ``port``."""
    code = code.replace(DEMO_PORT, str(port)).replace(EXAMPLE_PORT, str(free_port()))
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_page_examples_run(page: Path, echo_port: int) -> None:
    for code, output in programs(page):
        result = run_block(code, echo_port)
        assert result.returncode == 0, f"{page.name}:\n{code}\n{result.stderr}"
        if output is not None:
            assert result.stdout == output, f"{page.name}:\n{code}"
    for number, code in enumerate(blocks(page, "pycon")):
        test = doctest.DocTestParser().get_doctest(code, {}, f"{page.name}[{number}]", None, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0, f"{page.name}: a doctest failed (its output is above)"


def test_every_shown_program_has_a_test() -> None:
    tests = "".join(path.read_text() for path in Path(__file__).parent.glob("test_*.py"))
    shown = {
        (page.parent / include).resolve()
        for page in DOCS.rglob("*.md")
        for include in re.findall(r"^```\{literalinclude\} (\S+)", page.read_text(), re.MULTILINE)
    }
    assert shown, "no page shows a program"
    for program in shown:
        assert program.is_file(), program
        relative = program.relative_to(ROOT / "examples")
        named = relative.name in tests and relative.parent.name in tests
        assert named, f"no test in tests/docs runs examples/{relative}"
