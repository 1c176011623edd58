"""How connections end, on every API: codes, reasons, handlers, servers going away."""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.backends import TIMEOUT, Backend, Face, Side, echo_until_closed, sided
from tests.behaviour.raw import ECHO_IN_KERNEL, ECHO_IN_SERVER, close_then_pong
from tether.exceptions import ConnectionClosedError, ConnectionClosedOK
from tether.protocol.close import Close
from tether.protocol.connection import State
from tether.protocol.events import CloseReceived


def test_close_code_and_reason_reach_both_sides(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            assert (ours.close_code, ours.close_reason) == (None, None)
            assert (theirs.close_code, theirs.close_reason) == (None, None)
            await ours.close(4321, "see you")
            await theirs.wait_closed()
            assert (theirs.close_code, theirs.close_reason) == (4321, "see you")
            # The peer echoed the close whole, so our own reason comes back.
            assert (ours.close_code, ours.close_reason) == (4321, "see you")
            assert ours.state is State.CLOSED
            assert theirs.state is State.CLOSED
            with pytest.raises(ConnectionClosedError) as raised:
                await theirs.recv()
            assert raised.value.rcvd == Close(4321, "see you")
            # Closing again does nothing.
            await ours.close()
            assert ours.close_code == 4321

    backend.run(body)


def test_close_twice_and_from_both_sides(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await ours.close()
            await ours.close(1011)
            await theirs.close()
            assert ours.close_code == 1000
            assert theirs.close_code == 1000

    backend.run(body)


def test_close_from_both_sides_at_once(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            await backend.together(lambda: ours.close(4001), lambda: theirs.close(4002))
            codes = (ours.close_code, theirs.close_code)
            if backend.api == "sync" and codes != (4002, 4001):
                # Two threads: one may read the other's close before it sends
                # its own, and then both ends keep the first closer's code.
                assert codes in ((4001, 4001), (4002, 4002))
            else:
                # Both close frames crossed: each end got the other's code.
                assert codes == (4002, 4001)

    backend.run(body)


def test_wait_closed(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            waited: list[State] = []

            async def wait() -> None:
                await ours.wait_closed()
                waited.append(ours.state)

            async def close() -> None:
                await backend.sleep(0.01)
                assert not waited
                await theirs.close()

            await backend.together(wait, close)
            assert waited == [State.CLOSED]
            await ours.wait_closed()  # Returns at once once closed.

    backend.run(body)


def test_context_manager_closes(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.pair() as ends:
            ours, theirs = sided(side, *ends)
            async with ours.closing() as ws:
                assert ws is ours
                await ws.send("inside")
            assert ours.state is State.CLOSED
            assert ours.close_code == 1000
            assert await theirs.recv() == "inside"

    backend.run(body)


def test_messages_sent_before_the_close_are_read_first(backend: Backend) -> None:
    async def body() -> None:
        async with backend.pair() as (client, server):
            for index in range(5):
                await client.send(f"m{index}")
            await client.close()
            assert await server.messages() == [f"m{index}" for index in range(5)]
            with pytest.raises(ConnectionClosedOK):
                await server.recv()

    backend.run(body)


def test_server_closing_closes_connections_with_1001(backend: Backend) -> None:
    async def echo(ws: Face) -> None:
        await ws.send(await ws.recv(timeout=None))
        await ws.wait_closed()

    async def body() -> None:
        async with backend.serve(echo) as port:
            uri = f"ws://127.0.0.1:{port}/"
            clients = [await backend.connect(uri) for _ in range(3)]
            for ws in clients:
                await ws.send("x")
                assert await ws.recv() == "x"
            server = backend.server
            assert len(server.connections) == 3
        for ws in clients:
            await ws.wait_closed()
            assert await ws.messages() == []
        assert [ws.close_code for ws in clients] == [1001, 1001, 1001]
        assert server.connections == set()
        # Nobody can connect any more. (trio's open_tcp_stream reports a refusal
        # of each address it tried as one OSError.)
        refusal = OSError if backend.api == "trio" else ConnectionRefusedError
        with pytest.raises(refusal):
            await backend.connect(uri)

    backend.run(body)


def test_close_timeout_drops_a_peer_that_never_answers(backend: Backend, side: Side) -> None:
    async def body() -> None:
        async with backend.raw_pair(side, close_timeout=0.05) as (ours, peer):
            # The peer reads the close frame and never answers it: close()
            # returns by itself after close_timeout.
            await backend.within(ours.close(), 2.0)
            assert ours.state is State.CLOSED
            assert ours.close_code == 1006
            assert await backend.in_thread(peer.next_event) == CloseReceived(Close(1000, ""))
            await backend.in_thread(peer.wait_eof)

    backend.run(body)


@pytest.mark.parametrize("raises", [False, True])
def test_context_manager_that_raises_closes_with_1011(backend: Backend, raises: bool) -> None:
    closed: list[tuple[int | None, str | None]] = []

    async def handler(ws: Face) -> None:
        await ws.wait_closed()
        closed.append((ws.close_code, ws.close_reason))

    async def body() -> None:
        async with backend.serve(handler) as port:
            ws = await backend.connect(f"ws://127.0.0.1:{port}/")
            with pytest.raises(RuntimeError) if raises else contextlib.nullcontext():
                async with ws.closing():
                    if raises:
                        raise RuntimeError("boom")
            await backend.until(lambda: closed)
            assert closed == [(1011, "") if raises else (1000, "")]

    backend.run(body)


@pytest.mark.parametrize("size", [ECHO_IN_KERNEL, ECHO_IN_SERVER])
def test_pong_after_the_clients_close_frame_does_not_reset_tcp(backend: Backend, size: int) -> None:
    handed: list[Face] = []

    async def echo(ws: Face) -> None:
        handed.append(ws)
        await echo_until_closed(ws)

    def close_taken() -> None:
        # Polled from the client's thread: the server's engine read the close frame.
        deadline = time.monotonic() + TIMEOUT
        while not handed or handed[0].native.protocol.close_rcvd is None:
            assert time.monotonic() < deadline, "the server never read the close frame"
            time.sleep(0.002)

    async def body() -> None:
        async with backend.serve(echo, compression=None) as port:
            await backend.in_thread(lambda: close_then_pong(port, "/", size, close_taken))
            (server_side,) = handed
            await backend.within(server_side.wait_closed())
            assert server_side.close_code == 1000

    backend.run(body)
