"""The asyncio client over TLS: create_connection's TLS arguments and wss over a Unix socket (what
every API's client does over TLS: tests/behaviour/test_tls.py)."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import quote

import pytest

import tether
from tether.asyncio.server import Server

from .conftest import ServerFactory


@pytest.fixture
async def tls_server(start_server: ServerFactory, server_context: ssl.SSLContext) -> Server:
    return await start_server(ssl=server_context)


def port_of(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


async def test_create_connection_tls_arguments(
    tls_server: Server, client_context: ssl.SSLContext
) -> None:
    uri = f"wss://localhost:{port_of(tls_server)}/"
    async with tether.connect(uri, ssl=client_context, ssl_handshake_timeout=5) as ws:
        await ws.send("handshake timeout given")
        assert await ws.recv() == "handshake timeout given"


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
