"""Hand-driven peers on blocking sockets: run their calls in a worker thread.

:class:`RawClient` sends hostile bytes to a server. :class:`RawPeer` is either
end of a connection whose frames are encoded and decoded by a bare engine,
whose automatic answers (pongs, the echo of a close frame) are never written
unless the test calls :meth:`RawPeer.flush`: it can stay silent and read
nothing. :func:`close_then_pong` is the closing case where a server must not
reset TCP, run against every server.

The handshake written and checked by hand (:func:`client_request`,
:func:`split_head`, :func:`check_accepted`, :func:`accept_response`) and the
engine's side of a peer (:class:`EngineSide`) do no I/O: the asyncio tests'
peer (``tests/asyncio/raw_peer.py``) uses them too.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from tether.protocol.close import Close
from tether.protocol.connection import Connection, Role
from tether.protocol.events import CloseReceived, Event, Message
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.handshake import accept_key, generate_key

__all__ = [
    "TIMEOUT",
    "EngineSide",
    "RawClient",
    "RawPeer",
    "accept_raw",
    "accept_response",
    "check_accepted",
    "client_request",
    "close_then_pong",
    "exchange",
    "header",
    "raw_client",
    "split_head",
]

TIMEOUT = 10.0
"""How long a raw peer waits for bytes before the test fails."""


def client_request(host: str, port: int, path: str = "/") -> tuple[bytes, str]:
    """A client's opening handshake request, and the key it sends."""
    key = generate_key()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    return request, key


def split_head(buffer: bytes) -> tuple[list[str], bytes] | None:
    """An HTTP head's lines and the bytes after it; ``None`` while ``buffer`` holds part of it."""
    head, found, rest = buffer.partition(b"\r\n\r\n")
    if not found:
        return None
    return head.decode("latin-1").split("\r\n"), rest


def header(lines: list[str], name: str) -> str:
    """The value of header ``name`` in an HTTP head split into lines."""
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    raise KeyError(name)


def check_accepted(lines: list[str], key: str) -> None:
    """Check that a server's response head accepts the handshake of ``key``."""
    assert lines[0].startswith("HTTP/1.1 101 "), lines[0]
    assert header(lines, "Sec-WebSocket-Accept") == accept_key(key)


def accept_response(lines: list[str]) -> bytes:
    """The server's answer accepting the handshake request of ``lines``."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(header(lines, 'Sec-WebSocket-Key'))}\r\n\r\n"
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
        self.sock.sendall(client_request("127.0.0.1", port)[0])
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


class EngineSide:
    """The engine of a raw peer: it encodes what the test sends and decodes what comes.

    Its automatic answers (pongs, the echo of a close frame) are dropped: the
    peer writes only what the test puts into the engine.
    """

    def __init__(self, role: Role, leftover: bytes = b"") -> None:
        self.engine = Connection(role, streaming=True, max_size=None)
        """Encodes what the test sends and decodes what the other side sends."""
        self._pending: list[Event] = []
        self._feed(leftover)

    def _feed(self, data: bytes) -> None:
        self.engine.receive_data(data)
        self._pending.extend(self.engine.events())
        # Whatever the engine would answer stays unsent: the peer is silent.
        self.engine.data_to_send()


class RawPeer(EngineSide):
    """One end of a WebSocket connection that does only what the test tells it."""

    def __init__(self, sock: socket.socket, role: Role, leftover: bytes = b"") -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)
        super().__init__(role, leftover)

    def flush(self) -> None:
        """Write the frames the test put into the engine with its send methods."""
        self.sock.sendall(b"".join(self.engine.data_to_send()))

    def next_event(self, timeout: float = TIMEOUT) -> Event:
        """The next event the other side sent.

        Raise :class:`EOFError` if it closed TCP first, :class:`TimeoutError`
        if nothing came within ``timeout``.
        """
        self.sock.settimeout(timeout)
        try:
            while not self._pending:
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("the other side closed TCP")
                self._feed(data)
        finally:
            self.sock.settimeout(TIMEOUT)
        return self._pending.pop(0)

    def wait_eof(self) -> None:
        """Read until the other side closes TCP."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass

    def abort(self) -> None:
        """Drop TCP at once, with a reset."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        """Close TCP."""
        self.sock.close()


def _read_head(sock: socket.socket) -> tuple[list[str], bytes]:
    buffer = b""
    while (head := split_head(buffer)) is None:
        data = sock.recv(4096)
        if not data:
            raise EOFError("TCP closed during the handshake")
        buffer += data
    return head


def raw_client(
    port: int, path: str = "/", host: str = "127.0.0.1", receive_buffer: int | None = None
) -> RawPeer:
    """Connect to the server on ``port`` and do the client's handshake by hand.

    ``receive_buffer`` sets the socket's ``SO_RCVBUF`` before it connects, so
    that the window it offers the server stays that small.
    """
    if receive_buffer is None:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(TIMEOUT)
        sock.connect((host, port))
    request, key = client_request(host, port, path)
    sock.sendall(request)
    lines, rest = _read_head(sock)
    check_accepted(lines, key)
    return RawPeer(sock, Role.CLIENT, rest)


def accept_raw(listener: socket.socket) -> RawPeer:
    """Accept one client on ``listener`` and do the server's handshake by hand."""
    sock, _ = listener.accept()
    sock.settimeout(TIMEOUT)
    lines, rest = _read_head(sock)
    sock.sendall(accept_response(lines))
    return RawPeer(sock, Role.SERVER, rest)


