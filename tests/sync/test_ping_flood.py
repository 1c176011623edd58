"""A peer that floods pings and never reads cannot grow the server's memory.

The engine answers every ping; while a write is stuck because the peer does
not read, those answers wait in memory. Past a bound, the reader thread stops
reading until the write goes through, and TCP flow control slows the flood.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tether.exceptions import ConnectionClosed
from tether.sync import ServerConnection
from tether.sync.connection import READ_SIZE, REPLY_LIMIT

from .conftest import TIMEOUT, ServerFactory, raw_client


def test_ping_flood_while_a_write_is_stuck(start_server: ServerFactory) -> None:
    connections: list[ServerConnection] = []
    release = threading.Event()

    def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        # The peer never reads it: the write gets stuck, then fails at the end.
        with contextlib.suppress(ConnectionClosed):
            ws.send(b"x" * (32 * 1024 * 1024))
        release.wait(TIMEOUT)

    server = start_server(handler, compression=None, close_timeout=0.5, ping_interval=None)
    peer = raw_client(server)
    stop = threading.Event()

    def flood() -> None:
        ping = b"\x89\xfd" + b"\x00\x00\x00\x00" + b"p" * 125  # masked with a zero key
        batch = ping * 256
        try:
            while not stop.is_set():
                peer.sock.sendall(batch)
        except OSError:
            pass

    # Let the handler's write take its message out of the engine and get stuck.
    deadline = time.monotonic() + TIMEOUT
    while not connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert connections
    time.sleep(0.3)
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    deadline = time.monotonic() + 1.5
    peak = 0
    while time.monotonic() < deadline:
        peak = max(peak, connections[0].protocol.pending_output)
        time.sleep(0.01)
    stop.set()
    # Shutting the socket down wakes the flooder out of a blocked sendall.
    peer.sock.shutdown(socket.SHUT_RDWR)
    peer.close()
    release.set()
    flooder.join(TIMEOUT)
    # One read's worth of pings may be answered past the limit, not more.
    assert peak <= REPLY_LIMIT + READ_SIZE
