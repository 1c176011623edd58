"""Fixtures shared by the tests of both APIs, and the options of the soak.

``make soak`` runs ``pytest tests/load tests/faults --soak``: the load tests
at soak size and the long variants of the fault tests. The options are
registered here, at the root of the tests, so that they are known whichever
of those directories pytest is given.
"""

from __future__ import annotations

import gc
import hmac
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.asgi.servers import Uvicorn, UvicornConfig
from tests.topics.servers import RedisServer

from .proxy_servers import certificate_files, pproxy, tinyproxy
from .soak_results import append

ATTACKS = "tests/conformance/test_attacks"
"""The modules of hostile peers, whose outcomes go to the soak report."""

_attack_outcomes: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak", "load and fault tests at soak size (tests/load, tests/faults)")
    group.addoption("--soak", action="store_true", help="run at soak size (long)")
    group.addoption(
        "--soak-connections",
        type=int,
        default=5000,
        help="concurrent connections of each round of the asyncio soak (default 5000)",
    )
    group.addoption(
        "--soak-seconds",
        type=float,
        default=240.0,
        help="how long the rounds of the soak repeat, in all (default 240)",
    )
    group.addoption(
        "--soak-report",
        default=None,
        help="a file to which each soak and fault test appends its numbers, a JSON line each",
    )


@pytest.fixture
def compared_digests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Every pair that :func:`hmac.compare_digest` compares during the test, which it still does."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    return compared


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority for the tests' TLS servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """The TLS context of a server: a certificate for localhost and 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """The TLS context of a client: trusts :func:`ca`."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free loopback port, stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Turn the cyclic garbage collector off for the test: only reference counting frees."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@pytest.fixture(scope="session")
def uvicorn_server() -> Iterator[Callable[[UvicornConfig], Uvicorn]]:
    """Get the uvicorn process of a configuration, started on first use and kept for the session."""
    servers: dict[UvicornConfig, Uvicorn] = {}

    def get(config: UvicornConfig) -> Uvicorn:
        server = servers.get(config)
        if server is None or server.process.poll() is not None:
            server = servers[config] = Uvicorn.start(config)
        return server

    try:
        yield get
    finally:
        for server in servers.values():
            server.terminate()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note how each test of the hostile peers ended, for the soak report."""
    if report.nodeid.startswith(ATTACKS) and (report.when == "call" or report.failed):
        _attack_outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Add a row per module of hostile peers to the soak report: how many cases held."""
    modules: dict[str, tuple[str, int, int]] = {}
    for item in session.items:
        outcome = _attack_outcomes.get(item.nodeid)
        if outcome is None or not isinstance(item, pytest.Function):
            continue
        path = item.nodeid.split("::")[0]
        doc = (item.module.__doc__ or path).strip().splitlines()[0]
        _, passed, failed = modules.get(path, (doc, 0, 0))
        modules[path] = (doc, passed + (outcome == "passed"), failed + (outcome != "passed"))
    for path, (doc, passed, failed) in modules.items():
        append(
            session.config,
            {
                "section": "hostile",
                "what": doc.rstrip("."),
                "held": f"{passed} cases held" + (f", {failed} failed" if failed else ""),
                "lost": 0,
                "test": path,
                "numbers": {"cases": passed + failed, "failed": failed},
            },
        )


# Real proxies for the clients' proxy tests (asyncio, trio), one of each per module.

PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "ws_proxy",
    "wss_proxy",
    "socks_proxy",
)


@pytest.fixture
def no_system_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test starts from an environment without proxies (use it in proxy tests)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("proxies")


@pytest.fixture(scope="module")
def http_proxy(workdir: Path) -> Iterator[str]:
    directory = workdir / "open"
    directory.mkdir()
    with tinyproxy(directory) as uri:
        yield uri


@pytest.fixture(scope="module")
def auth_proxy(workdir: Path) -> Iterator[str]:
    directory = workdir / "auth"
    directory.mkdir()
    with tinyproxy(directory, credentials=("alice", "s3cret")) as uri:
        yield uri


@pytest.fixture(scope="module")
def socks_ports(workdir: Path) -> Iterator[dict[str, int]]:
    with (
        pproxy(workdir, "socks4") as socks4,
        pproxy(workdir, "socks5") as socks5,
    ):
        yield {"socks4": socks4, "socks5": socks5}


@pytest.fixture(scope="module")
def tls_proxy(workdir: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    chain, ca = certificate_files(workdir)
    context = ssl.create_default_context(cafile=str(ca))
    with pproxy(workdir, "http+ssl", certificate=chain) as port:
        yield f"https://127.0.0.1:{port}", context


@pytest.fixture(scope="module")
def server_ca() -> trustme.CA:
    return trustme.CA()
