"""The threading server: serve_forever, shutdown, handshake hooks, handlers, timeouts."""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import trustme

from tether.exceptions import ConnectionClosed, ConnectionClosedOK
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.handshake import generate_key
from tether.protocol.http11 import Request
from tether.sync import ServerConnection, connect, serve
from tether.sync.server import HANDSHAKE_READ_SIZE

from .conftest import TIMEOUT, ServerFactory, bounded, echo, run_server, stop_server, uri_of


def test_serve_forever_and_context_manager() -> None:
    with serve(lambda ws: ws.send("hi"), "127.0.0.1", 0) as server:
        thread = run_server(server)
        with connect(uri_of(server)) as ws:
            assert ws.recv(timeout=TIMEOUT) == "hi"
        assert server.fileno() == server.socket.fileno()
    thread.join(TIMEOUT)
    assert not thread.is_alive()


def test_shutdown_before_serve_forever_and_twice() -> None:
    server = serve(lambda ws: None, "127.0.0.1", 0)
    bounded(server.shutdown)
    bounded(server.serve_forever)
    # A second shutdown does nothing.
    bounded(server.shutdown)


def test_dual_stack(start_server: ServerFactory) -> None:
    server = start_server(host=None, port=0)
    port = server.socket.getsockname()[1]
    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("v4")
        assert ws.recv(timeout=TIMEOUT) == "v4"
    if socket.has_dualstack_ipv6():
        assert server.socket.family == socket.AF_INET6
        try:
            ws6 = connect(f"ws://[::1]:{port}/", open_timeout=TIMEOUT)
        except OSError:
            return  # Loopback IPv6 is not configured on this machine.
        with ws6:
            ws6.send("v6")
            assert ws6.recv(timeout=TIMEOUT) == "v6"
    else:
        assert server.socket.family == socket.AF_INET


def test_shutdown_from_handler() -> None:
    server = serve(lambda ws: None, "127.0.0.1", 0)
    stopped = threading.Event()

    def stop(ws: ServerConnection) -> None:
        server.shutdown(close_connections=False)
        stopped.set()

    server.handler = stop
    thread = run_server(server)
    try:
        with connect(uri_of(server)) as ws:
            assert stopped.wait(TIMEOUT)
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=TIMEOUT)
    finally:
        stop_server(server, thread)


