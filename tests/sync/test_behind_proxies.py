"""The client's address behind proxies, for the threading server: headers, nginx, PROXY protocol."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tether.sync import ServerConnection, connect

from ..asyncio.test_behind_proxies import Nginx
from .conftest import TIMEOUT, ServerFactory, uri_of


def tell_address(ws: ServerConnection) -> None:
    host, port = ws.remote_address[:2]
    ws.send(f"{host} {port}")


def ask(uri: str, **kwargs: object) -> str:
    with connect(uri, open_timeout=TIMEOUT, **kwargs) as ws:  # type: ignore[arg-type]
        return str(ws.recv(timeout=TIMEOUT))


def test_forwarded_for_from_a_trusted_peer(start_server: ServerFactory) -> None:
    server = start_server(tell_address, trusted_proxies=["127.0.0.1"])
    claimed = {"X-Forwarded-For": "203.0.113.7"}
    assert ask(uri_of(server), additional_headers=claimed) == "203.0.113.7 0"


def test_forwarded_for_through_nginx(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server(tell_address, trusted_proxies=["127.0.0.1"])
    proxy = Nginx(tmp_path, server.socket.getsockname()[1], None)
    try:
        claimed = {"X-Forwarded-For": "198.51.100.9"}
        answer = ask(f"ws://127.0.0.1:{proxy.port}/", additional_headers=claimed)
    finally:
        proxy.stop()
    assert answer == "198.51.100.9 0"


def test_untrusted_peer_is_not_believed(start_server: ServerFactory) -> None:
    server = start_server(tell_address, trusted_proxies=["10.0.0.0/8"])
    host, port = ask(uri_of(server), additional_headers={"X-Real-IP": "203.0.113.7"}).split()
    assert host == "127.0.0.1"
    assert port != "0"


def connected(port: int, header: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(header)
    return sock


def test_proxy_protocol(start_server: ServerFactory) -> None:
    server = start_server(tell_address, trusted_proxies=["127.0.0.1"], proxy_protocol=True)
    # The header in two pieces: the server waits for the whole of it.
    sock = connected(server.socket.getsockname()[1], b"PROXY TCP4 198.51.100.1 ")
    sock.sendall(b"127.0.0.1 5555 80\r\n")
    assert ask(uri_of(server), sock=sock) == "198.51.100.1 5555"


@pytest.mark.parametrize(
    ("trusted", "header"),
    [
        (["10.0.0.1"], b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"),
        (["127.0.0.1"], b"GET / HTTP/1.1\r\n"),
    ],
    ids=["untrusted-peer", "no-header"],
)
def test_proxy_protocol_refused(
    start_server: ServerFactory, trusted: list[str], header: bytes
) -> None:
    server = start_server(tell_address, trusted_proxies=trusted, proxy_protocol=True)
    sock = connected(server.socket.getsockname()[1], header)
    assert sock.recv(1024) == b""
    sock.close()
