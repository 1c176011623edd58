"""Fixtures of the fault tests: certificates, and both event loops."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import pytest
import trustme
import uvloop


def pytest_asyncio_loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run each test on the default loop and on uvloop, unless it picks one."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """The TLS context of the servers: a certificate for localhost and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """The TLS context of the clients: trusts the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
