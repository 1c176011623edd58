"""tether against real peers, in both directions, on both event loops.

Each case connects tether to one library (websockets, its threading API,
aiohttp, websocket-client, Node's ws), with tether as the client and as the
server, and checks what crosses the wire from both ends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable

import pytest

from tether.exceptions import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK

from .peers import PAIRS, TIMEOUT, blob, deflate_negotiated, open_pair, payload

SIZES = [0, 1, 125, 126, 65535, 65536, 4 * 1024 * 1024]
"""Around each length encoding of RFC 6455 5.2, and a message of several MiB."""

PAIR_IDS = [f"{library}-{role}" for library, role in PAIRS]

TEXT = "tether: héllo wörld, 1 € = 😀"


def _split(data: bytes, *cuts: int) -> list[bytes]:
    """Cut ``data`` at the given offsets."""
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


def _wire_length(message: str | bytes) -> int:
    return len(message) if isinstance(message, bytes) else len(message.encode())


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize(("library", "role"), PAIRS, ids=PAIR_IDS)
async def test_exchange(library: str, role: str, compression: bool) -> None:
    async with open_pair(library, role, compression) as (ws, peer):
        assert deflate_negotiated(ws) is (compression and peer.supports_deflate)
        assert ws.subprotocol == "chat.v2"
        assert peer.subprotocol == "chat.v2"

        expected: list[tuple[bool, int]] = []
        for size in SIZES:
            for binary in (False, True):
                message = payload(size, binary)
                await ws.send(message)
                assert await ws.recv(timeout=TIMEOUT) == message, (size, binary)
                expected.append((binary, size))

        # Fragmented by tether: str pieces; UTF-8 cut inside characters; bytes.
        emoji = "😀" * 1000
        await ws.send(["héllo ", "", "wörld ", emoji])
        assert await ws.recv(timeout=TIMEOUT) == f"héllo wörld {emoji}"
        await ws.send(_split(TEXT.encode(), 16, 17, 29, 31), text=True)
        assert await ws.recv(timeout=TIMEOUT) == TEXT
        pieces = [b"\x00" * 10, b"", blob(70_000), b"end"]
        await ws.send(pieces)
        assert await ws.recv(timeout=TIMEOUT) == b"".join(pieces)
        expected += [
            (False, len(f"héllo wörld {emoji}".encode())),
            (False, len(TEXT.encode())),
            (True, 70_013),
        ]
        # The peer got each message whole, in order, with the right type and length.
        assert await peer.received(len(expected)) == expected

        if peer.can_fragment:
            await peer.send_fragments(_split(TEXT.encode(), 1, 16, 17, 30), binary=False)
            assert await ws.recv(timeout=TIMEOUT) == TEXT
            pieces = [b"", blob(200_000), b"\xff" * 3]
            await peer.send_fragments(pieces, binary=True)
            assert await ws.recv(timeout=TIMEOUT) == b"".join(pieces)

        pong = await ws.ping(b"from tether")
        assert await _within(pong) >= 0.0
        await peer.ping(b"from the peer")

        await ws.close()
        assert ws.close_code == 1000
        assert await peer.seen_close() == (1000, "")
        assert peer.errors == []


async def _within(waiter: Awaitable[float]) -> float:
    async with asyncio.timeout(TIMEOUT):
        return await waiter


@pytest.mark.parametrize(
    ("closer", "code", "reason"),
    [("tether", 4000, "bye"), ("peer", 1001, "going away"), ("peer", 4001, "später")],
    ids=["tether-4000", "peer-1001", "peer-4001"],
)
@pytest.mark.parametrize(("library", "role"), PAIRS, ids=PAIR_IDS)
async def test_close(library: str, role: str, closer: str, code: int, reason: str) -> None:
    async with open_pair(library, role, compression=False) as (ws, peer):
        await ws.send("before closing")
        assert await ws.recv(timeout=TIMEOUT) == "before closing"
        if closer == "tether":
            await ws.close(code, reason)
            assert await peer.seen_close() == (code, reason)
            # Some peers answer with their own 1000 rather than repeat the code.
            replied = (code, reason) if peer.echoes_close_code else (1000, "")
            assert (ws.close_code, ws.close_reason) == replied
            with pytest.raises(ConnectionClosed):
                await ws.send("after closing")
            return

        await peer.close(code, reason)
        closed = ConnectionClosedOK if code == 1001 else ConnectionClosedError
        with pytest.raises(closed) as raised:
            await ws.recv(timeout=TIMEOUT)
        assert (raised.value.code, raised.value.reason) == (code, reason)
        await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (code, reason)
        # tether answers with the same code; the peer reads the reply as sent.
        sent = ws.protocol.close_sent
        assert sent is not None
        assert sent.code == code
        if peer.reads_close_reply:
            seen_code, seen_reason = await peer.seen_close()
            assert seen_code == sent.code
            # None: the library does not show the reason of a reply to its own close.
            assert seen_reason in (None, sent.reason)


@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize(("library", "role"), PAIRS, ids=PAIR_IDS)
async def test_message_too_big(library: str, role: str, compression: bool) -> None:
    limit = 64 * 1024
    async with open_pair(library, role, compression, max_size=limit) as (ws, peer):
        # tether may send what it may not receive: the peer's echo is over the limit.
        await ws.send(blob(limit + 1))
        with pytest.raises(ConnectionClosedError) as raised:
            await ws.recv(timeout=TIMEOUT)
        assert raised.value.sent is not None
        assert raised.value.sent.code == 1009
        assert (await peer.seen_close())[0] == 1009
