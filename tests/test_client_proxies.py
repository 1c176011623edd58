"""tether.proxy: the system's proxy, as websockets reads it (plus all_proxy)."""

from __future__ import annotations

import pytest

from tether.exceptions import InvalidProxy, ProxyError
from tether.protocol.proxy import Proxy
from tether.protocol.uri import parse_uri
from tether.proxy import get_proxy, resolve_proxy, socks_error

VARIABLES = ("http", "https", "all", "no", "ws", "wss", "socks")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)


WS = parse_uri("ws://example.test/")
WSS = parse_uri("wss://example.test/")


def test_no_proxy_configured() -> None:
    assert get_proxy(WS) is None
    assert resolve_proxy(True, WSS) is None


@pytest.mark.parametrize(
    ("variables", "ws", "wss"),
    [
        ({"http_proxy": "http://h:1"}, "http://h:1", None),
        ({"HTTPS_PROXY": "http://s:2"}, "http://s:2", "http://s:2"),
        ({"http_proxy": "http://h:1", "https_proxy": "http://s:2"}, "http://s:2", "http://s:2"),
        (
            {"socks_proxy": "http://k:3", "https_proxy": "http://s:2"},
            "socks5h://k:3",
            "socks5h://k:3",
        ),
        ({"socks_proxy": "socks4://k:3"}, "socks4://k:3", "socks4://k:3"),
        ({"wss_proxy": "http://w:4", "socks_proxy": "socks5://k:3"}, "socks5://k:3", "http://w:4"),
        ({"all_proxy": "socks5h://a:5"}, "socks5h://a:5", "socks5h://a:5"),
        ({"all_proxy": "socks5h://a:5", "http_proxy": "http://h:1"}, "http://h:1", "socks5h://a:5"),
    ],
)
def test_preferences(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], ws: str | None, wss: str | None
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert get_proxy(WS) == ws
    assert get_proxy(WSS) == wss


@pytest.mark.parametrize("no_proxy", ["*", "example.test", ".test", "other.test,example.test"])
def test_no_proxy(monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
    monkeypatch.setenv("https_proxy", "http://s:2")
    monkeypatch.setenv("no_proxy", no_proxy)
    assert get_proxy(WSS) is None
    assert resolve_proxy(True, WSS) is None


def test_resolve_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://user:pw@s:2")
    assert resolve_proxy(True, WSS) == Proxy("http", "s", 2, "user", "pw")
    assert resolve_proxy(None, WSS) is None
    assert resolve_proxy("socks5h://k", WSS) == Proxy("socks5h", "k", 80)
    monkeypatch.setenv("https_proxy", "gopher://s:2")
    with pytest.raises(InvalidProxy):
        resolve_proxy(True, WSS)
    with pytest.raises(TypeError):
        resolve_proxy(False, WSS)  # type: ignore[arg-type]


def test_socks_errors() -> None:
    refused = ConnectionRefusedError(111, "refused")
    assert socks_error(refused) is refused
    late = TimeoutError("late")
    assert socks_error(late) is late
    error = socks_error(ValueError("general SOCKS server failure"))
    assert isinstance(error, ProxyError)
    assert isinstance(error.__cause__, ValueError)