@pytest.mark.parametrize("split", [False, True])
def test_a_request_longer_than_a_handshake_read(start_server: ServerFactory, split: bool) -> None:
    # The handshake reads HANDSHAKE_READ_SIZE bytes at most at once: this
    # request takes three reads, and a frame sent right behind it still comes
    # through as the first message.
    seen: list[tuple[str, str | bytes]] = []
    done = threading.Event()

    def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        padding = "".join(ws.request.headers.get_all("X-Padding"))
        seen.append((padding, ws.recv(timeout=TIMEOUT)))
        done.set()

    server = start_server(handler, compression=None)
    # Lines of 3,000 bytes: under max_line, more than two reads in all.
    lines = ["p" * 3000] * (2 * HANDSHAKE_READ_SIZE // 3000 + 1)
    padding = "".join(lines)
    head = (
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {generate_key()}\r\nSec-WebSocket-Version: 13\r\n"
        + "".join(f"X-Padding: {line}\r\n" for line in lines)
        + "\r\n"
    ).encode()
    frame = serialize_frame(Opcode.TEXT, b"right behind", mask=True)
    with socket.create_connection(server.socket.getsockname()[:2], timeout=TIMEOUT) as sock:
        if split:
            # In pieces that straddle the reads' edges.
            for start in range(0, len(head), 1000):
                sock.sendall(head[start : start + 1000])
            sock.sendall(frame)
        else:
            sock.sendall(head + frame)
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101 ")
        assert done.wait(TIMEOUT)
    assert seen == [(padding, "right behind")]


@pytest.mark.parametrize("opening", ["request", "proxy header", "tls"])
def test_shutdown_ends_handshakes_still_reading(opening: str) -> None:
    # A client that connected and sends nothing more (a slowloris) holds its
    # handshake until open_timeout: never, here. shutdown() must not wait for
    # it: it ends the handshakes that still read, as asyncio's close() does.
    options: dict[str, Any] = {"open_timeout": None}
    if opening == "proxy header":
        options.update(proxy_protocol=True, trusted_proxies=["127.0.0.1"])
    elif opening == "tls":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        trustme.CA().issue_cert("localhost").configure_cert(context)
        options["ssl"] = context
    server = serve(echo, "127.0.0.1", 0, **options)
    thread = run_server(server)
    peers = []
    try:
        for _ in range(3):
            peer = socket.create_connection(server.socket.getsockname()[:2], timeout=TIMEOUT)
            peers.append(peer)
            if opening == "request":
                peer.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            elif opening == "proxy header":
                peer.sendall(b"PROXY TCP4 192.0.2.1 ")
        deadline = time.monotonic() + TIMEOUT
        while len(server._threads) < len(peers):
            # Each has its thread, reading.
            assert time.monotonic() < deadline
            time.sleep(0.01)
        bounded(server.shutdown, timeout=5)
        assert not server._threads
        for peer in peers:
            # Dropped without an answer (a reset, if it came before the
            # server read what the peer sent).
            with contextlib.suppress(ConnectionResetError):
                assert peer.recv(4096) == b""
    finally:
        for peer in peers:
            peer.close()
        stop_server(server, thread)


# The SystemExit ends the handler's thread, as it should: pytest reports it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_handler_calling_sys_exit_closes_its_connection(start_server: ServerFactory) -> None:
    # sys.exit() in a handler ends its thread only (threading ignores
    # SystemExit): the connection closes with 1011, as when the handler
    # fails, rather than stay open with nobody to read it.
    threads = []

    def handler(ws: ServerConnection) -> None:
        threads.append(threading.current_thread())
        ws.recv()
        sys.exit(0)

    server = start_server(handler)
    with connect(uri_of(server)) as ws:
        ws.send("exit")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
    # The thread ends, with its SystemExit, within this test.
    threads[0].join(TIMEOUT)
    assert not threads[0].is_alive()


def test_shutdown_during_a_hook_lets_the_handshake_end() -> None:
    # Once its request is read, a handshake is left to end: the client gets
    # its response, then a close frame with 1001, not a dropped connection.
    def hook(ws: ServerConnection, request: Request) -> None:
        while not server._stopped.is_set():
            time.sleep(0.01)
        # Give shutdown() time to end the handshakes still reading.
        time.sleep(0.1)

    server = serve(echo, "127.0.0.1", 0, process_request=hook)
    thread = run_server(server)
    try:
        stopping = threading.Timer(0.2, server.shutdown)
        stopping.start()
        with connect(uri_of(server), open_timeout=TIMEOUT) as ws:
            with pytest.raises(ConnectionClosedOK):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 1001
        stopping.join(TIMEOUT)
    finally:
        stop_server(server, thread)


@pytest.mark.parametrize("max_queue", [0, (4, 8)])
def test_a_max_queue_no_connection_can_take_is_refused_at_once(max_queue: Any) -> None:
    # Not by each connection as it is made: the server dropped every one.
    with pytest.raises(ValueError, match="max_queue"):
        serve(echo, "127.0.0.1", 0, max_queue=max_queue)
    with pytest.raises(ValueError, match="max_queue"):
        connect("ws://127.0.0.1:1/", max_queue=max_queue)


# A server whose process has 8 file descriptors to spare once it listens.
SERVER_SHORT_OF_FILES = """
import os, resource
from tether.sync import serve

def echo(ws):
    for message in ws:
        ws.send(message)

with serve(echo, "127.0.0.1", 0) as server:
    used = len(os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
    print(server.socket.getsockname()[1], flush=True)
    server.serve_forever()
"""


def test_serving_goes_on_once_file_descriptors_come_back() -> None:
    # Out of file descriptors, accept() fails (EMFILE): the server waits for
    # some to come back rather than stop accepting for good.
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER_SHORT_OF_FILES],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # More clients than the server has files for, silent: their
        # handshakes hold what it has, and the rest wait in the backlog.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        assert server.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(server.stderr, selectors.EVENT_READ)
            assert selector.select(TIMEOUT), "the server never ran out of files"
        assert "Too many open files" in server.stderr.readline()
        for client in clients:
            client.close()
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
            ws.send("still serving")
            assert ws.recv(timeout=TIMEOUT) == "still serving"
    finally:
        server.terminate()
        server.communicate(timeout=TIMEOUT)
