"""Run every fuzz target under atheris for a few seconds, coverage-guided.

``test_targets.py`` replays known inputs; here libFuzzer mutates them, led
by coverage, so that each run of the suite tries a few thousand inputs
nobody has tried before. It proves that each target runs under atheris and
that it finds no crash in its brief run; a crash fails the test with the
fuzzer's traceback and the input. What the fuzzer finds goes to a temporary
directory: the committed corpus is only read, and the test checks that it
stays as it was.

atheris comes with the ``dev`` extra wherever it has a wheel (CPython 3.11
to 3.14 on x86-64 Linux); elsewhere ``make test`` leaves this module out and
says so, so a missing atheris here is a broken install, and fails.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.test_targets import CORPUS, TARGETS

ROOT = Path(__file__).parents[2]
# Seconds of fuzzing per target: about 20 s for the five, start-up included.
FUZZ_SECONDS = 3
# Bounds a run that would not stop: libFuzzer's own -max_total_time is
# checked only between inputs, and -timeout turns one stuck input into a
# failure that shows it.
INPUT_TIMEOUT = 30
RUN_TIMEOUT = 90
# What libFuzzer writes for a failing input: a crash, a slow or a leaking
# input, or one that ran out of memory.
ARTIFACTS = ("crash-*", "timeout-*", "leak-*", "oom-*", "slow-unit-*")


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def _report(output: str, artifacts: list[Path]) -> str:
    # libFuzzer's progress lines ("#1234 NEW cov: ...") would bury the traceback.
    lines = [line for line in output.splitlines() if not re.match(r"#\d+\s", line)][-60:]
    for path in artifacts:
        data = path.read_bytes()
        lines.append(f"{path.name} ({len(data)} bytes), base64: {base64.b64encode(data).decode()}")
    return "\n".join(lines)


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_briefly(name: str, tmp_path: Path) -> None:
    """The target runs under atheris for a few seconds and finds nothing."""
    assert importlib.util.find_spec("atheris") is not None, (
        "atheris is missing: `make test` installs it with the dev extra"
    )
    corpus = CORPUS / name
    before = _snapshot(corpus)
    finds = tmp_path / "finds"
    finds.mkdir()
    # A coverage measurement of the test run must not follow the fuzzer.
    env = {key: value for key, value in os.environ.items() if not key.startswith("COV")}
    command = [
        sys.executable,
        "-m",
        f"fuzz.{name}",
        # New finds go to the first directory; the committed corpus is read.
        str(finds),
        str(corpus),
        f"-max_total_time={FUZZ_SECONDS}",
        f"-timeout={INPUT_TIMEOUT}",
        f"-artifact_prefix={tmp_path}{os.sep}",
        "-print_final_stats=1",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode()
        pytest.fail(f"fuzz.{name} still running after {RUN_TIMEOUT} s\n{_report(output, [])}")
    output = result.stdout + result.stderr
    artifacts = sorted(path for pattern in ARTIFACTS for path in tmp_path.glob(pattern))
    assert result.returncode == 0, _report(output, artifacts)
    assert not artifacts, _report(output, artifacts)
    # libFuzzer says DONE when it stops at -max_total_time after fuzzing.
    assert "DONE" in output, _report(output, artifacts)
    assert _snapshot(corpus) == before
