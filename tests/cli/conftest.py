"""Fixtures of the command-line tests: the demo server in a process, and a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import coverage
import pytest


def _tether_command() -> list[str]:
    """The command line that runs ``tether``, from the environment running the tests.

    Under coverage (``make test``), the subprocess is measured too: it runs
    under ``coverage run --parallel-mode`` with the same configuration and
    data file, and pytest-cov combines its data with the rest, so that the
    CLI's coverage counts what its tests run.
    """
    current = coverage.Coverage.current()
    if current is None:
        return [sys.executable, "-m", "tether"]
    config = current.config
    return [
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={config.config_file}",
        f"--data-file={os.path.abspath(config.data_file)}",
        "-m",
        "tether",
    ]


TETHER = _tether_command()
"""The command line that runs ``tether``, from the environment running the tests."""

WAIT = 15.0
"""The longest any single wait in these tests may last, in seconds."""


@dataclass
class DemoServer:
    """A ``tether serve`` process and the address it printed."""

    process: subprocess.Popen[bytes]
    port: int
    banner: str

    def uri(self, path: str) -> str:
        """A ws:// URI of the server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def url(self, path: str = "/") -> str:
        """An http:// URL of the server."""
        return f"http://127.0.0.1:{self.port}{path}"


def read_until(fd: int, pattern: bytes, timeout: float = WAIT) -> bytes:
    """Read ``fd`` until what was read contains ``pattern``; fail after ``timeout`` seconds."""
    data = b""
    deadline = time.monotonic() + timeout
    while pattern not in data:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out waiting for {pattern!r}; got {data!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        assert chunk, f"end of output while waiting for {pattern!r}; got {data!r}"
        data += chunk
    return data


def start_demo_server(*args: str) -> DemoServer:
    """Start ``tether serve --port 0`` and wait for it to print its address."""
    process = subprocess.Popen(
        [*TETHER, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        banner = read_until(process.stdout.fileno(), b"Press Ctrl-C to stop.\n").decode()
    except BaseException:
        process.kill()
        process.wait(WAIT)
        raise
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", banner)
    assert match is not None, banner
    return DemoServer(process, int(match.group(1)), banner)


def stop_demo_server(server: DemoServer, signum: int = signal.SIGTERM) -> tuple[int, str]:
    """Stop the server with ``signum``; return its exit status and what it printed last."""
    server.process.send_signal(signum)
    try:
        status = server.process.wait(WAIT)
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(WAIT)
    assert server.process.stdout is not None
    rest = server.process.stdout.read().decode()
    server.process.stdout.close()
    return status, rest


@pytest.fixture(scope="session")
def demo_server() -> Iterator[DemoServer]:
    """One ``tether serve`` for the tests that only talk to it."""
    server = start_demo_server()
    try:
        yield server
    finally:
        stop_demo_server(server)


class PtyProcess:
    """A command whose stdin, stdout and stderr are a pseudo-terminal the test drives."""

    def __init__(self, args: Sequence[str], columns: int = 80) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        try:
            self.process = subprocess.Popen(
                list(args), stdin=slave, stdout=slave, stderr=slave, start_new_session=True
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master
        self.output = b""
        """Everything the command wrote so far."""
        self._seen = 0  # What expect() already matched.

    def write(self, data: bytes) -> None:
        """Type ``data``."""
        os.write(self.master, data)

    def _read(self, remaining: float) -> bytes:
        ready, _, _ = select.select([self.master], [], [], max(0.0, remaining))
        if not ready:
            return b""
        try:
            return os.read(self.master, 4096)
        except OSError:
            return b""  # EIO: the command exited and closed its side.

    def expect(self, pattern: bytes, timeout: float = WAIT) -> bytes:
        """Wait until the output since the last match contains ``pattern``; return that output."""
        deadline = time.monotonic() + timeout
        while True:
            index = self.output.find(pattern, self._seen)
            if index != -1:
                start, self._seen = self._seen, index + len(pattern)
                return self.output[start : self._seen]
            remaining = deadline - time.monotonic()
            assert remaining > 0, (
                f"timed out waiting for {pattern!r}; output: {self.output[self._seen :]!r}"
            )
            chunk = self._read(remaining)
            if not chunk and self.process.poll() is not None:
                raise AssertionError(
                    f"exited with {self.process.returncode} before {pattern!r}; "
                    f"output: {self.output[self._seen :]!r}"
                )
            self.output += chunk

    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the command to exit, reading what it still writes; return its status."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"still running; output: {self.output[self._seen :]!r}"
            self.output += self._read(min(remaining, 0.1))
        self.output += self._read(0)
        return self.process.returncode

    def close(self) -> None:
        """Kill the command if it still runs, and close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        os.close(self.master)


@pytest.fixture
def spawn() -> Iterator[Callable[..., PtyProcess]]:
    """Start ``tether`` with arguments on a pseudo-terminal; it is killed after the test."""
    started: list[PtyProcess] = []

    def start(*args: str, columns: int = 80) -> PtyProcess:
        process = PtyProcess([*TETHER, *args], columns=columns)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()
