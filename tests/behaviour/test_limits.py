"""max_size, max_queue and write_limit, on every API."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest

from tests.backends import Backend, Side, sided, sided_options
from tether.exceptions import ConnectionClosedError
from tether.protocol.events import CloseReceived

NO_COMPRESSION = {"compression": None}


@pytest.mark.parametrize("compression", ["deflate", None])
def test_message_over_max_size_fails_with_1009(
    backend: Backend, side: Side, compression: str | None
) -> None:
    async def body() -> None:
        options = sided_options(side, ours={"max_size": 1000}, both={"compression": compression})
        async with backend.pair(*options) as ends:
            ours, theirs = sided(side, *ends)
            await theirs.send("x" * 1000)
            await theirs.send(b"x" * 1000)
            # The threading API's send also writes what its reader thread
            # queued meanwhile, such as the echo of the 1009 close, and
            # reports that write failing: the message itself went out.
            with contextlib.suppress(ConnectionClosedError):
                await theirs.send("x" * 1001)
            assert await ours.recv() == "x" * 1000
            assert await ours.recv() == b"x" * 1000
            with pytest.raises(ConnectionClosedError) as raised:
                await ours.recv()
            assert raised.value.sent is not None
            assert raised.value.sent.code == 1009
            await theirs.wait_closed()
            assert theirs.close_code == 1009
            with pytest.raises(ConnectionClosedError):
                await theirs.recv()

    backend.run(body)


def test_max_size_none_means_no_limit(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair(*sided_options(side, ours={"max_size": None})) as ends:
            ours, theirs = sided(side, *ends)
            # One byte over the default max_size, 1 MiB.
            big = os.urandom(2**20 + 1)
            await theirs.send(big)
            assert await ours.recv() == big

    backend.run(body)


def test_max_queue_pauses_reading_without_losing_messages(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair(server={"max_queue": 1}) as (client, server):
            big = b"q" * 10_000
            for _ in range(50):
                await client.send(big)
            # Nothing read yet: the server stopped reading after one message,
            # yet every message comes, in order, once read.
            await backend.sleep(0.05)
            for _ in range(50):
                assert await server.recv() == big
            assert await client.ping() >= 0.0

    backend.run(body)


def test_send_to_a_peer_that_does_not_read_waits_then_goes_on(backend: Backend) -> None:
    # The threading API has no write buffer of its own: sendall waits.
    limit = {} if backend.kind == "threads" else {"write_limit": 1024}

    async def body() -> None:
        async with backend.pair(client={"max_queue": 1}, server=limit) as (client, server):
            chunk = bytes(256 * 1024)
            count = 40  # 10 MiB: more than the socket buffers hold

            async def sender() -> None:
                for _ in range(count):
                    await server.send(chunk)

            async def reader() -> None:
                for _ in range(count):
                    assert await client.recv() == chunk

            # The sender blocks until the client reads: run both at once.
            await backend.within(backend.together(sender, reader))

    backend.run(body)


def test_max_queue_keeps_every_message_until_the_close(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair(*sided_options(side, ours={"max_queue": 1})) as ends:
            ours, theirs = sided(side, *ends)
            sent = [f"message {index}" for index in range(100)]

            async def flood() -> None:
                for message in sent:
                    await theirs.send(message)
                await theirs.close()

            received: list[Any] = []

            async def read() -> None:
                await ours.messages(received)

            await backend.together(flood, read)
            assert received == sent

    backend.run(body)


def test_close_while_reading_is_paused(backend: Backend, side: Side) -> None:
    # With reading paused, the peer's answer to our close frame would sit
    # unread in the socket until close_timeout dropped the connection.
    async def body() -> None:
        options = sided_options(side, ours={"max_queue": 1, "close_timeout": 2})
        async with backend.pair(*options) as ends:
            ours, theirs = sided(side, *ends)
            for index in range(50):
                await theirs.send(f"message {index}")
            assert await ours.recv() == "message 0"
            await backend.sleep(0.05)  # Reading pauses again on a full queue.
            await ours.close()
            assert ours.close_code == 1000
            await theirs.wait_closed()
            assert theirs.close_code == 1000
            # Messages received before the close are still there to read.
            assert await ours.recv() == "message 1"

    backend.run(body)


def test_waiting_send_fails_when_the_connection_drops(backend: Backend, side: Side) -> None:
    async def body() -> None:
        limit = {} if backend.api == "sync" else {"write_limit": 16 * 1024}
        options = sided_options(side, ours=limit, theirs={"max_queue": 1}, both=NO_COMPRESSION)
        async with backend.pair(*options) as ends:
            ours, theirs = sided(side, *ends)
            chunk = bytes(32 * 1024)

            async def send() -> None:
                # 64 MiB: more than the socket buffers hold while nobody reads.
                async def flood() -> None:
                    for _ in range(2000):
                        await ours.send(chunk)

                with pytest.raises(ConnectionClosedError):
                    await flood()

            async def drop() -> None:
                await backend.sleep(0.05)
                theirs.abort()

            await backend.together(send, drop)
            await ours.wait_closed()

    backend.run(body)


def test_peer_sending_too_much_reads_the_1009_close_frame(backend: Backend, side: Side) -> None:
    # Found with websocket-client: after a message over max_size, it got
    # ECONNRESET instead of the 1009 close frame, because the server closed
    # its socket with the rest of the message unread and the kernel answered
    # with a RST.
    async def body() -> None:
        options = {"max_size": 1024, "compression": None}
        async with backend.raw_pair(side, **options) as (ours, peer):
            peer.engine.send_binary(b"\x00" * (4 * 1024 * 1024))
            events: list[Any] = []

            async def write() -> None:
                # Ours fails on the frame header, long before the payload is
                # all there, and must keep reading (and dropping) the rest.
                await backend.in_thread(peer.flush)

            async def read() -> None:
                events.append(await backend.in_thread(peer.next_event))

            await backend.together(write, read)
            assert isinstance(events[0], CloseReceived)
            assert events[0].close.code == 1009
            # Ours half-closed and dropped what kept coming; it ends when the peer closes.
            await backend.in_thread(peer.wait_eof)
            peer.close()
            await ours.wait_closed()
            sent = ours.native.protocol.close_sent
            assert sent is not None
            assert sent.code == 1009

    backend.run(body)
