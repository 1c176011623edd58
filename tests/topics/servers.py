"""Real servers the topic tests run: redis-server on a loopback port of its own."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """Debian's redis-server with its own configuration in ``directory``, on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.executable = executable
        self.directory = directory
        self.port = free_port()
        self.config = directory / "redis.conf"
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "protected-mode yes\n"
            f"dir {directory}\n"
            'save ""\n'
            "appendonly no\n"
            "daemonize no\n"
            "loglevel warning\n"
            f"logfile {directory / 'redis.log'}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis-py URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.process = subprocess.Popen([self.executable, str(self.config)])
        deadline = time.monotonic() + TIMEOUT
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            "redis-server did not start: "
                            + (self.directory / "redis.log").read_text(errors="replace")
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server at once, as a crash would."""
        process = self.process
        if process is None:
            return
        self.process = None
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(TIMEOUT)

    def numsub(self, channel: str) -> int:
        """How many connections subscribe to ``channel`` now."""
        with redis.Redis.from_url(self.url) as client:
            ((_, count),) = client.pubsub_numsub(channel)
            return int(count)
