"""Hostile input gets the right HTTP status or close code, never a hang, on every API."""

from __future__ import annotations

import pytest

from tests.backends import Backend, Face
from tests.behaviour.raw import RawClient, exchange


async def hold(ws: Face) -> None:
    await ws.wait_closed()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
    ],
    ids=["garbage", "post", "huge-header", "not-websocket"],
)
def test_bad_requests_are_refused(backend: Backend, request_bytes: bytes, status: int) -> None:
    async def body() -> None:
        async with backend.serve(hold) as port:
            answer = await backend.in_thread(lambda: exchange(port, request_bytes))
            assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:100]

    backend.run(body)


@pytest.mark.parametrize(
    ("opcode", "payload", "mask", "code"),
    [
        (0x1, b"unmasked", False, 1002),
        (0x1, b"\xff\xfe invalid UTF-8", True, 1007),
        (0x3, b"reserved opcode", True, 1002),
        (0x9, b"p" * 126, True, 1002),
    ],
    ids=["unmasked", "bad-utf8", "reserved-opcode", "long-ping"],
)
def test_bad_frames_fail_the_connection(
    backend: Backend, opcode: int, payload: bytes, mask: bool, code: int
) -> None:
    async def body() -> None:
        handed: list[Face] = []

        async def keep(ws: Face) -> None:
            handed.append(ws)
            await ws.wait_closed()

        async with backend.serve(keep) as port:
            raw = await backend.in_thread(lambda: RawClient(port))
            try:
                raw.send_frame(opcode, payload, mask=mask)
                assert await backend.in_thread(raw.read_close_code) == code
                # The server half-closes and waits for the client to close TCP.
                await backend.in_thread(raw.wait_eof)
                raw.close()
                await backend.until(lambda: handed)
                await handed[0].wait_closed()
            finally:
                raw.close()

    backend.run(body)
