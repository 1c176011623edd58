"""The received-message queue shared by the asyncio and threading APIs."""

from __future__ import annotations

import sys

import pytest

from tether.messages import MessageQueue, convert
from tether.protocol.events import Fragment, Message, Ping, Pong


@pytest.mark.parametrize(
    ("data", "decode", "expected"),
    [
        ("café", None, "café"),
        (b"caf\xc3\xa9", None, b"caf\xc3\xa9"),
        ("café", True, "café"),
        (b"caf\xc3\xa9", True, "café"),
        ("café", False, b"caf\xc3\xa9"),
        (b"\xff", False, b"\xff"),
    ],
)
def test_convert(data: str | bytes, decode: bool | None, expected: str | bytes) -> None:
    result = convert(data, decode)
    assert (type(result), result) == (type(expected), expected)


def test_convert_invalid_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        convert(b"\xc3", True)


def test_empty_queue() -> None:
    queue = MessageQueue()
    assert queue.max_queue == 16
    assert len(queue) == 0
    assert not queue.full
    assert not queue.pending
    assert queue.get_fragment() is None


def test_whole_messages_in_order() -> None:
    queue = MessageQueue()
    queue.put(Message("text"))
    queue.put(Message(b"binary"))
    assert len(queue) == 2
    assert queue.pending
    assert queue.get() == "text"
    assert queue.get() == b"binary"
    assert len(queue) == 0
    assert not queue.pending


def test_get_decode() -> None:
    queue = MessageQueue()
    queue.put(Message(b"caf\xc3\xa9"))
    queue.put(Message("café"))
    assert queue.get(decode=True) == "café"
    assert queue.get(decode=False) == b"caf\xc3\xa9"


def test_fragments_count_once_the_message_ends() -> None:
    queue = MessageQueue()
    queue.put(Fragment("he", True, False))
    assert len(queue) == 0
    assert queue.pending
    queue.put(Fragment("ll", False, False))
    queue.put(Fragment("o", False, True))
    assert len(queue) == 1
    assert queue.get() == "hello"
    assert len(queue) == 0
    assert not queue.pending


def test_get_joins_binary_fragments_and_converts() -> None:
    queue = MessageQueue()
    queue.put(Fragment(b"caf", True, False))
    queue.put(Fragment(b"\xc3\xa9", False, True))
    queue.put(Fragment("tex", True, False))
    queue.put(Fragment("t", False, True))
    assert queue.get(decode=True) == "café"
    assert queue.get(decode=False) == b"text"


def test_get_leaves_the_next_message() -> None:
    queue = MessageQueue()
    queue.put(Fragment(b"a", True, False))
    queue.put(Fragment(b"b", False, True))
    queue.put(Fragment(b"c", True, False))
    assert len(queue) == 1
    assert queue.get() == b"ab"
    assert len(queue) == 0
    assert queue.pending
    assert queue.get_fragment() == (b"c", False)


def test_get_fragment() -> None:
    queue = MessageQueue()
    queue.put(Message("whole"))
    queue.put(Fragment(b"x", True, False))
    queue.put(Fragment(b"y", False, True))
    assert len(queue) == 2
    assert queue.get_fragment() == ("whole", True)
    assert len(queue) == 1
    assert queue.get_fragment() == (b"x", False)
    assert len(queue) == 1
    assert queue.get_fragment() == (b"y", True)
    assert len(queue) == 0
    assert queue.get_fragment() is None


@pytest.mark.parametrize("max_queue", [1, 3])
def test_full_at_max_queue(max_queue: int) -> None:
    queue = MessageQueue(max_queue)
    for _ in range(max_queue - 1):
        queue.put(Message("m"))
    # Pieces of a message in progress do not count.
    queue.put(Fragment("p", True, False))
    assert not queue.full
    queue.put(Fragment("q", False, True))
    assert queue.full
    queue.put(Message("over"))
    assert queue.full
    assert len(queue) == max_queue + 1
    queue.get()
    queue.get()
    assert not queue.full


def test_no_bound() -> None:
    queue = MessageQueue(None)
    for _ in range(1000):
        queue.put(Message(b""))
    assert len(queue) == 1000
    assert not queue.full


def test_low_is_half_of_max_queue_or_less() -> None:
    queue = MessageQueue(4)
    assert queue.low
    for data in ("a", "b", "c"):
        queue.put(Message(data))
    assert not queue.low
    queue.get()
    assert queue.low  # 2 of 4
    assert MessageQueue(None).low
    # The bounds the threading API's recv compares with, without a property.
    assert (queue.full_at, queue.low_at) == (4, 2)
    assert MessageQueue(5).low_at == 2


def test_extend_queues_messages_and_pieces_and_returns_the_rest() -> None:
    queue = MessageQueue()
    ping, pong = Ping(b"1"), Pong(b"2")
    others = queue.extend(
        [Message("a"), ping, Fragment(b"b", True, False), pong, Fragment(b"c", False, True)]
    )
    assert list(others) == [ping, pong]
    assert len(queue) == 2
    assert queue.get() == "a"
    assert queue.get() == b"bc"
    assert queue.extend([Message(b"d")]) == ()
    assert queue.get() == b"d"


def test_extend_whole_queues_whole_messages_in_order() -> None:
    queue = MessageQueue(max_queue=2)
    queue.extend_whole([Message("a"), Message(b"b")])
    assert len(queue) == 2
    assert queue.full
    queue.put(Message("c"))
    queue.extend_whole([Message(b"d")])
    assert [queue.get() for _ in range(4)] == ["a", b"b", "c", b"d"]
    assert len(queue) == 0
    assert not queue.pending


def test_extend_with_no_message_makes_no_deque() -> None:
    queue = MessageQueue()
    assert queue.extend([Ping(b"")]) == [Ping(b"")]
    assert queue._items is None


def test_high_and_low_marks_as_a_pair() -> None:
    queue = MessageQueue((8, 3))
    assert (queue.max_queue, queue.full_at, queue.low_at) == (8, 8, 3)
    assert MessageQueue((8, None)).low_at == 4
    unbounded = MessageQueue((None, None))
    assert unbounded.max_queue is None
    assert unbounded.full_at == unbounded.low_at == sys.maxsize
    assert MessageQueue((None, 5)).low_at == 5
    for bad in ((4, 5), (4, -1), (0, None), 0):
        with pytest.raises(ValueError, match="max_queue"):
            MessageQueue(bad)
