"""The deployment of the tutorial: nginx's configuration in front of chat_4.py, for real."""

from __future__ import annotations

import asyncio
import configparser
import http.client
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
import trustme

import tether
from tests.docs.programs import EXAMPLES, WAIT, free_port, running_server, wait_listening

DEPLOYMENT = EXAMPLES / "deployment"
CHAT = EXAMPLES / "tutorial" / "chat_4.py"


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx is missing: make test installs it (DEBIAN_PACKAGES)"
    return found


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("chat.example.com", "127.0.0.1")
    cert_file, key_file = tmp_path / "chat.pem", tmp_path / "chat.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return ca, cert_file, key_file


def nginx_config(tmp_path: Path, listen: int, upstream: int, cert: Path, key: Path) -> Path:
    """The documented site, with test ports and files, in a main configuration of its own."""
    site = (DEPLOYMENT / "nginx.conf").read_text()
    for documented, actual in [
        ("listen 443 ssl;", f"listen 127.0.0.1:{listen} ssl;"),
        ("server 127.0.0.1:8766;", f"server 127.0.0.1:{upstream};"),
        ("/etc/ssl/certs/chat.example.com.pem", str(cert)),
        ("/etc/ssl/private/chat.example.com.key", str(key)),
    ]:
        assert documented in site, documented
        site = site.replace(documented, actual)
    (tmp_path / "site.conf").write_text(site)
    temp = "\n".join(
        f"    {name}_temp_path {tmp_path / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"daemon off;\npid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n"
        f"    include {tmp_path / 'site.conf'};\n}}\n"
    )
    return main


def test_nginx_in_front_of_the_chat(
    tmp_path: Path, certificate: tuple[trustme.CA, Path, Path]
) -> None:
    ca, cert, key = certificate
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with running_server(CHAT) as upstream:
        listen = free_port()
        config = nginx_config(tmp_path, listen, upstream, cert, key)
        nginx = subprocess.Popen(
            [nginx_binary(), "-p", str(tmp_path), "-c", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_listening(listen, nginx)
            health = http.client.HTTPSConnection("127.0.0.1", listen, timeout=WAIT, context=context)
            health.request("GET", "/healthz")
            response = health.getresponse()
            assert (response.status, response.read()) == (200, b"OK\n")
            health.close()
            asyncio.run(chat_through(listen, context))
        finally:
            nginx.terminate()
            nginx.communicate(timeout=WAIT)


async def chat_through(port: int, context: ssl.SSLContext) -> None:
    uri = f"wss://alice:wonderland@chat.example.com:{port}/rooms/lobby"
    async with tether.connect(uri, ssl=context, host="127.0.0.1") as alice:
        assert await alice.recv() == "alice joined lobby"
        await alice.send("through nginx")
        assert await alice.recv() == "alice: through nginx"


def test_systemd_unit_runs_the_documented_server() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOYMENT / "chat.service").read_text())
    service = unit["Service"]
    assert service["ExecStart"].endswith(f"python {CHAT.name}")
    assert service["KillSignal"] == "SIGTERM"
    # The port systemd gives is the one nginx's upstream names.
    assert "CHAT_PORT=8766" in service["Environment"]
    assert "server 127.0.0.1:8766;" in (DEPLOYMENT / "nginx.conf").read_text()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
