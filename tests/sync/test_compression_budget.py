"""Many small compressed messages cannot inflate past what the queue holds.

Each message is 60,000 zero bytes compressed to a few dozen: one read from
the socket holds a thousand of them. The threading server must inflate no
more messages than ``max_queue`` while the handler does not read; the rest
waits compressed, in the engine, then in the kernel.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import tracemalloc

from tether.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import State
from tether.sync import ServerConnection

from .conftest import TIMEOUT, ServerFactory, uri_of

MiB = 1 << 20


def test_compressed_flood_is_not_inflated_past_the_queue(start_server: ServerFactory) -> None:
    release = threading.Event()
    received: list[int] = []

    def handler(ws: ServerConnection) -> None:
        release.wait(TIMEOUT)
        for message in ws:
            received.append(len(message))

    server = start_server(handler, max_size=64 * 1024, max_queue=4)
    client = ClientProtocol(
        uri_of(server), extensions=[ClientPerMessageDeflateFactory(client_no_context_takeover=True)]
    )
    host, port = server.socket.getsockname()[:2]
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    client.send_request(client.connect())
    sock.sendall(b"".join(client.data_to_send()))
    while client.state is State.CONNECTING:
        client.receive_data(sock.recv(65536))
    assert client.extensions
    count = 1500
    for _ in range(count):
        client.send_binary(bytes(60_000))
    flood = b"".join(client.data_to_send())
    assert len(flood) * 100 < count * 60_000

    def write() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(flood)

    tracemalloc.start()
    try:
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        time.sleep(1.0)  # The handler reads nothing meanwhile.
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # max_queue * max_size is 256 KiB; a read held compressed is 64 KiB.
    assert peak < 4 * MiB, peak
    release.set()
    writer.join(TIMEOUT)
    client.send_close(1000)
    sock.sendall(b"".join(client.data_to_send()))
    deadline = time.monotonic() + TIMEOUT
    while len(received) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    sock.close()
    assert received == [60_000] * count