ECHO_IN_KERNEL = 12 * 1024
"""An echo :func:`close_then_pong` asks for that the server's kernel takes at
once, past the 4 KiB its client's window takes: the server's close frame
waits, unsent, in the server's kernel."""

ECHO_IN_SERVER = 1_000_000
"""An echo far larger than the kernel buffers: most of it, and the close frame
behind it, wait in the server's own buffers (or its writer waits)."""


def close_then_pong(port: int, path: str, size: int, close_taken: Callable[[], None]) -> None:
    """A client's pong that follows its close frame must not make the server reset TCP.

    RFC 6455 section 5.5.2 makes a client answer a ping that reaches it after
    it sent its close frame, so a pong may follow the client's close frame
    while the server is already closing. A socket closed with such bytes
    unread, or one that receives them once closed, makes the kernel reset
    TCP: it drops what the server had not delivered yet, its close frame
    included, and the client ends with 1006 instead of 1000 (on a lossy link,
    a close frame lost once is never sent again). So a server half-closes
    after the closing handshake and reads on until the client closes TCP.

    Here, on loopback, a client whose receive buffer is 4 KiB has the server
    at ``path`` echo ``size`` bytes (:data:`ECHO_IN_KERNEL` or
    :data:`ECHO_IN_SERVER`), waits for the echo's first byte without taking
    it, sends its close frame, waits for ``close_taken`` (which returns once
    the server has read the close frame), sends the pong, as if a ping had
    crossed its close frame, and only then reads: it must get the whole
    echo, the server's close frame and a clean EOF, with no reset.
    """
    peer = raw_client(port, path, receive_buffer=4096)
    try:
        payload = bytes(range(256)) * (size // 256)
        peer.engine.send_binary(payload)
        peer.flush()
        # The echo started, so the server has all of it to send back. Peeking
        # leaves the client's window full.
        assert peer.sock.recv(1, socket.MSG_PEEK), "the server closed TCP before echoing"
        peer.engine.send_close(1000, "done")
        peer.flush()
        close_taken()
        peer.sock.sendall(serialize_frame(Opcode.PONG.value, b"", mask=True))
        received = []
        try:
            while chunk := peer.sock.recv(65536):
                received.append(chunk)
        except ConnectionResetError:
            raise AssertionError(
                f"the server reset TCP after {sum(map(len, received))} bytes"
            ) from None
        decoder = Connection(Role.CLIENT, max_size=None)
        decoder.receive_data(b"".join(received))
        message, close = decoder.events()
        assert isinstance(message, Message)
        assert message.data == payload
        assert close == CloseReceived(Close(1000, "done"))
    finally:
        peer.close()
