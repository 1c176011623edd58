"""A hand-driven client on a blocking socket, for hostile input: run it in a worker thread."""

from __future__ import annotations

import socket
import struct

from tests.backends import TIMEOUT
from tether.protocol.frames import serialize_frame
from tether.protocol.handshake import generate_key

__all__ = ["RawClient", "exchange"]


def _request(port: int, path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {generate_key()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` to the server, then read everything until it closes TCP."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


class RawClient:
    """A client that completed the handshake and then sends whatever bytes it is told."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.sendall(_request(port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buffer = b""

    def send_frame(
        self, opcode: int, payload: bytes, *, mask: bool = True, fin: bool = True
    ) -> None:
        """Send one frame, masked unless told otherwise."""
        self.sock.sendall(serialize_frame(opcode, payload, fin=fin, mask=mask))

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed TCP")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """Read one unmasked frame from the server: its opcode and payload."""
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        return first & 0x0F, self._read(length)

    def read_close_code(self) -> int:
        """Skip frames until the server's close frame; return its code."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if payload else 1005

    def wait_eof(self) -> None:
        """Read until the server closes TCP."""
        while self.sock.recv(65536):
            pass

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
