"""The threading client through real proxies: tinyproxy (HTTP CONNECT) and pproxy (SOCKS, TLS)."""

from __future__ import annotations

import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

import tether.sync
from tether.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
    SecurityError,
)
from tether.sync.client import ClientConnection
from tether.sync.server import Server

from ..proxy_servers import certificate_files, misbehaving_proxy, pproxy, tinyproxy
from .conftest import ServerFactory

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "socks_proxy")


@pytest.fixture(autouse=True)
def no_system_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without proxies."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sync-proxies")


@pytest.fixture(scope="module")
def http_proxy(workdir: Path) -> Iterator[str]:
    with tinyproxy(workdir, credentials=("alice", "s3cret")) as uri:
        yield uri.replace("http://", "http://alice:s3cret@")


def port_of(server: Server) -> int:
    port: int = server.socket.getsockname()[1]
    return port


def echo_once(ws: ClientConnection, text: str) -> None:
    ws.send(text)
    assert ws.recv(timeout=5) == text


def test_http_proxy_with_credentials(echo_server: Server, http_proxy: str, workdir: Path) -> None:
    port = port_of(echo_server)
    with tether.sync.connect(f"ws://127.0.0.1:{port}/", proxy=http_proxy) as ws:
        echo_once(ws, "through tinyproxy")
    assert f"CONNECT 127.0.0.1:{port} HTTP/1.1" in (workdir / "tinyproxy.log").read_text()
    without = http_proxy.replace("alice:s3cret@", "")
    with pytest.raises(InvalidProxyStatus) as caught:
        tether.sync.connect(f"ws://127.0.0.1:{port}/", proxy=without)
    assert caught.value.response.status_code == 407


def test_wss_through_http_proxy(start_server: ServerFactory, http_proxy: str) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server = start_server(ssl=server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    uri = f"wss://localhost:{port_of(server)}/"
    with tether.sync.connect(uri, proxy=http_proxy, ssl=client_context) as ws:
        assert isinstance(ws.socket, ssl.SSLSocket)
        echo_once(ws, "tls in a tunnel")


def test_https_proxy(echo_server: Server, tmp_path: Path) -> None:
    chain, ca = certificate_files(tmp_path)
    context = ssl.create_default_context(cafile=str(ca))
    with pproxy(tmp_path, "http+ssl", certificate=chain) as port:
        proxy = f"https://127.0.0.1:{port}"
        uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
        with tether.sync.connect(uri, proxy=proxy, proxy_ssl=context) as ws:
            echo_once(ws, "over TLS to the proxy")
        with pytest.raises(ssl.SSLCertVerificationError):
            tether.sync.connect(
                uri, proxy=proxy, proxy_ssl=context, proxy_server_hostname="elsewhere.test"
            )


def test_wss_through_https_proxy(start_server: ServerFactory, tmp_path: Path) -> None:
    chain, ca = certificate_files(tmp_path)
    proxy_context = ssl.create_default_context(cafile=str(ca))
    server_ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server = start_server(ssl=server_context)
    client_context = ssl.create_default_context()
    server_ca.configure_trust(client_context)
    uri = f"wss://127.0.0.1:{port_of(server)}/"
    with pproxy(tmp_path, "http+ssl", certificate=chain) as port:
        proxy = f"https://127.0.0.1:{port}"
        # TLS to the server inside TLS to the proxy, through a relay thread.
        with tether.sync.connect(
            uri, proxy=proxy, proxy_ssl=proxy_context, ssl=client_context
        ) as ws:
            assert isinstance(ws.socket, ssl.SSLSocket)
            for size in (10, 100_000):
                ws.send("x" * size)
                assert ws.recv(timeout=5) == "x" * size
        # The server's certificate is still checked, inside the tunnel.
        with pytest.raises(ssl.SSLCertVerificationError):
            tether.sync.connect(uri, proxy=proxy, proxy_ssl=proxy_context)


def test_socks_proxies(echo_server: Server, tmp_path: Path) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    with pproxy(tmp_path, "socks4") as socks4, pproxy(tmp_path, "socks5#bob:pw") as socks5:
        # A fresh pproxy sees the wrong password before it trusts the address.
        with pytest.raises(ProxyError, match="SOCKS"):
            tether.sync.connect(uri, proxy=f"socks5h://bob:wrong@127.0.0.1:{socks5}")
        for proxy in (
            f"socks5h://bob:pw@127.0.0.1:{socks5}",
            f"socks5://bob:pw@127.0.0.1:{socks5}",
            f"socks4a://127.0.0.1:{socks4}",
            f"socks4://127.0.0.1:{socks4}",
        ):
            with tether.sync.connect(uri, proxy=proxy) as ws:
                echo_once(ws, proxy)


def test_system_proxy_from_the_environment(
    echo_server: Server, http_proxy: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = port_of(echo_server)
    target = f"CONNECT 127.0.0.1:{port} HTTP/1.1"
    monkeypatch.setenv("all_proxy", http_proxy)
    uri = f"ws://127.0.0.1:{port}/"
    before = (workdir / "tinyproxy.log").read_text().count(target)
    with tether.sync.connect(uri) as ws:
        echo_once(ws, "from all_proxy")
    seen = (workdir / "tinyproxy.log").read_text().count(target)
    assert seen == before + 1
    with tether.sync.connect(uri, proxy=None) as ws:
        echo_once(ws, "direct")
    monkeypatch.setenv("NO_PROXY", "*")
    with tether.sync.connect(uri) as ws:
        echo_once(ws, "bypassed")
    assert (workdir / "tinyproxy.log").read_text().count(target) == seen


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
def test_misbehaving_proxies(
    echo_server: Server,
    behaviour: str,
    expected: type[Exception] | tuple[type[Exception], ...],
) -> None:
    uri = f"ws://127.0.0.1:{port_of(echo_server)}/"
    with misbehaving_proxy(behaviour) as proxy, pytest.raises(expected) as caught:
        tether.sync.connect(uri, proxy=proxy, open_timeout=1)
    if behaviour == "huge":
        assert isinstance(caught.value.__cause__, SecurityError)


def test_invalid_options() -> None:
    with pytest.raises(InvalidProxy):
        tether.sync.connect("ws://127.0.0.1:1/", proxy="ftp://proxy.test")
    with pytest.raises(ValueError, match="proxy"):
        tether.sync.connect("ws://127.0.0.1:1/", proxy="http://proxy.test", port=2)
    with pytest.raises(ValueError, match="https:// proxies"):
        tether.sync.connect(
            "ws://127.0.0.1:1/",
            proxy="http://127.0.0.1:1",
            proxy_ssl=ssl.create_default_context(),
        )


def test_socks_without_python_socks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)
    with pytest.raises(ImportError, match=r"tether\[socks\]"):
        tether.sync.connect("ws://127.0.0.1:9/", proxy="socks5h://127.0.0.1:9")
