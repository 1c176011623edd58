"""Digest authentication against a real server that issues challenges: Apache httpd.

Apache's mod_auth_digest (MD5, ``qop="auth"``) guards a tether server behind
mod_proxy_wstunnel; both clients answer its challenge. Neither nginx (its
Debian build has no digest module) nor aiohttp (no server side for Digest)
can play this part. Apache runs in the foreground with its own configuration
in a temporary directory, on a free loopback port, and is stopped after.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
import tether.sync
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus

from ..proxy_servers import free_port, running

MODULES = "/usr/lib/apache2/modules"
REALM = "tether"


def apache_config(directory: Path, port: int, backend: int) -> Path:
    users = directory / "digest.passwd"
    ha1 = hashlib.md5(f"alice:{REALM}:s3cret".encode(), usedforsecurity=False).hexdigest()
    users.write_text(f"alice:{REALM}:{ha1}\n")
    users.chmod(0o644)
    modules = [
        "mpm_event",
        "authn_core",
        "authn_file",
        "authz_core",
        "authz_user",
        "auth_digest",
        "proxy",
        "proxy_http",
        "proxy_wstunnel",
    ]
    lines = [
        # Its own root: apache2-bin alone has no /etc/apache2.
        f"ServerRoot {directory}",
        "ServerName 127.0.0.1",
        f"Listen 127.0.0.1:{port}",
        f"PidFile {directory / 'httpd.pid'}",
        f"ErrorLog {directory / 'error.log'}",
        f"DefaultRuntimeDir {directory}",
        "User nobody",
        "Group nogroup",
        *(f"LoadModule {name}_module {MODULES}/mod_{name}.so" for name in modules),
        '<Location "/">',
        "  AuthType Digest",
        f'  AuthName "{REALM}"',
        "  AuthDigestProvider file",
        f"  AuthUserFile {users}",
        "  Require valid-user",
        f'  ProxyPass "ws://127.0.0.1:{backend}/"',
        "</Location>",
    ]
    config = directory / "httpd.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture(scope="module")
def backend_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def apache(backend_port: int) -> Iterator[str]:
    # Apache's workers run as nobody: pytest's temporary directories are
    # private to root, so this one is made readable by all.
    with tempfile.TemporaryDirectory(prefix="tether-apache-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        port = free_port()
        config = apache_config(directory, port, backend_port)
        binary = shutil.which("apache2") or "/usr/sbin/apache2"
        with running([binary, "-f", str(config), "-DFOREGROUND"], port, directory / "out.log"):
            yield f"ws://127.0.0.1:{port}"


async def hello(ws: ServerConnection) -> None:
    await ws.send(f"hello {ws.request_headers['Authorization'].split()[0]}")


@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_both_clients_answer_apache(apache: str, backend_port: int) -> None:
    async with tether.serve(hello, "127.0.0.1", backend_port):
        # Apache's challenge, as it is.
        with pytest.raises(InvalidStatus) as caught:
            await tether.connect(f"{apache}/chat")
        challenge = caught.value.response.headers["WWW-Authenticate"]
        assert challenge.startswith(f'Digest realm="{REALM}", nonce=')
        assert 'qop="auth"' in challenge
        async with tether.connect(f"{apache}/chat", auth=("alice", "s3cret")) as ws:
            assert await ws.recv() == "hello Digest"

        def sync_client() -> str | bytes:
            uri = apache.replace("ws://", "ws://alice:s3cret@") + "/chat"
            with tether.sync.connect(uri) as ws:
                return ws.recv(timeout=5)

        assert await asyncio.to_thread(sync_client) == "hello Digest"
        with pytest.raises(InvalidStatus, match="401"):
            await tether.connect(f"{apache}/chat", auth=("alice", "wrong"))
