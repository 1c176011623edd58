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


class RedisClusterServers:
    """Three redis-server nodes made into a Redis Cluster (no replicas), each on 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        self.nodes: list[RedisServer] = []
        for index in range(3):
            node_directory = directory / f"node{index}"
            node_directory.mkdir()
            node = RedisServer(node_directory)
            with node.config.open("a") as config:
                config.write(
                    "cluster-enabled yes\n"
                    # The bus port would be port + 10000 otherwise: maybe taken, maybe past 65535.
                    f"cluster-port {free_port()}\n"
                    f"cluster-config-file {node_directory / 'nodes.conf'}\n"
                    "cluster-node-timeout 2000\n"
                )
            self.nodes.append(node)

    def url(self, index: int = 0) -> str:
        """The URL of one node."""
        return self.nodes[index].url

    def start(self) -> None:
        """Start the nodes, make the cluster, and wait until every node says it is ok."""
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        deadline = time.monotonic() + TIMEOUT
        for node in self.nodes:
            with redis.Redis.from_url(node.url) as client:
                while client.cluster("INFO").get("cluster_state") != "ok":
                    assert time.monotonic() < deadline, "the cluster did not come up"
                    time.sleep(0.05)

    def stop(self) -> None:
        """Kill every node."""
        for node in self.nodes:
            node.stop()

    def shardnumsub(self, *channels: str) -> dict[str, int]:
        """How many connections subscribe to each sharded channel, over every node."""
        counts = dict.fromkeys(channels, 0)
        for node in self.nodes:
            with redis.Redis.from_url(node.url) as client:
                reply = client.execute_command("PUBSUB", "SHARDNUMSUB", *channels)
            for name, count in zip(reply[::2], reply[1::2], strict=True):
                counts[name.decode()] += int(count)
        return counts
