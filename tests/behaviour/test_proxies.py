"""Every API's client through real proxies: tinyproxy (HTTP CONNECT) and pproxy (SOCKS, TLS).

The proxies are started once for the module by the fixtures of tests/conftest.py.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.backends import Backend, Face, echo_until_closed
from tests.behaviour.tls import client_context, over_tls, server_context
from tests.proxy_servers import misbehaving_proxy, pproxy, tinyproxy
from tether.exceptions import (
    InvalidHandshake,
    InvalidProxy,
    InvalidProxyMessage,
    InvalidProxyStatus,
    ProxyError,
    SecurityError,
)

pytestmark = pytest.mark.usefixtures("no_system_proxy")


async def echo_once(backend: Backend, uri: str, text: str, **options: Any) -> Face:
    """Connect, check that a message comes back, close; return the connection."""
    ws = await backend.connect(uri, **options)
    await ws.send(text)
    assert await ws.recv() == text
    await ws.close()
    return ws


def proxy_log(workdir: Path, proxy: str = "open") -> str:
    return (workdir / proxy / "tinyproxy.log").read_text()


def test_http_proxy(backend: Backend, http_proxy: str, workdir: Path) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            target = f"CONNECT 127.0.0.1:{port} HTTP/1.1"
            uri = f"ws://127.0.0.1:{port}/"
            await echo_once(backend, uri, "through tinyproxy", proxy=http_proxy)
            assert proxy_log(workdir).count(target) == 1

    backend.run(body)


def test_http_proxy_credentials(backend: Backend, auth_proxy: str, tmp_path: Path) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            uri = f"ws://127.0.0.1:{port}/"
            proxy = auth_proxy.replace("http://", "http://alice:s3cret@")
            await echo_once(backend, uri, "authenticated", proxy=proxy)
            # tinyproxy refuses without credentials (407), and with wrong ones (401).
            with pytest.raises(InvalidProxyStatus) as caught:
                await backend.connect(uri, proxy=auth_proxy)
            assert caught.value.response.status_code == 407
            assert "Basic" in caught.value.response.headers["Proxy-Authenticate"]
            wrong = auth_proxy.replace("http://", "http://alice:wrong@")
            with pytest.raises(InvalidProxyStatus, match="HTTP 401"):
                await backend.connect(uri, proxy=wrong)
            # A proxy that allows CONNECT to another port only answers 403.
            with tinyproxy(tmp_path, connect_port=443) as forbidding:
                with pytest.raises(InvalidProxyStatus) as caught:
                    await backend.connect(uri, proxy=forbidding)
                assert caught.value.response.status_code == 403

    backend.run(body)


def test_wss_through_http_proxy(backend: Backend, server_ca: trustme.CA, http_proxy: str) -> None:
    async def body() -> None:
        async with backend.serve(
            echo_until_closed, ssl=server_context(server_ca, "localhost")
        ) as port:
            # The proxy reaches localhost; TLS checks the server's name inside the tunnel.
            uri = f"wss://localhost:{port}/"
            options = {"proxy": http_proxy, "ssl": client_context(server_ca)}
            ws = await echo_once(backend, uri, "tls in a tunnel", **options)
            assert over_tls(ws)

    backend.run(body)


def test_https_proxy(
    backend: Backend, server_ca: trustme.CA, tls_proxy: tuple[str, ssl.SSLContext]
) -> None:
    proxy, proxy_context = tls_proxy

    async def body() -> None:
        async with (
            backend.serve(echo_until_closed) as plain,
            backend.serve(echo_until_closed, ssl=server_context(server_ca, "127.0.0.1")) as secure,
        ):
            uri = f"ws://127.0.0.1:{plain}/"
            tunnel = {"proxy": proxy, "proxy_ssl": proxy_context}
            await echo_once(backend, uri, "over TLS to the proxy", **tunnel)
            # TLS to the server inside TLS to the proxy.
            secure_uri = f"wss://127.0.0.1:{secure}/"
            ws = await backend.connect(secure_uri, ssl=client_context(server_ca), **tunnel)
            assert over_tls(ws)
            for size in (10, 100_000):
                await ws.send("x" * size)
                assert await ws.recv() == "x" * size
            await ws.close()
            # The server's certificate is still checked, inside the tunnel.
            with pytest.raises(ssl.SSLCertVerificationError):
                await backend.connect(secure_uri, **tunnel)
            # The proxy's certificate is checked against proxy_server_hostname.
            with pytest.raises(ssl.SSLCertVerificationError):
                await backend.connect(
                    uri,
                    proxy=proxy,
                    proxy_ssl=proxy_context,
                    proxy_server_hostname="elsewhere.test",
                )
            with pytest.raises(ValueError, match="https:// proxies"):
                await backend.connect(uri, proxy="http://127.0.0.1:9", proxy_ssl=proxy_context)

    backend.run(body)


def test_socks_proxies(backend: Backend, socks_ports: dict[str, int], tmp_path: Path) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            uri = f"ws://127.0.0.1:{port}/"
            for scheme, which in [
                ("socks5h", "socks5"),
                ("socks5", "socks5"),
                ("socks4a", "socks4"),
                ("socks4", "socks4"),
            ]:
                proxy = f"{scheme}://127.0.0.1:{socks_ports[which]}"
                await echo_once(backend, uri, scheme, proxy=proxy)
            # pproxy trusts an address for a while once it authenticated: a
            # fresh one sees the wrong password first.
            with pproxy(tmp_path, "socks5#bob:pw") as socks:
                with pytest.raises(ProxyError, match="SOCKS"):
                    await backend.connect(uri, proxy=f"socks5h://bob:wrong@127.0.0.1:{socks}")
                for scheme in ("socks5h", "socks5"):
                    proxy = f"{scheme}://bob:pw@127.0.0.1:{socks}"
                    await echo_once(backend, uri, "socks with credentials", proxy=proxy)

    backend.run(body)


def test_system_proxy_from_the_environment(
    backend: Backend, http_proxy: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            target = f"CONNECT 127.0.0.1:{port} HTTP/1.1"
            uri = f"ws://127.0.0.1:{port}/environment"
            for variable in ("HTTP_PROXY", "all_proxy"):
                with monkeypatch.context() as patch:
                    patch.setenv(variable, http_proxy)
                    before = proxy_log(workdir).count(target)
                    await echo_once(backend, uri, f"from {variable}")
                    seen = proxy_log(workdir).count(target)
                    assert seen == before + 1
                    # proxy=None connects directly, and so does a host in no_proxy.
                    await echo_once(backend, uri, "direct", proxy=None)
                    for name, value in [("no_proxy", "localhost,127.0.0.1"), ("NO_PROXY", "*")]:
                        with monkeypatch.context() as bypass:
                            bypass.setenv(name, value)
                            await echo_once(backend, uri, "bypassed")
                    assert proxy_log(workdir).count(target) == seen

    backend.run(body)


MISBEHAVIOURS: list[tuple[str, type[Exception] | tuple[type[Exception], ...]]] = [
    ("garbage", InvalidProxyMessage),
    ("close", InvalidProxyMessage),
    ("extra", InvalidProxyMessage),
    # Accepted, then nothing: the tunnel, or the handshake in it, fails at
    # once (writing the request may meet the reset), not at the timeout.
    ("accept-close", (InvalidHandshake, ConnectionError)),
    ("huge", InvalidProxyMessage),
    ("407", InvalidProxyStatus),
    ("stall", TimeoutError),
]


def test_misbehaving_proxies(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            uri = f"ws://127.0.0.1:{port}/"
            for behaviour, expected in MISBEHAVIOURS:
                # Only the stalling proxy waits for open_timeout: it needs no more.
                timeout = 0.25 if behaviour == "stall" else 1
                with misbehaving_proxy(behaviour) as proxy, pytest.raises(expected) as caught:
                    await backend.connect(uri, proxy=proxy, open_timeout=timeout)
                if behaviour == "huge":
                    assert isinstance(caught.value.__cause__, SecurityError)

    backend.run(body)


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
def test_invalid_proxies_fail_at_once(backend: Backend, proxy: str) -> None:
    connect = backend.module("client").connect
    with pytest.raises(InvalidProxy):
        connect("ws://example.test/", proxy=proxy)
    for fixed in ({"host": "127.0.0.1"}, {"port": 2}):
        with pytest.raises(ValueError, match="proxy"):
            connect("ws://example.test/", proxy="http://proxy.test", **fixed)


def test_socks_without_python_socks(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_socks", None)

    async def body() -> None:
        with pytest.raises(ImportError, match=r"tether\[socks\]"):
            await backend.connect("ws://127.0.0.1:9/", proxy="socks5h://127.0.0.1:9")

    backend.run(body)
