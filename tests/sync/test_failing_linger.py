"""Failing on the peer's data must not destroy the close frame with a TCP reset.

The threading twin of tests/asyncio/test_failing_linger.py: a server that
fails on a frame header and closes its socket with the rest of the payload
unread makes the kernel send a RST, and the peer loses the 1009 close frame.
"""

from __future__ import annotations

import threading

from tether.protocol.events import CloseReceived
from tether.sync import ServerConnection

from .conftest import TIMEOUT, ServerFactory, bounded, raw_client


def test_peer_sending_too_much_reads_the_1009_close_frame(start_server: ServerFactory) -> None:
    closed = threading.Event()
    seen: list[ServerConnection] = []

    def handler(ws: ServerConnection) -> None:
        ws.wait_closed(TIMEOUT)
        seen.append(ws)
        closed.set()

    server = start_server(handler, max_size=1024, compression=None)
    peer = raw_client(server)
    peer.engine.send_binary(b"\x00" * (4 * 1024 * 1024))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            peer.flush()
        except OSError as exc:
            errors.append(exc)

    # Written from a thread: the server fails on the header, long before the
    # payload is all there, and must keep reading (and dropping) the rest.
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    event = bounded(peer.next_event)
    assert isinstance(event, CloseReceived)
    assert event.close.code == 1009
    writer.join(TIMEOUT)
    assert not writer.is_alive()
    assert errors == []
    bounded(peer.wait_eof)
    peer.close()
    assert closed.wait(TIMEOUT)
    sent = seen[0].protocol.close_sent
    assert sent is not None
    assert sent.code == 1009
