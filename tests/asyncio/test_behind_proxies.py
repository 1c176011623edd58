"""The client's address behind a real nginx, plain and with TLS at nginx, and the PROXY protocol."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import tether
from tether.asyncio.server import Server, ServerConnection

from .conftest import uri_of

WAIT = 10.0


async def tell_address(ws: ServerConnection) -> None:
    host, port = ws.remote_address[:2]
    await ws.send(f"{host} {port}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Nginx:
    """Debian's nginx in front of one upstream, with its own configuration in a directory."""

    def __init__(self, directory: Path, upstream: int, tls: tuple[Path, Path] | None) -> None:
        self.port = free_port()
        listen = f"127.0.0.1:{self.port}" + (" ssl" if tls else "")
        certificates = (
            f"ssl_certificate {tls[0]};\n        ssl_certificate_key {tls[1]};" if tls else ""
        )
        temp = "\n".join(
            f"    {name}_temp_path {directory / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = directory / "nginx.conf"
        config.write_text(
            f"daemon off;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\n"
            "events {}\n"
            f"http {{\n    access_log off;\n{temp}\n"
            "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
            f"    server {{\n        listen {listen};\n        {certificates}\n"
            "        location / {\n"
            f"            proxy_pass http://127.0.0.1:{upstream};\n"
            "            proxy_http_version 1.1;\n"
            "            proxy_set_header Upgrade $http_upgrade;\n"
            "            proxy_set_header Connection $connection_upgrade;\n"
            "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "            proxy_set_header X-Real-IP $remote_addr;\n"
            "        }\n    }\n}\n"
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(config)], stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + WAIT
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {self.process.stderr}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.communicate(timeout=WAIT)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return ca, cert_file, key_file


@pytest.fixture
async def upstream() -> AsyncIterator[Server]:
    async with tether.serve(tell_address, "127.0.0.1", 0, trusted_proxies=["127.0.0.1"]) as server:
        yield server


@pytest.fixture
def nginx(tmp_path: Path, upstream: Server) -> Iterator[Nginx]:
    proxy = Nginx(tmp_path, next(iter(upstream.sockets)).getsockname()[1], None)
    try:
        yield proxy
    finally:
        proxy.stop()


async def ask(uri: str, **kwargs: Any) -> str:
    async with tether.connect(uri, open_timeout=WAIT, **kwargs) as ws:
        return str(await ws.recv(timeout=WAIT))


async def test_forwarded_for_through_nginx(nginx: Nginx) -> None:
    uri = f"ws://127.0.0.1:{nginx.port}/"
    # nginx adds the address it saw, 127.0.0.1, a trusted proxy here: the
    # address before it is the client's.
    claimed = {"X-Forwarded-For": "203.0.113.7"}
    assert await ask(uri, additional_headers=claimed) == "203.0.113.7 0"
    # Only trusted hops: the first is the client.
    assert await ask(uri) == "127.0.0.1 0"


async def test_tls_terminated_at_nginx(
    tmp_path: Path, upstream: Server, certificate: tuple[trustme.CA, Path, Path]
) -> None:
    ca, cert, key = certificate
    context = ssl.create_default_context()
    ca.configure_trust(context)
    proxy = Nginx(tmp_path, next(iter(upstream.sockets)).getsockname()[1], (cert, key))
    try:
        uri = f"wss://127.0.0.1:{proxy.port}/"
        claimed = {"X-Forwarded-For": "198.51.100.4"}
        assert await ask(uri, ssl=context, additional_headers=claimed) == "198.51.100.4 0"
    finally:
        proxy.stop()


async def test_untrusted_proxy_is_not_believed(tmp_path: Path) -> None:
    async with tether.serve(tell_address, "127.0.0.1", 0, trusted_proxies=["10.0.0.0/8"]) as server:
        proxy = Nginx(tmp_path, next(iter(server.sockets)).getsockname()[1], None)
        try:
            answer = await ask(
                f"ws://127.0.0.1:{proxy.port}/",
                additional_headers={"X-Forwarded-For": "203.0.113.7"},
            )
        finally:
            proxy.stop()
    host, port = answer.split()
    # nginx's own address and port.
    assert host == "127.0.0.1"
    assert port != "0"


def connected(server: Server, header: bytes) -> socket.socket:
    sock = socket.create_connection(next(iter(server.sockets)).getsockname()[:2], timeout=WAIT)
    sock.sendall(header)
    return sock


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x01\x7f\x00\x00\x01\x15\xb3\x00\x50",
    ],
    ids=["v1", "v2"],
)
async def test_proxy_protocol(start_server: Any, header: bytes) -> None:
    server = await start_server(tell_address, trusted_proxies=["127.0.0.1"], proxy_protocol=True)
    sock = connected(server, header)
    assert await ask(uri_of(server), sock=sock) == "198.51.100.1 5555"


@pytest.mark.parametrize(
    ("trusted", "header"),
    [
        (["10.0.0.1"], b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"),
        (["127.0.0.1"], b"GET / HTTP/1.1\r\n"),
    ],
    ids=["untrusted-peer", "no-header"],
)
async def test_proxy_protocol_refused(start_server: Any, trusted: list[str], header: bytes) -> None:
    server = await start_server(tell_address, trusted_proxies=trusted, proxy_protocol=True)
    sock = connected(server, header)
    # The server drops the connection at once.
    assert await asyncio.to_thread(sock.recv, 1024) == b""
    sock.close()


def test_proxy_protocol_needs_trusted_proxies() -> None:
    with pytest.raises(ValueError, match="needs trusted_proxies"):
        tether.serve(tell_address, "127.0.0.1", 0, proxy_protocol=True)
