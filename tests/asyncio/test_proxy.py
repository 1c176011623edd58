"""The asyncio client through real proxies: tinyproxy (HTTP CONNECT) and pproxy (SOCKS, TLS)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest
import trustme

import tether
from tether.asyncio.server import Server
from tether.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
    SecurityError,
)

from ..proxy_servers import misbehaving_proxy, pproxy, tinyproxy
from .conftest import ServerFactory

# The proxies and their fixtures are shared with the trio client's tests (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("no_system_proxy")


def port_of(server: Server) -> int:
    port: int = next(iter(server.sockets)).getsockname()[1]
    return port


def proxy_log(proxy: str, workdir: Path) -> str:
    name = "auth" if "alice" in proxy else "open"
    return (workdir / name / "tinyproxy.log").read_text()


async def echo_once(ws: tether.ClientConnection, text: str) -> None:
    await ws.send(text)
    assert await ws.recv() == text


async def test_http_proxy(echo_server: Server, http_proxy: str, workdir: Path) -> None:
    port = port_of(echo_server)
    async with tether.connect(f"ws://127.0.0.1:{port}/", proxy=http_proxy) as ws:
        await echo_once(ws, "through tinyproxy")
    assert f"CONNECT 127.0.0.1:{port} HTTP/1.1" in proxy_log(http_proxy, workdir)


async def test_http_proxy_credentials(echo_server: Server, auth_proxy: str) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    proxy = auth_proxy.replace("http://", "http://alice:s3cret@")
    async with tether.connect(uri, proxy=proxy) as ws:
        await echo_once(ws, "authenticated")
    # tinyproxy refuses without credentials (407), and with wrong ones (401).
    with pytest.raises(InvalidProxyStatus) as caught:
        await tether.connect(uri, proxy=auth_proxy)
    assert caught.value.response.status_code == 407
    assert "Basic" in caught.value.response.headers["Proxy-Authenticate"]
    with pytest.raises(InvalidProxyStatus, match="HTTP 401"):
        await tether.connect(uri, proxy=auth_proxy.replace("http://", "http://alice:wrong@"))


async def test_http_proxy_forbids_the_port(echo_server: Server, tmp_path: Path) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    with (
        tinyproxy(tmp_path, connect_port=443) as proxy,
        pytest.raises(InvalidProxyStatus) as caught,
    ):
        await tether.connect(uri, proxy=proxy)
    assert caught.value.response.status_code == 403


async def test_wss_through_http_proxy(
    start_server: ServerFactory, server_ca: trustme.CA, http_proxy: str
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("localhost").configure_cert(server_context)
    server = await start_server(ssl=server_context, host="127.0.0.1")
    client_context = ssl.create_default_context()
    server_ca.configure_trust(client_context)
    uri = f"wss://localhost:{port_of(server)}/"
    # The proxy reaches localhost; TLS checks the server's name inside the tunnel.
    async with tether.connect(uri, proxy=http_proxy, ssl=client_context) as ws:
        assert ws.transport is not None
        assert ws.transport.get_extra_info("ssl_object") is not None
        await echo_once(ws, "tls in a tunnel")


async def test_https_proxy(
    start_server: ServerFactory,
    server_ca: trustme.CA,
    tls_proxy: tuple[str, ssl.SSLContext],
) -> None:
    proxy, proxy_context = tls_proxy
    plain = await start_server()
    async with tether.connect(
        f"ws://127.0.0.1:{port_of(plain)}/", proxy=proxy, proxy_ssl=proxy_context
    ) as ws:
        await echo_once(ws, "over TLS to the proxy")
    # TLS to the server inside TLS to the proxy.
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_context)
    secure = await start_server(ssl=server_context)
    client_context = ssl.create_default_context()
    server_ca.configure_trust(client_context)
    async with tether.connect(
        f"wss://127.0.0.1:{port_of(secure)}/",
        proxy=proxy,
        proxy_ssl=proxy_context,
        ssl=client_context,
    ) as ws:
        await echo_once(ws, "TLS in TLS")
    # The proxy's certificate is checked against proxy_server_hostname.
    with pytest.raises(ssl.SSLCertVerificationError):
        await tether.connect(
            f"ws://127.0.0.1:{port_of(plain)}/",
            proxy=proxy,
            proxy_ssl=proxy_context,
            proxy_server_hostname="elsewhere.test",
        )


@pytest.mark.parametrize(
    ("scheme", "which"),
    [("socks5h", "socks5"), ("socks5", "socks5"), ("socks4a", "socks4"), ("socks4", "socks4")],
)
async def test_socks_proxies(
    echo_server: Server, socks_ports: dict[str, int], scheme: str, which: str
) -> None:
    proxy = f"{scheme}://127.0.0.1:{socks_ports[which]}"
    async with tether.connect(f"ws://127.0.0.1:{port_of(echo_server)}/", proxy=proxy) as ws:
        await echo_once(ws, scheme)


async def test_socks_credentials_and_refusal(echo_server: Server, tmp_path: Path) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    # pproxy trusts an address for a while once it authenticated: a fresh
    # one sees the wrong password first.
    with pproxy(tmp_path, "socks5#bob:pw") as port:
        with pytest.raises(ProxyError, match="SOCKS"):
            await tether.connect(uri, proxy=f"socks5h://bob:wrong@127.0.0.1:{port}")
        async with tether.connect(uri, proxy=f"socks5h://bob:pw@127.0.0.1:{port}") as ws:
            await echo_once(ws, "socks with credentials")


async def test_system_proxy_from_the_environment(
    echo_server: Server, http_proxy: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = port_of(echo_server)
    target = f"CONNECT 127.0.0.1:{port} HTTP/1.1"
    uri = f"ws://127.0.0.1:{port}/environment"
    monkeypatch.setenv("HTTP_PROXY", http_proxy)
    async with tether.connect(uri) as ws:
        await echo_once(ws, "from HTTP_PROXY")
    seen = proxy_log(http_proxy, workdir).count(target)
    assert seen >= 1
    # proxy=None connects directly, and so does a host listed in no_proxy.
    async with tether.connect(uri, proxy=None) as ws:
        await echo_once(ws, "direct")
    monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
    async with tether.connect(uri) as ws:
        await echo_once(ws, "bypassed")
    assert proxy_log(http_proxy, workdir).count(target) == seen


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("garbage", InvalidProxyMessage),
        ("close", InvalidProxyMessage),
        ("extra", InvalidProxyMessage),
        # Accepted, then nothing: the tunnel, or the handshake in it, fails
        # at once (writing the request may meet the reset), not at the timeout.
        ("accept-close", (InvalidHandshake, ConnectionError)),
        ("huge", InvalidProxyMessage),
        ("407", InvalidProxyStatus),
        ("stall", TimeoutError),
    ],
)
async def test_misbehaving_proxies(
    echo_server: Server,
    behaviour: str,
    expected: type[Exception] | tuple[type[Exception], ...],
) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    with misbehaving_proxy(behaviour) as proxy, pytest.raises(expected) as caught:
        await tether.connect(uri, proxy=proxy, open_timeout=1)
    if behaviour == "huge":
        assert isinstance(caught.value.__cause__, SecurityError)


@pytest.mark.parametrize(
    "proxy",
    [
        "ftp://proxy.test",
        "http://",
        "http://proxy.test/path",
        "http://proxy.test?query",
        "http://user@proxy.test",
        "http://proxy.test:99999",
    ],
)
def test_invalid_proxies_fail_at_once(proxy: str) -> None:
    with pytest.raises(InvalidProxy):
        tether.connect("ws://example.test/", proxy=proxy)


def test_a_proxy_and_a_fixed_address_conflict() -> None:
    with pytest.raises(ValueError, match="proxy"):
        tether.connect("ws://example.test/", proxy="http://proxy.test", host="127.0.0.1")


async def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match=r"tether\[socks\]"):
        await tether.connect("ws://127.0.0.1:9/", proxy="socks5h://127.0.0.1:9")
