"""The client over TLS: ``wss://`` against a server with a trustme certificate."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme

import tether
from tether.asyncio.server import Server

from .conftest import ServerFactory


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "tls.tether.test").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
async def tls_server(start_server: ServerFactory, server_context: ssl.SSLContext) -> Server:
    return await start_server(ssl=server_context)


def port_of(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


async def test_wss_with_a_trusted_ca(tls_server: Server, client_context: ssl.SSLContext) -> None:
    uri = f"wss://localhost:{port_of(tls_server)}/secure"
    async with tether.connect(uri, ssl=client_context) as ws:
        assert ws.transport is not None
        assert ws.transport.get_extra_info("ssl_object") is not None
        assert ws.request_headers["Host"] == f"localhost:{port_of(tls_server)}"
        await ws.send("encrypted")
        assert await ws.recv() == "encrypted"
    assert ws.close_code == 1000


@pytest.mark.parametrize("option", [None, True])
async def test_default_verification_refuses_an_unknown_ca(
    tls_server: Server, option: bool | None
) -> None:
    uri = f"wss://localhost:{port_of(tls_server)}/"
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        await tether.connect(uri, ssl=option)
    assert caught.value.verify_message


async def test_host_name_is_checked(tls_server: Server, client_context: ssl.SSLContext) -> None:
    # The certificate names localhost, not 127.0.0.1: the URI's host is what is checked.
    with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
        await tether.connect(f"wss://127.0.0.1:{port_of(tls_server)}/", ssl=client_context)


async def test_server_hostname_override(tls_server: Server, client_context: ssl.SSLContext) -> None:
    uri = f"wss://127.0.0.1:{port_of(tls_server)}/"
    async with tether.connect(uri, ssl=client_context, server_hostname="tls.tether.test") as ws:
        await ws.send("by server_hostname")
        assert await ws.recv() == "by server_hostname"
        # server_hostname changes what TLS checks, not the Host header.
        assert ws.request_headers["Host"] == f"127.0.0.1:{port_of(tls_server)}"
    with pytest.raises(ssl.SSLCertVerificationError):
        await tether.connect(uri, ssl=client_context, server_hostname="other.tether.test")


async def test_forced_ip_keeps_the_name_for_tls(
    tls_server: Server, client_context: ssl.SSLContext
) -> None:
    uri = f"wss://tls.tether.test:{port_of(tls_server)}/"
    async with tether.connect(uri, ssl=client_context, host="127.0.0.1") as ws:
        await ws.send("forced")
        assert await ws.recv() == "forced"
        assert ws.request_headers["Host"] == f"tls.tether.test:{port_of(tls_server)}"


async def test_create_connection_tls_arguments(
    tls_server: Server, client_context: ssl.SSLContext
) -> None:
    uri = f"wss://localhost:{port_of(tls_server)}/"
    async with tether.connect(uri, ssl=client_context, ssl_handshake_timeout=5) as ws:
        await ws.send("handshake timeout given")
        assert await ws.recv() == "handshake timeout given"


async def test_wss_to_a_plain_server(echo_server: Server, client_context: ssl.SSLContext) -> None:
    with pytest.raises(ssl.SSLError):
        await tether.connect(f"wss://localhost:{port_of(echo_server)}/", ssl=client_context)


async def test_verification_failure_is_not_retried(tls_server: Server) -> None:
    attempts = 0

    async def reconnect() -> None:
        nonlocal attempts
        async with asyncio.timeout(5):
            async for _ in tether.connect(
                f"wss://localhost:{port_of(tls_server)}/", backoff_initial_delay=0.01
            ):
                attempts += 1

    # SSLCertVerificationError is an OSError, yet trying again cannot heal it.
    with pytest.raises(ssl.SSLCertVerificationError):
        await reconnect()
    assert attempts == 0


async def test_wss_over_a_unix_socket(
    start_server: ServerFactory,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "tls.sock")
    await start_server(unix=True, path=path, ssl=server_context)
    # The Host header, and so the name TLS checks, is localhost.
    async with tether.connect(f"wss+unix://{quote(path, safe='')}/", ssl=client_context) as ws:
        await ws.send("tls over unix")
        assert await ws.recv() == "tls over unix"
        assert ws.transport is not None
        assert ws.transport.get_extra_info("ssl_object") is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        await tether.connect(f"wss+unix://{quote(path, safe='')}/")
