"""Write the seed corpus of every target into ``fuzz/corpus/<target>/``.

Run ``python -m fuzz.seeds`` after changing how a target reads its input;
the files are committed so that the fuzzers and the tests start from them.
Each seed is a small valid or nearly valid input that takes a target deep
into its code at once, which random bytes would take long to find.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

from fuzz.handshake import CLIENT_KEY
from tether.protocol.frames import Opcode, serialize_frame
from tether.protocol.handshake import accept_key

__all__ = ["SEEDS", "write"]

CORPUS = Path(__file__).parent / "corpus"


def _masked(opcode: int, data: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """A masked frame with the key of RFC 6455 section 5.7, so the seed is stable."""
    key = bytes([0x37, 0xFA, 0x21, 0x3D])
    header = serialize_frame(opcode, b"\x00" * len(data), fin=fin, rsv=rsv, mask=False)
    header = header[: len(header) - len(data)]
    header = bytes([header[0], header[1] | 0x80]) + header[2:]
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return header + key + masked


def _deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4]


# Frames: one configuration byte (1: server, 2: streaming, 4: deflate), then
# max_size on two bytes, then the stream.
_CLIENT = b"\x00\x04\x00"
_SERVER = b"\x01\x04\x00"
_SERVER_STREAMING = b"\x03\x04\x00"
_CLIENT_DEFLATE = b"\x04\x04\x00"

_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)
_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + accept_key(CLIENT_KEY).encode() + b"\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n"
    b"\r\n"
)
_ERROR_RESPONSE = (
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
)

_TEXT = serialize_frame(Opcode.TEXT, b"Hello", mask=False)

SEEDS: dict[str, list[bytes]] = {
    "frames": [
        # RFC 6455 section 5.7: unmasked and masked "Hello", fragmented
        # "Hel" + "lo", an unmasked ping and its masked pong, 256 bytes and
        # 64 KiB binary headers.
        _CLIENT + bytes.fromhex("810548656c6c6f"),
        _SERVER + bytes.fromhex("818537fa213d7f9f4d5158"),
        _CLIENT + bytes.fromhex("010348656c80026c6f"),
        _CLIENT + bytes.fromhex("890548656c6c6f"),
        _SERVER + bytes.fromhex("8a8537fa213d7f9f4d5158"),
        _CLIENT + bytes.fromhex("827e0100") + b"\x00" * 256,
        _CLIENT + bytes.fromhex("827f0000000000010000"),
        # Fragments with a ping between them, streamed; then a close.
        _SERVER_STREAMING
        + _masked(Opcode.TEXT, b"caf", fin=False)
        + _masked(Opcode.PING, b"?")
        + _masked(Opcode.CONT, "é ☃".encode(), fin=True)
        + _masked(Opcode.CLOSE, b"\x03\xe8bye"),
        # Invalid UTF-8 cut inside a fragmented message.
        _SERVER + _masked(Opcode.TEXT, b"\xce", fin=False) + _masked(Opcode.CONT, b"\xff"),
        # A compressed message ("Hello" of RFC 7692 section 7.2.3.1), then a
        # compressed one in two fragments.
        _CLIENT_DEFLATE + bytes.fromhex("c107f248cdc9c90700"),
        _CLIENT_DEFLATE
        + serialize_frame(Opcode.TEXT, _deflate(b"x" * 100)[:3], fin=False, rsv=0x40, mask=False)
        + serialize_frame(Opcode.CONT, _deflate(b"x" * 100)[3:], mask=False),
        _CLIENT + serialize_frame(Opcode.CLOSE, b"\x03\xe9", mask=False) + _TEXT,
    ],
    "handshake": [
        # Flags: 0 request parser, 1 response parser, 2 server, 3 client;
        # then the chunk size.
        b"\x00\x03" + _REQUEST,
        b"\x05\x07" + _ERROR_RESPONSE,
        b"\x01\x01" + _RESPONSE,
        b"\x06\x00" + _REQUEST + _masked(Opcode.TEXT, b"early"),
        b"\x0e\x00" + _REQUEST.replace(b"GET", b"PUT"),
        b"\x07\x00" + _RESPONSE + _TEXT,
        b"\x03\x00" + _RESPONSE.replace(b"server_max_window_bits=10", b"x-unknown"),
        # As uvicorn hands a request over: lower-case names; then the checks
        # of Host and Content-Length that the C reader makes too.
        b"\x00\x10" + _REQUEST.lower().replace(b"get /chat http/1.1", b"GET /chat HTTP/1.1"),
        b"\x00\x02"
        + _REQUEST.replace(b"example.com", b"[::1]:8080").replace(
            b"\r\n\r\n", b"\r\nContent-Length: 0\r\nHost: a%2F:\r\n\r\n"
        ),
    ],
    "header_values": [
        # Flags pick the parser: 0 extensions, 1 subprotocols, 2 Connection,
        # 3 Upgrade, 4 Authorization.
        b"\x00permessage-deflate; client_max_window_bits=10; "
        b'server_no_context_takeover, x-foo; bar="a\\"b", ,',
        b"\x01chat, superchat, v2.chat",
        b"\x02keep-alive, Upgrade",
        b"\x03websocket, h2c/1.0",
        b"\x04Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        b"\x84Basic w6lsw6h2ZTptb3QgZGUgcGFzc2U=",
    ],
    "deflate": [
        # Odd first byte: negotiation, with factory flags and window bits.
        b"\x01\x03\x0a\x0c"
        b"permessage-deflate; client_max_window_bits; server_max_window_bits=12, "
        b"permessage-deflate; client_no_context_takeover, permessage-deflate",
        b"\x01\x04\x10\x09permessage-deflate; client_max_window_bits=9",
        # Even: decompression, with flags, max_size and the cut size.
        b"\x00\x1c\x00\x40\x05" + bytes.fromhex("f248cdc9c90700"),
        b"\x00\x00\x00\x10\x03" + _deflate(b"a" * 1000),
        b"\x00\x01\x00\x00\x07" + _deflate(bytes(range(256)) * 4),
        b"\x00\x00\x01\x00\x02" + bytes.fromhex("ffffffff0000"),
    ],
    "speedups": [
        # Odd first byte: masking (0x02: stretched past the 16 KiB blocks);
        # 0x04: building a frame (0x08: masked, 0x10: stretched to 64 KiB;
        # with 0x20, compressed: first byte, key, level, max_length with
        # 0x10, then the data); otherwise a header at a position.
        b"\x01\x37\xfa\x21\x3d" + bytes.fromhex("7f9f4d5158"),
        b"\x81\x01\x02\x03\x04" + bytes(range(64)),
        b"\x43\x01\x02\x03\x04\x40\x01" + bytes(range(7)),
        b"\x04\x81Hello",
        b"\x0c\x82\x37\xfa\x21\x3d" + bytes(range(200)),
        b"\xdc\x02\x37\xfa\x21\x3d\x03abc",
        b"\x14\x82\x04abc",
        b"\x04\x09" + b"x" * 126,
        b"\x02\x00" + bytes.fromhex("818537fa213d"),
        b"\x40\x00" + bytes.fromhex("827f0000000000010000"),
        b"\xf0\x02\x00\x00" + bytes.fromhex("c17e0100"),
        b"\x00\x00" + bytes.fromhex("827f8000000000000000"),
        # 0x08: reading messages, here compressed ones (0x02: masked).
        b"\x18\x00" + serialize_frame(Opcode.TEXT, _deflate(b"Hello " * 20), rsv=0x40, mask=False),
        b"\x1a\x00" + _masked(Opcode.BINARY, _deflate(bytes(300)), rsv=0x40) + _masked(2, b"x"),
        b"\x24\xc1\x06" + b'{"id": 1, "symbol": "TTHR"}, {"id": 2, "symbol": "TTHR"}',
        b"\x2c\xc2\x37\xfa\x21\x3d\x09" + bytes(range(200)) * 2,
        b"\x34\xc1\x01\x05" + _deflate(b"a" * 1000),
        b"\x24\xc1\x00" + bytes.fromhex("f348cd0100cac90700"),
    ],
}


def write() -> None:
    """Write every seed, named by its hash as libFuzzer names its finds."""
    for target, seeds in SEEDS.items():
        directory = CORPUS / target
        directory.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    write()
