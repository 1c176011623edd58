"""How the C accelerator is built and loaded: never a stale module, never shared state.

- The accelerator under test is the one built from this tree's source, and
  that source compiles without a warning against this Python's headers.
- A failed build of setup.py leaves no module behind (an earlier build would
  otherwise be imported as this one), and fails the install when
  ``TETHER_REQUIRE_SPEEDUPS=1`` (the Makefile's development and CI installs).
- A subinterpreter runs tether in pure Python, and the main interpreter keeps
  the accelerator: its C state belongs to the main interpreter alone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import tether._speedups

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "tether" / "_speedups.c"

EDITABLE = (
    "import sys; from setuptools import build_meta; print(build_meta.build_editable(sys.argv[1]))"
)


def _without(name: str) -> dict[str, str]:
    """This process's environment without the variable ``name``."""
    return {key: value for key, value in os.environ.items() if key != name}


def test_the_accelerator_is_built_from_this_source() -> None:
    module = Path(tether._speedups.__file__)
    assert module.parent == SOURCE.parent
    assert module.name == "_speedups" + sysconfig.get_config_var("EXT_SUFFIX")
    # A module older than its source is a build that failed or never ran.
    assert module.stat().st_mtime >= SOURCE.stat().st_mtime, (
        f"{module.name} is older than _speedups.c: build it again (make .venv/.installed-dev)"
    )


def test_the_c_source_compiles_without_warnings(tmp_path: Path) -> None:
    # Against this interpreter's headers: a C API deprecated or changed in
    # a newer CPython warns here first (make test-python runs it there).
    compiler = shlex.split(sysconfig.get_config_var("CC"))
    flags = ["-O2", "-fPIC", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]
    include = sysconfig.get_paths()["include"]
    output = tmp_path / "speedups.o"
    result = subprocess.run(
        [*compiler, *flags, "-I", include, "-c", str(SOURCE), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _project_with_broken_source(tmp_path: Path) -> tuple[Path, Path]:
    # This project's build files, with a C source that cannot compile and a
    # module left by an earlier build where an editable install puts it.
    project = tmp_path / "project"
    package = project / "src" / "tether"
    package.mkdir(parents=True)
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(ROOT / name, project / name)
    shutil.copy(ROOT / "src" / "tether" / "version.py", package / "version.py")
    (project / "README.md").write_text("tether\n")
    (package / "__init__.py").write_text("")
    (package / "_speedups.c").write_text("#error this build must fail\n")
    stale = package / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    stale.write_bytes(b"a module built from other sources")
    return project, stale


def _build_editable(
    project: Path, tmp_path: Path, *, required: bool
) -> subprocess.CompletedProcess[str]:
    env = _without("TETHER_REQUIRE_SPEEDUPS")
    if required:
        env["TETHER_REQUIRE_SPEEDUPS"] = "1"
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", EDITABLE, str(wheels)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_failed_optional_build_leaves_no_stale_module(tmp_path: Path) -> None:
    project, stale = _project_with_broken_source(tmp_path)
    result = _build_editable(project, tmp_path, required=False)
    # A user's install without a working compiler goes on, in pure Python...
    assert result.returncode == 0, result.stderr
    assert "this build must fail" in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(".whl")
    # ...and imports no module built from other sources.
    assert not stale.exists()


def test_a_failed_required_build_fails_the_install(tmp_path: Path) -> None:
    project, _ = _project_with_broken_source(tmp_path)
    result = _build_editable(project, tmp_path, required=True)
    assert result.returncode != 0
    assert "this build must fail" in result.stdout + result.stderr


SUBINTERPRETER = textwrap.dedent(
    """
    import asyncio

    import tether
    from tether.protocol.speedups import speedups

    async def echo_round(count: int) -> None:
        async def handler(ws: tether.ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        async with tether.serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with tether.connect(f"ws://127.0.0.1:{port}") as ws:
                for size in range(count):
                    await ws.send("é" * size)
                    assert await ws.recv() == "é" * size
    """
)


def test_a_subinterpreter_runs_pure_python_and_leaves_the_accelerator_alone() -> None:
    # The subinterpreter imports tether first (the accelerator's classes
    # would then be its own) and ends before the main interpreter runs.
    sub = SUBINTERPRETER + (
        "print('sub accelerator', speedups is not None, flush=True)\nasyncio.run(echo_round(50))\n"
    )
    code = SUBINTERPRETER + (
        "import _testcapi\n"
        f"assert _testcapi.run_in_subinterp({sub!r}) == 0\n"
        "asyncio.run(echo_round(200))\n"
        "print('main accelerator', speedups is not None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**_without("TETHER_NO_SPEEDUPS"), "PYTHONMALLOC": "debug"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["sub accelerator False", "main accelerator True"]
