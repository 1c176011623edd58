"""A listener's compressed messages on the one-call path: the C ``deliver_messages`` and its twin.

With permessage-deflate, ``deliver_messages`` inflates each message compressed
in one frame and hands it to ``on_message`` in the same call, at most
``limit`` of them (what the engine's general path parses at a time), and a
compressed message it cannot deliver (corrupt data, text that is not UTF-8,
over ``max_size``) fails the connection there, as the engine would. The C
function and its Python twin must agree on any stream; the listener as a
whole is compared with ``recv()`` in ``test_listener_property``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tether._speedups as speedups
from tests.asyncio.test_listener_property import delivered
from tests.protocol.test_connection_core import _outcome, _sent
from tests.protocol.test_connection_core_deflate import _STEPS, _engine, _peer_stream
from tether.asyncio.listener import deliver_messages_python
from tether.exceptions import PayloadTooBig, ProtocolError
from tether.protocol.connection import Role

DELIVERS = [speedups.deliver_messages, deliver_messages_python]
IDS = ["c", "python"]


@settings(max_examples=200, deadline=None)
@given(
    steps=_STEPS,
    role=st.sampled_from([Role.SERVER, Role.CLIENT]),
    max_size=st.sampled_from([None, 100]),
    limit=st.sampled_from([None, 1, 3]),
    raise_at=st.one_of(st.none(), st.integers(0, 5)),
    no_context=st.booleans(),
)
def test_deliver_messages_twins_agree_on_compressed_messages(
    steps: list[tuple[str, Any]],
    role: Role,
    max_size: int | None,
    limit: int | None,
    raise_at: int | None,
    *,
    no_context: bool,
) -> None:
    data = _peer_stream(steps, role, no_context, 12)
    outcomes = []
    for deliver in DELIVERS:
        engine = _engine(role, max_size, no_context, 12)
        taken, raised, got = delivered(deliver, engine, data, raise_at, limit)
        if limit is not None:
            assert len(got) <= limit
        # The engine reads the rest, as the listener connection has it do.
        engine.receive_data(data[max(taken, 0) :])
        sent = _sent(engine, engine.data_to_send())
        outcomes.append((taken, raised, got, engine.events(), sent, _outcome(engine)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("deliver", DELIVERS, ids=IDS)
def test_deliver_messages_inflates_at_most_limit_messages(deliver: Any) -> None:
    texts = [f"{{'n': {n}}}" * 20 for n in range(5)]
    data = _peer_stream([("message", text) for text in texts], Role.SERVER, False, 12)
    engine = _engine(Role.SERVER, None, False, 12)
    got: list[str | bytes] = []
    taken = deliver(engine, data, lambda ws, message: got.append(message), None, 2)
    assert got == texts[:2]
    assert 0 < taken < len(data)
    rest = deliver(engine, data[taken:], lambda ws, message: got.append(message), None, None)
    assert got == texts
    assert taken + rest == len(data)
    assert engine.events() == []
    assert engine.data_to_send() == []


@pytest.mark.parametrize("deliver", DELIVERS, ids=IDS)
@pytest.mark.parametrize(
    ("step", "error", "code"),
    [
        (("corrupt", b"\xff\xff\xff"), ProtocolError, 1007),
        (("bad text", b"\xff\xfe"), ProtocolError, 1007),
        (("message", bytes(65536)), PayloadTooBig, 1009),
    ],
)
def test_deliver_messages_fails_the_connection_on_a_bad_compressed_message(
    deliver: Any, step: tuple[str, bytes], error: type[Exception], code: int
) -> None:
    data = _peer_stream([("message", "ok"), step, ("message", "never")], Role.CLIENT, True, 15)
    engine = _engine(Role.CLIENT, 1000, True, 15)
    got: list[str | bytes] = []
    taken = deliver(engine, data, lambda ws, message: got.append(message), None, None)
    assert got == ["ok"]
    assert 0 < taken < len(data)
    assert isinstance(engine.error, error)
    assert engine.close_sent is not None
    assert engine.close_sent.code == code
    # Nothing more is delivered.
    assert deliver(engine, data[taken:], lambda ws, message: got.append(message), None) == -1
    assert got == ["ok"]
