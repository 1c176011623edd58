"""Flow control of the asyncio connection, both ways and for both roles.

Sending: ``send()`` waits while the transport's write buffer is over
``write_limit``. Receiving: once ``max_queue`` messages wait to be read, the
connection stops reading from the socket, and the kernel's buffers then push
back on the peer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tether.asyncio.connection import Connection
from tether.protocol.connection import State
from tether.protocol.events import Message, Pong

from .conftest import ServerFactory
from .flow import CHUNK, MAX_MESSAGES, blocks, numbered, send_until_blocked
from .pairs import Pair, Side, open_pair, open_raw_pair, until

MAX_READ = 256 * 1024
"""The most either event loop reads from a socket at once."""


async def test_send_waits_while_the_peer_does_not_read(stalled: Pair) -> None:
    ours, theirs = stalled.ours, stalled.theirs
    count, sending = await send_until_blocked(ours)
    assert ours.transport is not None
    buffered = ours.transport.get_write_buffer_size()
    # Bounded by the limit plus the one message written before send() waited,
    # not by the number of messages sent.
    assert buffered <= ours.write_limit + CHUNK + 16
    # It stays blocked, and the buffer does not grow, while nobody reads.
    assert await blocks(sending)
    assert ours.transport.get_write_buffer_size() <= buffered
    for index in range(count):
        assert await theirs.recv() == numbered(index)
    await sending
    assert ours.state is State.OPEN


BIG = 256 * 1024
"""A message the engine hands over as two chunks, header and payload: one ``writelines``."""


async def test_send_of_big_messages_waits_while_the_peer_does_not_read(stalled: Pair) -> None:
    # The transport's writelines must pause the protocol as write does: on
    # CPython 3.12.0-3.12.8 and 3.13.0-3.13.1 it did not (CPython gh-127655),
    # and send() never waited. Bounded: 32 of them are 8 MiB.
    ours, theirs = stalled.ours, stalled.theirs
    for count in range(1, 33):
        sending = asyncio.create_task(ours.send(numbered(count, BIG)))
        if await blocks(sending):
            break
    else:
        raise AssertionError(f"{count} sends of {BIG} bytes never waited")
    assert ours.transport is not None
    assert ours.transport.get_write_buffer_size() <= ours.write_limit + BIG + 16
    for index in range(1, count + 1):
        assert await theirs.recv() == numbered(index, BIG)
    await sending


async def test_fragmented_send_waits_between_fragments(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_pair(
        start_server,
        side,
        both={"compression": None},
        ours={"write_limit": 16 * 1024},
        theirs={"max_queue": 1, "max_size": None},
    ) as pair:
        await check_fragmented_send_waits(pair.ours, pair.theirs)


async def check_fragmented_send_waits(ours: Connection, theirs: Connection) -> None:
    # Pieces of a message in progress do not count toward max_queue: one
    # whole message waiting makes the peer stop reading.
    await ours.send("plug")
    await until(lambda: not theirs.transport.is_reading())  # type: ignore[union-attr]
    produced = 0

    def fragments() -> Iterator[bytes]:
        nonlocal produced
        for index in range(MAX_MESSAGES):
            produced += 1
            yield numbered(index)

    sending = asyncio.create_task(ours.send(fragments()))
    assert await blocks(sending)
    # The iterable is not consumed ahead of what the network takes.
    assert produced < MAX_MESSAGES
    assert ours.transport is not None
    assert ours.transport.get_write_buffer_size() <= ours.write_limit + CHUNK + 16
    assert await theirs.recv() == "plug"
    received = bytearray()
    async for piece in theirs.recv_streaming():
        assert isinstance(piece, bytes)
        received += piece
    # Pieces follow the bytes as they arrive, not the frames: compare the whole.
    assert received == b"".join(numbered(index) for index in range(MAX_MESSAGES))
    await sending


@pytest.mark.parametrize("max_queue", [1, 3])
async def test_reading_pauses_at_max_queue_and_resumes(
    start_server: ServerFactory, side: Side, max_queue: int
) -> None:
    async with open_pair(start_server, side, ours={"max_queue": max_queue}) as pair:
        ours, theirs = pair.ours, pair.theirs
        assert ours.transport is not None
        assert ours.transport.is_reading()
        sent = [str(index) for index in range(20)]
        for message in sent[:max_queue]:
            await theirs.send(message)
        await until(lambda: len(ours._messages) == max_queue)
        assert not ours.transport.is_reading()
        # More messages stay in the socket, not in the queue.
        for message in sent[max_queue:]:
            await theirs.send(message)
        await theirs.ping()
        assert len(ours._messages) == max_queue
        assert not ours.transport.is_reading()
        # Reading one makes room for one: reading resumes.
        assert await ours.recv() == "0"
        assert ours.transport.is_reading()
        assert [await ours.recv() for _ in sent[1:]] == sent[1:]
        await until(ours.transport.is_reading)


async def test_recv_streaming_resumes_reading(start_server: ServerFactory, side: Side) -> None:
    async with open_pair(start_server, side, ours={"max_queue": 1}) as pair:
        ours, theirs = pair.ours, pair.theirs
        assert ours.transport is not None
        await theirs.send(["a", "b"])
        await theirs.send("c")
        await until(lambda: not ours.transport.is_reading())  # type: ignore[union-attr]
        assert [piece async for piece in ours.recv_streaming()] == ["a", "b", ""]
        assert await ours.recv() == "c"
        await until(ours.transport.is_reading)


async def test_flood_to_a_handler_that_never_reads(start_server: ServerFactory) -> None:
    max_queue = 4
    async with open_pair(
        start_server, "client", both={"compression": None}, theirs={"max_queue": max_queue}
    ) as pair:
        client, server_side = pair.client, pair.server_side
        count, sending = await send_until_blocked(client)
        assert count > max_queue
        waiting = len(server_side._messages)
        # At most max_queue, plus what one read from the socket held.
        assert max_queue <= waiting <= max_queue + MAX_READ // CHUNK + 1
        assert server_side.transport is not None
        assert not server_side.transport.is_reading()
        for index in range(count):
            assert await server_side.recv() == numbered(index)
        await sending


async def test_pings_are_answered_while_the_send_buffer_is_full(
    start_server: ServerFactory, side: Side
) -> None:
    async with open_raw_pair(start_server, side, compression=None, write_limit=16 * 1024) as (
        ours,
        peer,
    ):
        # The peer reads nothing while ours fills the send buffer.
        count, sending = await send_until_blocked(ours)
        assert ours.transport is not None
        assert ours._writing_paused
        peer.engine.send_ping(b"still there?")
        await peer.flush()
        # The pong is written behind the data that fills the buffer, not held back.
        for index in range(count):
            event = await peer.next_event()
            assert event == Message(numbered(index))
        assert await peer.next_event() == Pong(b"still there?")
        await sending
