"""The asyncio connection with permessage-deflate: the same with the one-call paths and without.

``receive_messages`` and ``message_frame`` (and ``write_message``, which
sends the frame it makes) inflate and deflate whole messages in the same
call on a compressed connection; ``receive_messages`` takes no
more of a read than the queue has room for, and the connection drops the
engine's message budget once nothing waits behind it, so that the next read
takes the one-call path again. The scenario of ``test_core_paths`` (reads of
a stream cut anywhere, sends, reads from the queue) runs here on a compressed
connection, over a compressing peer's frames: with the C functions, their
Python twins and the paths declining, every transport call, message read and
outcome must be the same.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.asyncio.test_core_paths import (
    _ACTIONS,
    RecordingTransport,
    _scenario,
    assert_every_path_alike,
)
from tests.protocol.test_connection_core_deflate import _STEPS, _deflate, _peer_stream
from tether.asyncio import connection as connection_module
from tether.asyncio.connection import Connection, data_received_python
from tether.protocol.connection import Connection as Engine
from tether.protocol.connection import Role, State
from tether.protocol.server import ServerProtocol


@given(
    server=st.booleans(),
    steps=_STEPS,
    actions=_ACTIONS,
    max_queue=st.sampled_from([None, 1, 2, 16]),
    max_size=st.sampled_from([1 << 20, 100]),
    no_context=st.booleans(),
)
@settings(max_examples=150, deadline=None)
# Three messages in one read, a queue of one: one is taken, two are held
# back, compressed, and parsed once the reader takes the first.
@example(
    server=True,
    steps=[("message", "a"), ("message", "b"), ("message", "c")],
    actions=[("read", 1 << 20), ("recv",), ("recv",), ("read", 1)],
    max_queue=1,
    max_size=1 << 20,
    no_context=False,
)
def test_compressed_connections_change_nothing_but_the_cost(
    server: bool,
    steps: list[tuple[str, Any]],
    actions: list[tuple[Any, ...]],
    max_queue: int | None,
    max_size: int,
    *,
    no_context: bool,
) -> None:
    stream = _peer_stream(steps, Role.SERVER if server else Role.CLIENT, no_context, 12)
    extension = functools.partial(_deflate, no_context, 12)
    assert_every_path_alike(
        lambda: _scenario(server, stream, actions, max_queue, max_size, extension=extension)
    )


def test_a_read_after_the_general_path_takes_the_one_call_path_again() -> None:
    # A ping goes to the engine's general path, under a message budget; once
    # nothing is held back, the budget is dropped, and the next reads of
    # compressed messages are taken whole by receive_messages.
    peer = Engine(Role.CLIENT, extensions=[_deflate(False, 12)])
    reads = []
    peer.send_ping(b"p")
    reads.append(b"".join(peer.data_to_send()))
    for text in ("one", "two"):
        peer.send_message(text)
        reads.append(b"".join(peer.data_to_send()))
    taken: list[int] = []

    def receive(*args: Any) -> int:
        result = speedups.receive_messages(*args)
        taken.append(result)
        return result

    async def run() -> list[str | bytes]:
        engine = ServerProtocol()
        engine.state = State.OPEN
        engine._set_extensions([_deflate(False, 12)])
        ws = Connection(engine, ping_interval=None, max_queue=4)
        ws.connection_made(RecordingTransport(masks=False))  # type: ignore[arg-type]
        for read in reads:
            ws.get_buffer(-1)[: len(read)] = read
            ws.buffer_updated(len(read))
        assert engine.message_budget is None
        return [await ws.recv(), await ws.recv()]

    with (
        mock.patch.object(connection_module, "receive_messages", receive),
        # The Python method, which calls receive_messages through the module
        # (the accelerator's calls the C function itself).
        mock.patch.object(Connection, "data_received", data_received_python),
    ):
        assert asyncio.run(run()) == ["one", "two"]
    assert taken == [0, len(reads[1]), len(reads[2])]
