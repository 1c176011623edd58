"""Fixtures of the topic tests: a real redis-server per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .servers import RedisClusterServers, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three nodes of this test's own, stopped afterwards."""
    cluster = RedisClusterServers(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
