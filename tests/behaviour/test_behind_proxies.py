"""The client's address behind proxies, on every API's server: trusted_proxies' headers, a real
nginx (plain and ending TLS), and the PROXY protocol."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.backends import Backend, Face
from tests.proxy_servers import certificate_files, nginx

PROXY_V1 = b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n"
PROXY_V2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x01\x7f\x00\x00\x01\x15\xb3\x00\x50"


async def tell_address(ws: Face) -> None:
    host, port = ws.native.remote_address[:2]
    await ws.send(f"{host} {port}")


async def ask(backend: Backend, uri: str, **options: Any) -> str:
    ws = await backend.connect(uri, proxy=None, **options)
    answer = await ws.recv()
    await ws.close()
    return str(answer)


def over(backend: Backend, sock: socket.socket) -> dict[str, Any]:
    """The option that makes a client use ``sock``, already connected."""
    if backend.api == "trio":
        return {"stream": trio.SocketStream(trio.socket.from_stdlib_socket(sock))}
    return {"sock": sock}


def test_trusted_proxies_headers(backend: Backend) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}

    async def body() -> None:
        async with backend.serve(tell_address, trusted_proxies=["127.0.0.1"]) as port:
            uri = f"ws://127.0.0.1:{port}/"
            # The peer, 127.0.0.1, is trusted: the rightmost untrusted address is the client.
            assert await ask(backend, uri, additional_headers=forwarded) == "198.51.100.1 0"
            real = {"X-Real-IP": "192.0.2.7"}
            assert await ask(backend, uri, additional_headers=real) == "192.0.2.7 0"
            assert (await ask(backend, uri)).startswith("127.0.0.1 ")
        async with backend.serve(tell_address, trusted_proxies=["10.0.0.0/8"]) as port:
            # An untrusted peer's headers are ignored.
            uri = f"ws://127.0.0.1:{port}/"
            for claimed in (forwarded, {"X-Real-IP": "203.0.113.7"}):
                host, peer_port = (await ask(backend, uri, additional_headers=claimed)).split()
                assert host == "127.0.0.1"
                assert peer_port != "0"

    backend.run(body)


def test_forwarded_for_through_nginx(
    backend: Backend, tmp_path: Path, client_context: ssl.SSLContext
) -> None:
    async def body() -> None:
        async with backend.serve(tell_address, trusted_proxies=["127.0.0.1"]) as upstream:
            with nginx(tmp_path, upstream) as port:
                uri = f"ws://127.0.0.1:{port}/"
                # nginx adds the address it saw, 127.0.0.1, a trusted proxy
                # here: the address before it is the client's.
                claimed = {"X-Forwarded-For": "203.0.113.7"}
                assert await ask(backend, uri, additional_headers=claimed) == "203.0.113.7 0"
                # Only trusted hops: the first is the client.
                assert await ask(backend, uri) == "127.0.0.1 0"
            chain, ca = certificate_files(tmp_path)
            context = ssl.create_default_context(cafile=str(ca))
            with nginx(tmp_path, upstream, certificate=chain) as port:
                # TLS ends at nginx.
                claimed = {"X-Forwarded-For": "198.51.100.4"}
                answer = await ask(
                    backend, f"wss://127.0.0.1:{port}/", ssl=context, additional_headers=claimed
                )
                assert answer == "198.51.100.4 0"
        async with backend.serve(tell_address, trusted_proxies=["10.0.0.0/8"]) as upstream:
            with nginx(tmp_path, upstream) as port:
                claimed = {"X-Forwarded-For": "203.0.113.7"}
                answer = await ask(backend, f"ws://127.0.0.1:{port}/", additional_headers=claimed)
            host, peer_port = answer.split()
            # nginx's own address and port.
            assert host == "127.0.0.1"
            assert peer_port != "0"

    backend.run(body)


@pytest.mark.parametrize("header", [PROXY_V1, PROXY_V2], ids=["v1", "v2"])
def test_proxy_protocol(backend: Backend, header: bytes) -> None:
    async def body() -> None:
        options = {"trusted_proxies": ["127.0.0.1"], "proxy_protocol": True}
        async with backend.serve(tell_address, **options) as port:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            # The header in two pieces: the server waits for the whole of it.
            sock.sendall(header[:10])
            await backend.sleep(0.01)
            sock.sendall(header[10:])
            answer = await ask(backend, f"ws://127.0.0.1:{port}/", **over(backend, sock))
            assert answer == "198.51.100.1 5555"

    backend.run(body)


def test_proxy_protocol_header_and_request_in_one_read(backend: Backend) -> None:
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    async def body() -> None:
        options = {"trusted_proxies": ["127.0.0.1"], "proxy_protocol": True}
        async with backend.serve(tell_address, **options) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                # The server reads the request from the bytes after the header.
                sock.sendall(PROXY_V1 + request)

                def read() -> bytes:
                    data = b""
                    while b"5555" not in data and (chunk := sock.recv(1024)):
                        data += chunk
                    return data

                data = await backend.in_thread(read)
        assert data.startswith(b"HTTP/1.1 101 ")
        # The handler's message: the client's address from the header.
        assert b"\x81\x11198.51.100.1 5555" in data

    backend.run(body)


@pytest.mark.parametrize(
    ("trusted", "header"),
    [
        (["10.0.0.1"], PROXY_V1),
        # The start of a header announcing 64 KiB: not waited for.
        (["10.0.0.1"], PROXY_V2[:14] + b"\xff\xff"),
        (["127.0.0.1"], b"GET / HTTP/1.1\r\n"),
        (["127.0.0.1"], b""),
    ],
    ids=["untrusted-peer", "untrusted-peer-partial-header", "no-header", "nothing"],
)
def test_proxy_protocol_refused(backend: Backend, trusted: list[str], header: bytes) -> None:
    async def body() -> None:
        async with backend.serve(
            tell_address, trusted_proxies=trusted, proxy_protocol=True, open_timeout=None
        ) as port:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(header)
                if not header:
                    sock.shutdown(socket.SHUT_WR)
                # The server drops the connection at once, without a word.
                assert await backend.in_thread(lambda: sock.recv(1024)) == b""

    backend.run(body)


def test_proxy_protocol_needs_trusted_proxies(backend: Backend) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match="needs trusted_proxies"):
            async with backend.serve(tell_address, proxy_protocol=True):
                pass  # pragma: no cover - not reached

    backend.run(body)
