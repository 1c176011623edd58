"""Real proxies for the tests, each started on a free loopback port and stopped after.

* :func:`tinyproxy`: Debian's tinyproxy, an HTTP proxy (``CONNECT``), with
  its own configuration in a temporary directory; optionally with Basic
  credentials (it answers 407 without them) or with ``CONNECT`` allowed to
  one port only (it answers 403 to the others).
* :func:`pproxy`: the ``pproxy`` package from PyPI, for SOCKS4, SOCKS4a,
  SOCKS5 and SOCKS5h, and for an HTTP proxy reached over TLS.
* :func:`nginx`: Debian's nginx as a reverse proxy in front of one
  upstream server, adding ``X-Forwarded-For`` and ``X-Real-IP``; optionally
  ending TLS.
* :func:`misbehaving_proxy`: what no real proxy does on purpose (garbage,
  closing early, stalling, data after the answer, a 407 of our choosing):
  a small threaded server, for both client APIs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["certificate_files", "free_port", "misbehaving_proxy", "nginx", "pproxy", "tinyproxy"]

STARTUP_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port nobody listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy exited with {process.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"proxy not listening on {port} after {STARTUP_TIMEOUT} s")


@contextlib.contextmanager
def running(command: list[str], port: int, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, process, log)
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def tinyproxy(
    directory: Path,
    *,
    credentials: tuple[str, str] | None = None,
    connect_port: int | None = None,
) -> Iterator[str]:
    """Run tinyproxy in the foreground; yield its URI, ``http://127.0.0.1:PORT``."""
    binary = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    port = free_port()
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 30",
        "MaxClients 50",
        "LogLevel Info",
        f'LogFile "{directory / "tinyproxy.log"}"',
    ]
    if credentials is not None:
        lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
    if connect_port is not None:
        lines.append(f"ConnectPort {connect_port}")
    config = directory / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    with running([binary, "-d", "-c", str(config)], port, directory / "tinyproxy.out"):
        yield f"http://127.0.0.1:{port}"


# pproxy picks uvloop when it is installed and then asks for an event loop
# in a way uvloop refuses: it runs here with uvloop hidden from it.
_PPROXY = (
    "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'pproxy'; "
    "from pproxy.server import main; main()"
)


@contextlib.contextmanager
def pproxy(directory: Path, listen: str, *, certificate: Path | None = None) -> Iterator[int]:
    """Run pproxy listening with ``listen`` (``socks5``, ``socks4``, ``http+ssl``, ...).

    ``listen`` is pproxy's scheme, optionally followed by ``#user:password``;
    yield the port. ``certificate`` (key and chain in one PEM file) is for
    the ``+ssl`` schemes.
    """
    port = free_port()
    scheme, _, auth = listen.partition("#")
    uri = f"{scheme}://127.0.0.1:{port}" + (f"#{auth}" if auth else "")
    command = [sys.executable, "-c", _PPROXY, "-l", uri]
    if certificate is not None:
        command += ["--ssl", str(certificate)]
    with running(command, port, directory / f"pproxy-{port}.out"):
        yield port


BEHAVIOURS = ("garbage", "close", "stall", "407", "extra", "accept-close", "huge")


@contextlib.contextmanager
def misbehaving_proxy(behaviour: str) -> Iterator[str]:
    """A proxy that reads the ``CONNECT`` request then misbehaves; yield its URI.

    ``garbage`` answers bytes that are not HTTP; ``close`` closes without a
    word; ``stall`` never answers; ``407`` refuses with a challenge;
    ``extra`` accepts then sends bytes the server never would;
    ``accept-close`` accepts in HTTP/1.0, then hangs up; ``huge`` sends an
    endless header.
    """
    assert behaviour in BEHAVIOURS
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def answer(conn: socket.socket) -> None:
        conn.settimeout(5)
        request = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            if behaviour == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            elif behaviour == "close":
                conn.close()
            elif behaviour == "407":
                conn.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
                )
            elif behaviour == "extra":
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\nsurprise")
            elif behaviour == "accept-close":
                conn.sendall(b"HTTP/1.0 200 Connection established\r\n\r\n")
                conn.close()
            elif behaviour == "huge":
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Huge: ")
                for _ in range(100):
                    if stop.is_set():
                        break
                    conn.sendall(b"x" * 1024)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in accepted:
            conn.close()


@contextlib.contextmanager
def nginx(directory: Path, upstream: int, *, certificate: Path | None = None) -> Iterator[int]:
    """Run nginx in front of the server on ``upstream``; yield the port it listens on.

    With ``certificate`` (a PEM file with the key and the chain, as
    :func:`certificate_files` writes it), nginx ends TLS and talks plain
    HTTP to the upstream.
    """
    port = free_port()
    listen = f"127.0.0.1:{port}" + (" ssl" if certificate else "")
    tls = (
        f"ssl_certificate {certificate}; ssl_certificate_key {certificate};" if certificate else ""
    )
    temp = "".join(
        f"    {name}_temp_path {directory / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = directory / "nginx.conf"
    config.write_text(
        f"daemon off;\npid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'};\n"
        f"events {{}}\nhttp {{\n    access_log off;\n{temp}"
        "    map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n"
        f"    server {{\n        listen {listen};\n        {tls}\n"
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
    with running([binary, "-p", str(directory), "-c", str(config)], port, directory / "nginx.log"):
        yield port


def certificate_files(directory: Path) -> tuple[Path, Path]:
    """Make a CA and a certificate for 127.0.0.1; return (key and chain PEM, CA PEM)."""
    import trustme  # noqa: PLC0415

    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    chain = directory / "proxy.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca = directory / "ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    os.chmod(chain, 0o600)
    return chain, ca
