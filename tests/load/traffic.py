"""The messages of the load tests, and the ledger that checks them on the server's side.

Every message is a pure function of its client's number and its sequence
number, so both ends can check it without keeping what was sent: the server's
handler compares each message it receives with the one expected next, and the
client compares each echo the same way. A message lost, repeated, reordered
or altered fails the comparison where it happens.

Sizes are mixed: empty messages, small ones, about 1 KiB, and now and then
about 64 KiB (across the 16-bit length field of the frame header). Half are
text, half binary; a few are sent fragmented. Text repeats words, and so
compresses; binary is random, and does not.
"""

from __future__ import annotations

import random
import weakref

from tether.asyncio.server import ServerConnection
from tether.sync.server import ServerConnection as SyncServerConnection

KIB = 1024

_POOL_SIZE = 96 * KIB

_WORDS = ["tether", "frame", "wébsocket", "Grüße", "日本語", "ping", "échos", "🙂", "close", "1001"]


def _pools() -> tuple[bytes, str]:
    rng = random.Random(6455)
    binary = rng.randbytes(_POOL_SIZE)
    words: list[str] = []
    length = 0
    while length < _POOL_SIZE:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return binary, " ".join(words)


BINARY_POOL, TEXT_POOL = _pools()


def message(client: int, seq: int) -> str | bytes:
    """The ``seq``-th message of ``client``; all but the empty ones are unique."""
    rng = random.Random(client << 32 | seq)
    roll = rng.random()
    text = rng.random() < 0.5
    if roll < 0.1:
        return "" if text else b""
    if roll < 0.6:
        size = rng.randint(1, 125)
    elif roll < 0.98:
        size = rng.randint(900, 1100)
    else:
        size = rng.randint(60 * KIB, 70 * KIB)
    # The numbers lead, so that a message from another client or from
    # elsewhere in the sequence never matches by chance.
    header = f"{client}:{seq}:"
    filler = max(0, size - len(header))
    start = rng.randrange(_POOL_SIZE - filler)
    if text:
        return header + TEXT_POOL[start : start + filler]
    return header.encode() + BINARY_POOL[start : start + filler]


def pieces(client: int, seq: int) -> str | bytes | list[str | bytes]:
    """What the client passes to ``send`` for this message: whole, or one time in 20 in frames."""
    data = message(client, seq)
    if len(data) < 3 or (client * 31 + seq) % 20:
        return data
    third = len(data) // 3
    return [data[:third], data[third : 2 * third], data[2 * third :]]


def describe(data: str | bytes) -> str:
    """A short description of a message for an assertion's text."""
    kind = "text" if isinstance(data, str) else "binary"
    return f"{kind} of {len(data)} {'characters' if kind == 'text' else 'bytes'}: {data[:24]!r}"


def client_of(path: str) -> int:
    """The client number in a request path ``/<number>``."""
    return int(path.rsplit("/", 1)[1])


class Ledger:
    """What the server's handlers received, checked message by message.

    ``delivered[client]`` counts the messages of that client that reached the
    handler, each equal to the one expected at its place; the first one that
    is not ends the count and is described in ``errors``. ``connections``
    holds every connection that reached a handler, weakly: once the
    connections are closed and collected it must be empty. :meth:`echo` and
    :meth:`sync_echo` are the handlers, of the asyncio and threading servers.
    """

    def __init__(self) -> None:
        self.delivered: dict[int, int] = {}
        self.errors: list[str] = []
        self.connections: weakref.WeakSet[object] = weakref.WeakSet()

    def check(self, client: int, data: str | bytes) -> bool:
        """Record one message the handler received; tell whether it was the one expected."""
        seq = self.delivered.get(client, 0)
        expected = message(client, seq)
        if data != expected:
            self.errors.append(
                f"client {client}, message {seq}: the handler received {describe(data)}, "
                f"expected {describe(expected)}"
            )
            return False
        self.delivered[client] = seq + 1
        return True

    async def echo(self, ws: ServerConnection) -> None:
        """Check each message of the connection's client and send it back; stop at a wrong one."""
        self.connections.add(ws)
        assert ws.request is not None
        client = client_of(ws.request.path)
        async for data in ws:
            if not self.check(client, data):
                return
            await ws.send(data)

    def sync_echo(self, ws: SyncServerConnection) -> None:
        """The threading twin of :meth:`echo`."""
        self.connections.add(ws)
        assert ws.request is not None
        client = client_of(ws.request.path)
        for data in ws:
            if not self.check(client, data):
                return
            ws.send(data)
