"""The opening handshake in the protocol engines alone: what each side costs.

Cases, each one whole handshake with no sockets and no event loop:

- ``server``: a server engine made as ``tether.serve`` makes it (streaming,
  permessage-deflate offered), fed a client's request in one read, then
  ``accept`` and ``send_response``, the 101 taken out;
- ``client``: a client engine's request built and sent, and the server's 101
  fed back in one read, until the connection is open;
- ``parse``: :class:`~tether.protocol.http11.RequestParser` alone, on the same request.

``python -m bench.handshake_core`` prints CPU microseconds per handshake.
``python -m bench.handshake_core --callgrind`` counts instructions instead,
exact on a busy machine: each case runs under ``valgrind --tool=callgrind``
at two sizes, and the difference is divided by the extra handshakes, so that
start-up costs cancel out. ``TETHER_NO_SPEEDUPS=1`` measures the pure-Python
fallback.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.callgrind import per_operation
from tether.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import State
from tether.protocol.events import RequestReceived
from tether.protocol.handshake import accept_key
from tether.protocol.http11 import RequestParser
from tether.protocol.server import ServerProtocol

CASES = ("server", "client", "parse")

# A browser-like request: what a server reads most.
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_REQUEST = (
    "GET /chat HTTP/1.1\r\n"
    "Host: 127.0.0.1:8765\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {_KEY}\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "User-Agent: bench\r\n"
    "\r\n"
).encode()


def _server() -> None:
    server = ServerProtocol(
        extensions=[ServerPerMessageDeflateFactory()], streaming=True, max_size=1 << 20
    )
    server.receive_data(_REQUEST)
    event = server.events()[0]
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    server.data_to_send()
    assert server.state is State.OPEN


def _client() -> None:
    client = ClientProtocol("ws://127.0.0.1:8765/chat")
    request = client.connect()
    client.send_request(request)
    client.data_to_send()
    key = request.headers["Sec-WebSocket-Key"]
    client.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n"
        b"Date: Mon, 07 Dec 2026 00:00:00 GMT\r\nServer: bench\r\n\r\n"
    )
    client.events()
    assert client.state is State.OPEN


def _parse() -> None:
    parser = RequestParser()
    parser.receive_data(_REQUEST)
    assert parser.result is not None


_RUN: dict[str, Callable[[], None]] = {"server": _server, "client": _client, "parse": _parse}


def run_case(case: str, count: int) -> float:
    """Run ``count`` handshakes of ``case``; return CPU seconds for each."""
    run = _RUN[case]
    start = time.process_time()
    for _ in range(count):
        run()
    return (time.process_time() - start) / count


def instructions(case: str) -> float:
    """Instructions per handshake, from two callgrind runs of different sizes."""
    # per_operation fixes the hash seed: set and dict layouts, and so the counts, repeat.
    return per_operation("bench.handshake_core", ["--case", case], (1000, 5000))


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="count instructions")
    parser.add_argument("--case", choices=CASES, help="one case")
    parser.add_argument("--count", type=int, default=5000, help="handshakes (without --callgrind)")
    args = parser.parse_args()
    cases = [args.case] if args.case else list(CASES)
    for case in cases:
        if args.callgrind:
            print(f"{case:<8} {instructions(case):>12,.0f} instructions per handshake", flush=True)
        else:
            value = run_case(case, args.count) * 1e6
            print(f"{case:<8} {value:>12.1f} CPU us per handshake", flush=True)


if __name__ == "__main__":
    main()
