"""Real uvicorn processes for the ASGI tests: one per configuration, started on first use.

Each server is the ``uvicorn`` command line, as a user types it, serving an
application of :mod:`tests.asgi.apps` on a loopback port chosen by the
kernel, with ``--ws`` naming tether's class or one of uvicorn's own. Its
output is kept, for tests that look for what it logged.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAIN_OPTIONS", "MAX_SIZE", "WS_CLASSES", "Uvicorn", "UvicornConfig"]

WS_CLASSES = {
    "tether": "tether.asgi:WebSocketProtocol",
    "sansio": "websockets-sansio",
}
"""``--ws`` values: tether's class, and uvicorn's default to compare it with."""

APPS = {
    "starlette": "tests.asgi.apps:starlette_app",
    "fastapi": "tests.asgi.fastapi_app:fastapi_app",
}
"""The applications, by name, as uvicorn's command line names them."""

STARTUP_TIMEOUT = 20.0

_RUNNING = re.compile(r"Uvicorn running on https?://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class UvicornConfig:
    """One uvicorn command line."""

    ws: str = "tether"
    http: str = "httptools"
    loop: str = "uvloop"
    app: str = "starlette"
    options: tuple[str, ...] = ()

    @property
    def ws_class(self) -> str:
        """The ``--ws`` value."""
        return WS_CLASSES[self.ws]

    def command(self) -> list[str]:
        """The command line."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            APPS[self.app],
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--ws",
            self.ws_class,
            "--http",
            self.http,
            "--loop",
            self.loop,
            *self.options,
        ]

    def __str__(self) -> str:
        return "-".join([self.ws, self.http, self.loop, self.app, *self.options])


@dataclass
class Uvicorn:
    """A running uvicorn process and what it printed."""

    config: UvicornConfig
    process: subprocess.Popen[bytes]
    port: int
    output: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, config: UvicornConfig) -> Uvicorn:
        """Start uvicorn and wait until it listens."""
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            config.command(),
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        fd = process.stdout.fileno()
        output: list[str] = []
        deadline = time.monotonic() + STARTUP_TIMEOUT
        port = None
        pending = b""
        # Raw reads: a buffered readline could keep lines the selector does not see.
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while port is None:
                remaining = deadline - time.monotonic()
                chunk = os.read(fd, 65536) if selector.select(max(remaining, 0)) else b""
                if not chunk:
                    process.kill()
                    process.wait()
                    raise RuntimeError(f"uvicorn did not start: {''.join(output)}")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace") + "\n"
                    output.append(line)
                    match = _RUNNING.search(line)
                    if match:
                        port = int(match.group(1))
        if pending:
            output.append(pending.decode(errors="replace"))
        server = cls(config, process, port, output)
        server._reader = threading.Thread(target=server._read, daemon=True)
        server._reader.start()
        return server

    def _read(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while chunk := os.read(fd, 65536):
            self.output.append(chunk.decode(errors="replace"))

    def uri(self, path: str) -> str:
        """The WebSocket URI of ``path`` on this server."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def seen(self, name: str) -> list[Any]:
        """What the application recorded for the connection opened with ``?id=name``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/seen/{name}", timeout=10) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]

    def log(self) -> str:
        """Everything the process printed so far."""
        return "".join(self.output)

    def terminate(self, timeout: float = 15.0) -> int:
        """Stop uvicorn as Ctrl-C or a service manager would (SIGTERM); return its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        if self._reader is not None:
            self._reader.join(5)
        return status


MAX_SIZE = 1 << 20
"""``--ws-max-size`` of the main servers: a message over it fails with 1009."""

MAIN_OPTIONS = ("--root-path", "/api", "--ws-max-size", str(MAX_SIZE))
"""Options of the servers most tests share."""
