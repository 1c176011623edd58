"""The trio client through real proxies: tinyproxy (HTTP CONNECT) and pproxy (SOCKS, TLS).

The proxies are the fixtures of the asyncio client's proxy tests, in tests/conftest.py.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest
import trustme

import tether.trio
from tether.exceptions import InvalidProxy, InvalidProxyMessage, InvalidProxyStatus, ProxyError

from ..proxy_servers import misbehaving_proxy, pproxy
from .conftest import serving, trio_test, uri_of

pytestmark = pytest.mark.usefixtures("no_system_proxy")


async def echo_once(ws: tether.trio.ClientConnection, text: str) -> None:
    await ws.send(text)
    assert await ws.recv() == text


def tinyproxy_log(workdir: Path) -> str:
    return (workdir / "open" / "tinyproxy.log").read_text()


@trio_test
async def test_http_proxy_and_the_system_proxy(
    http_proxy: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving() as server:
        uri = uri_of(server, "/trio")
        target = f"CONNECT {uri.removeprefix('ws://').removesuffix('/trio')} HTTP/1.1"
        async with tether.trio.connect(uri, proxy=http_proxy) as ws:
            await echo_once(ws, "through tinyproxy")
        assert tinyproxy_log(workdir).count(target) == 1
        # The system's proxy by default; proxy=None and no_proxy go direct.
        monkeypatch.setenv("HTTP_PROXY", http_proxy)
        async with tether.trio.connect(uri) as ws:
            await echo_once(ws, "from HTTP_PROXY")
        assert tinyproxy_log(workdir).count(target) == 2
        async with tether.trio.connect(uri, proxy=None) as ws:
            await echo_once(ws, "direct")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        async with tether.trio.connect(uri) as ws:
            await echo_once(ws, "bypassed")
        assert tinyproxy_log(workdir).count(target) == 2


@trio_test
async def test_http_proxy_credentials(auth_proxy: str) -> None:
    async with serving() as server:
        uri = uri_of(server)
        proxy = auth_proxy.replace("http://", "http://alice:s3cret@")
        async with tether.trio.connect(uri, proxy=proxy) as ws:
            await echo_once(ws, "authenticated")
        with pytest.raises(InvalidProxyStatus) as caught:
            await tether.trio.connect(uri, proxy=auth_proxy)
        assert caught.value.response.status_code == 407


@trio_test
async def test_wss_through_http_proxy(http_proxy: str, server_ca: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    server_ca.configure_trust(client_context)
    async with serving(ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        # The proxy reaches localhost; TLS checks the server's name inside the tunnel.
        uri = f"wss://localhost:{port}/"
        async with tether.trio.connect(uri, proxy=http_proxy, ssl=client_context) as ws:
            await echo_once(ws, "tls in a tunnel")


@trio_test
async def test_https_proxy(tls_proxy: tuple[str, ssl.SSLContext], server_ca: trustme.CA) -> None:
    proxy, proxy_context = tls_proxy
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    server_ca.configure_trust(client_context)
    async with serving() as plain, serving(ssl=server_context) as secure:
        async with tether.trio.connect(uri_of(plain), proxy=proxy, proxy_ssl=proxy_context) as ws:
            await echo_once(ws, "over TLS to the proxy")
        # TLS to the server inside TLS to the proxy.
        async with tether.trio.connect(
            uri_of(secure, scheme="wss"), proxy=proxy, proxy_ssl=proxy_context, ssl=client_context
        ) as ws:
            await echo_once(ws, "TLS in TLS")
        with pytest.raises(ssl.SSLCertVerificationError):
            await tether.trio.connect(
                uri_of(plain),
                proxy=proxy,
                proxy_ssl=proxy_context,
                proxy_server_hostname="elsewhere.test",
            )
        with pytest.raises(ValueError, match="https:// proxies"):
            await tether.trio.connect(
                uri_of(plain), proxy="http://127.0.0.1:9", proxy_ssl=proxy_context
            )


@trio_test
async def test_socks_proxies(socks_ports: dict[str, int]) -> None:
    async with serving() as server:
        for scheme, which in [("socks5h", "socks5"), ("socks4", "socks4")]:
            proxy = f"{scheme}://127.0.0.1:{socks_ports[which]}"
            async with tether.trio.connect(uri_of(server), proxy=proxy) as ws:
                await echo_once(ws, scheme)


@trio_test
async def test_socks_refusal(tmp_path: Path) -> None:
    async with serving() as server:
        with pproxy(tmp_path, "socks5#bob:pw") as port, pytest.raises(ProxyError, match="SOCKS"):
            await tether.trio.connect(uri_of(server), proxy=f"socks5h://bob:wrong@127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("garbage", InvalidProxyMessage),
        ("close", InvalidProxyMessage),
        ("extra", InvalidProxyMessage),
        ("407", InvalidProxyStatus),
        ("stall", TimeoutError),
    ],
)
@trio_test
async def test_misbehaving_proxies(behaviour: str, expected: type[Exception]) -> None:
    async with serving() as server:
        with misbehaving_proxy(behaviour) as proxy, pytest.raises(expected):
            await tether.trio.connect(uri_of(server), proxy=proxy, open_timeout=1)


def test_invalid_proxies_fail_at_once() -> None:
    with pytest.raises(InvalidProxy):
        tether.trio.connect("ws://example.test/", proxy="ftp://proxy.test")
    with pytest.raises(ValueError, match="proxy"):
        tether.trio.connect("ws://example.test/", proxy="http://proxy.test", host="127.0.0.1")


@trio_test
async def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match=r"tether\[socks\]"):
        await tether.trio.connect("ws://127.0.0.1:9/", proxy="socks5h://127.0.0.1:9")
