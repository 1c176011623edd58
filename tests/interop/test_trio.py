"""tether.trio against real peers, as client and as server: websockets (trio and
asyncio), aiohttp and Node's ``ws``.

tether sends messages of every length encoding, text and binary, whole and
fragmented; the peer echoes them; tether pings, then closes with a code and a
reason that the peer must have seen.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest
import trio

import tether.trio
from tests.interop.trio_peers import LIBRARIES, TIMEOUT, Record, peer_client, peer_server
from tether.trio import Connection, ServerConnection

SIZES = [0, 1, 125, 126, 65535, 65536, 300_000]
TEXT = "tether: héllo wörld, 1 € = 😀"


def _payload(size: int, binary: bool) -> str | bytes:
    data = random.Random(size).randbytes(size)
    return data if binary else data.hex()[:size]


async def _exchange(ws: Connection) -> None:
    for size in SIZES:
        for binary in (False, True):
            message = _payload(size, binary)
            await ws.send(message)
            assert await ws.recv(timeout=TIMEOUT) == message, (size, binary)
    await ws.send(["héllo ", "", "wörld ", TEXT])
    assert await ws.recv(timeout=TIMEOUT) == f"héllo wörld {TEXT}"
    pieces = [b"\x00" * 10, b"", random.Random(0).randbytes(70_000), b"end"]
    await ws.send(pieces)
    assert await ws.recv(timeout=TIMEOUT) == b"".join(pieces)
    pong = await ws.ping(b"from tether")
    with trio.fail_after(TIMEOUT):
        assert await pong >= 0.0
    await ws.close(4000, "bye")
    # The peer's answer may repeat the code (most do) or say 1000 (aiohttp).
    assert ws.close_code in (4000, 1000)


def _run(test: Any) -> None:
    async def main() -> None:
        with trio.fail_after(TIMEOUT * 3):
            await test()

    trio.run(main)


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_tether_trio_client(library: str, compression: bool) -> None:
    async def test() -> None:
        record = Record()
        async with peer_server(library, compression, record) as uri:
            ws = await tether.trio.connect(
                uri, compression="deflate" if compression else None, max_size=None
            )
            extensions = ws.response_headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) is compression
            await _exchange(ws)
            await record.wait()
            assert record.code == 4000
            assert record.reason in ("bye", None)

    _run(test)


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_tether_trio_server(library: str, compression: bool) -> None:
    async def test() -> None:
        record = Record()
        done = trio.Event()
        failures: list[BaseException] = []

        async def handler(ws: ServerConnection) -> None:
            try:
                await _exchange(ws)
            except BaseException as exc:
                failures.append(exc)
                raise
            finally:
                done.set()

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                functools.partial(
                    tether.trio.serve,
                    handler,
                    0,
                    host="127.0.0.1",
                    compression="deflate" if compression else None,
                    max_size=None,
                )
            )
            async with server:
                uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
                async with peer_client(library, uri, compression, record):
                    await done.wait()
                    assert not failures, failures
                    await record.wait()
        assert record.code == 4000
        assert record.reason in ("bye", None)

    _run(test)
