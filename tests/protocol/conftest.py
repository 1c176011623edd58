"""Fixtures of the engine's tests: each test using them runs for a client and a server engine."""

from __future__ import annotations

import pytest

from tests.protocol.connection_helpers import CHUNKINGS, Chunking, Peer
from tether.protocol.connection import Connection, Role


@pytest.fixture(params=[Role.CLIENT, Role.SERVER], ids=["client", "server"])
def role(request: pytest.FixtureRequest) -> Role:
    """The role of the engine under test: each test using it runs for both."""
    result: Role = request.param
    return result


@pytest.fixture
def conn(role: Role) -> Connection:
    """A fresh open engine of ``role``."""
    return Connection(role)


@pytest.fixture
def peer(role: Role) -> Peer:
    """The other end of a ``role`` engine, which builds the frames it receives."""
    return Peer(role)


@pytest.fixture(params=CHUNKINGS)
def chunking(request: pytest.FixtureRequest) -> Chunking:
    """How received bytes are cut before they reach the engine: each test runs with each."""
    result: Chunking = request.param
    return result
