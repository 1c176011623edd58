"""A server may send a message and close in the same write as its 101 response."""

from __future__ import annotations

import socket
import threading

import pytest

from tether.exceptions import ConnectionClosedOK
from tether.protocol.events import RequestReceived
from tether.protocol.server import ServerProtocol
from tether.sync import connect

from .conftest import TIMEOUT


def test_message_and_close_in_the_same_write_as_the_101() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def serve_once() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.settimeout(TIMEOUT)
            engine = ServerProtocol()
            while True:
                engine.receive_data(sock.recv(65536))
                events = engine.events()
                if events:
                    break
            (event,) = events
            assert isinstance(event, RequestReceived)
            engine.send_response(engine.accept(event.request))
            engine.send_text("hello and goodbye")
            engine.send_close(1000, "done")
            # Everything in one write: the client reads it in one recv.
            sock.sendall(b"".join(engine.data_to_send()))
            # The server closes TCP first, once the client's close frame is in.
            while not engine.close_transport:
                data = sock.recv(65536)
                if not data:
                    break
                engine.receive_data(data)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    with connect(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT) as ws:
        assert ws.recv(timeout=TIMEOUT) == "hello and goodbye"
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=TIMEOUT)
    assert ws.close_code == 1000
    assert ws.close_reason == "done"
    thread.join(TIMEOUT)
    listener.close()
