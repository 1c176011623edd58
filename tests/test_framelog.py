"""Frame-level DEBUG logs like websockets': tether.framelog, in both APIs."""

from __future__ import annotations

import logging
import threading

import pytest

import tether
import tether.sync
from tether.framelog import FrameLog, _Reader, describe_frame, enable_frame_log
from tether.protocol import ClientProtocol, ServerProtocol
from tether.protocol.connection import Connection, Role
from tether.protocol.frames import Frame, Opcode, serialize_frame


@pytest.mark.parametrize(
    ("frame", "line"),
    [
        (Frame(Opcode.TEXT, b"hello"), "TEXT 'hello' [5 bytes]"),
        (Frame(Opcode.TEXT, b""), "TEXT '' [0 bytes]"),
        (Frame(Opcode.TEXT, b"a", fin=False), "TEXT 'a' [1 byte, continued]"),
        (Frame(Opcode.BINARY, b"\x00\x01\xff"), "BINARY 00 01 ff [3 bytes]"),
        (Frame(Opcode.BINARY, b"caf\xc3\xa9"), "BINARY 'café' [text, 5 bytes]"),
        (Frame(Opcode.BINARY, b""), "BINARY '' [0 bytes]"),
        # A continuation may start or end inside a character.
        (
            Frame(Opcode.CONT, b"\xa9 et th\xc3", fin=False),
            "CONT ' et th' [text, 8 bytes, continued]",
        ),
        (Frame(Opcode.TEXT, b"\xff\xfe"), "TEXT ff fe [binary, 2 bytes]"),
        # As websockets: control frames show "text" or "binary" always.
        (Frame(Opcode.PING, b"ping"), "PING 'ping' [text, 4 bytes]"),
        (Frame(Opcode.PONG, b"\x8a\x01"), "PONG 8a 01 [binary, 2 bytes]"),
        (Frame(Opcode.PING, b""), "PING '' [0 bytes]"),
        (Frame(Opcode.CLOSE, b"\x03\xe8bye"), "CLOSE 1000 (OK) bye [5 bytes]"),
        (Frame(Opcode.CLOSE, b""), "CLOSE '' [0 bytes]"),
        (Frame(Opcode.CLOSE, b"\x00"), "CLOSE 00 [binary, 1 byte]"),
    ],
)
def test_describe_frame(frame: Frame, line: str) -> None:
    assert describe_frame(frame) == line


def test_long_payloads_are_shortened() -> None:
    text = describe_frame(Frame(Opcode.TEXT, ("a" * 500 + "z" * 500).encode()))
    assert text == f"TEXT '{'a' * 47}...{'z' * 23}' [1000 bytes]"
    binary = describe_frame(Frame(Opcode.BINARY, bytes(range(256)) * 4))
    assert binary.startswith("BINARY 00 01 02 03")
    assert "..." in binary
    assert binary.endswith("fd fe ff [1024 bytes]")
    # Long binary that is text at both ends but not in the middle: its ends decide.
    mixed = describe_frame(Frame(Opcode.BINARY, b"a" * 400 + b"\xff" + b"b" * 200))
    assert mixed.endswith("[text, 601 bytes]")


def test_reader_stops_on_an_unreadable_stream(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tether.test.framelog")
    reader = _Reader(logger, "<", expect_mask=False)
    with caplog.at_level(logging.DEBUG, logger.name):
        reader.feed(serialize_frame(Opcode.TEXT, b"ok", mask=False)[:3])
        assert caplog.messages == []
        reader.feed(b"k")
        reader.feed(b"\x8b\x00")  # Reserved opcode 0xB.
        reader.feed(serialize_frame(Opcode.TEXT, b"never", mask=False))
    assert caplog.messages == ["< TEXT 'ok' [2 bytes]", "< unreadable frame: reserved opcode 0xb"]


def test_enable_only_with_debug_on() -> None:
    logger = logging.getLogger("tether.test.framelog.off")
    logger.setLevel(logging.INFO)
    engine = Connection(Role.SERVER)
    enable_frame_log(engine, logger)
    assert type(engine) is Connection
    logger.setLevel(logging.DEBUG)
    try:
        enable_frame_log(engine, logger)
        assert type(engine).__name__ == "LoggedConnection"
        assert isinstance(engine, Connection)
        assert isinstance(engine.frame_log, FrameLog)
        first = type(engine)
        enable_frame_log(engine, logger)  # Once is enough.
        assert type(engine) is first
    finally:
        logger.setLevel(logging.NOTSET)


async def echo(ws: tether.ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [
        record.getMessage().split("] ", 1)[1]
        for record in caplog.records
        if record.name == name and record.getMessage().split("] ", 1)[1][:2] in ("< ", "> ")
    ]


async def test_asyncio_frames_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "tether")
    async with tether.serve(echo, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with tether.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            assert type(ws.protocol).__name__ == "LoggedClientProtocol"
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(["frag", "ment"])
            assert await ws.recv() == "fragment"
    assert lines(caplog, "tether.client") == [
        "> TEXT 'hello' [5 bytes]",
        "< TEXT 'hello' [5 bytes]",
        "> TEXT 'frag' [4 bytes, continued]",
        "> CONT 'ment' [text, 4 bytes, continued]",
        "> CONT '' [0 bytes]",
        "< TEXT 'fragment' [8 bytes]",
        "> CLOSE 1000 (OK) [2 bytes]",
        "< CLOSE 1000 (OK) [2 bytes]",
    ]
    assert lines(caplog, "tether.server")[:2] == [
        "< TEXT 'hello' [5 bytes]",
        "> TEXT 'hello' [5 bytes]",
    ]


async def test_asyncio_nothing_changes_with_debug_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "tether")
    async with tether.serve(echo, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        async with tether.connect(f"ws://127.0.0.1:{port}/") as ws:
            # The engine is the plain one: no per-message hook at all.
            assert type(ws.protocol) is ClientProtocol
            await ws.send("quiet")
            assert await ws.recv() == "quiet"
            (server_side,) = server.connections
            assert type(server_side.protocol) is ServerProtocol
    assert not [record for record in caplog.records if "TEXT" in record.getMessage()]


def test_sync_frames_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "tether")

    def handler(ws: tether.sync.ServerConnection) -> None:
        ws.send(b"\x00\xff")
        ws.wait_closed(5)

    server = tether.sync.serve(handler, "127.0.0.1", 0, compression=None)
    runner = threading.Thread(target=server.serve_forever, daemon=True)
    runner.start()
    try:
        port = server.socket.getsockname()[1]
        with tether.sync.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            assert ws.recv(timeout=5) == b"\x00\xff"
            ws.ping("p").wait(5)
    finally:
        server.shutdown()
        runner.join(5)
    assert lines(caplog, "tether.client") == [
        "< BINARY 00 ff [2 bytes]",
        "> PING 'p' [text, 1 byte]",
        "< PONG 'p' [text, 1 byte]",
        "> CLOSE 1000 (OK) [2 bytes]",
        "< CLOSE 1000 (OK) [2 bytes]",
    ]
