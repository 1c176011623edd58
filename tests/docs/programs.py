"""Run the documentation's example programs as a user would, on free ports.

The examples name port 8766 (8765 for the demo server); each run gets a copy
of the program with a free port in its place, so that tests never collide
with each other or with a server the developer left running.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DOCS = ROOT / "docs"

EXAMPLE_PORT = "8766"
"""The port the examples listen on and connect to."""

DEMO_PORT = "8765"
"""The port of the demo server, which the clients of the FAQ talk to."""

WAIT = 20.0
"""The longest a program may take to start listening, or to run to its end."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def source(path: Path, ports: Mapping[str, int]) -> str:
    """The program at ``path``, with each documented port replaced by a test's port."""
    text = path.read_text()
    for documented, port in ports.items():
        assert documented in text, f"{path.name} does not use port {documented}"
        text = text.replace(documented, str(port))
    return text


def wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the server exited with {process.returncode}:\n{err}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.05)
        else:
            return


@contextmanager
def running_server(path: Path, *args: str) -> Iterator[int]:
    """Run the server program at ``path`` on a free port until the block ends; give the port.

    ``wait_listening`` waits for it to accept connections."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", source(path, {EXAMPLE_PORT: port}), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=path.parent,
    )
    try:
        wait_listening(port, process)
        yield port
    finally:
        process.terminate()
        try:
            process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def run_program(
    path: Path, port: int | None, *args: str, stdin: str = "", documented: str = EXAMPLE_PORT
) -> str:
    """Run the program at ``path`` against ``port`` to its end; return what it printed.

    With ``port=None`` the program is run as it is, for one that takes its
    address from ``args``.
    """
    ports = {} if port is None else {documented: port}
    result = subprocess.run(
        [sys.executable, "-c", source(path, ports), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        cwd=path.parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
