"""Received messages waiting to be read, shared by the asyncio and threading APIs.

The engine hands over whole messages as :class:`Message` events and pieces of
fragmented ones as :class:`Fragment` events. :class:`MessageQueue` keeps them
in order, tells when a whole message is ready, and counts whole messages so
that reading can pause while too many wait. It does no I/O and no locking;
each API wraps it in its own way of waiting.
"""

from __future__ import annotations

import codecs
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tether.protocol.connection import _OPEN, Connection
from tether.protocol.events import Event, Fragment, Message
from tether.protocol.speedups import speedups

__all__ = [
    "MessageQueue",
    "convert",
    "parse_budget",
    "piece_converter",
    "receive_messages",
    "receive_messages_python",
    "take_message",
    "take_message_python",
]


def convert(data: str | bytes, decode: bool | None) -> str | bytes:
    """Apply ``recv``'s ``decode`` argument: ``True`` gives ``str``, ``False`` gives ``bytes``.

    ``None`` keeps text as ``str`` and binary as ``bytes``. Decoding a binary
    message that is not UTF-8 raises :class:`UnicodeDecodeError`.
    """
    if decode is None:
        return data
    if decode:
        return data if isinstance(data, str) else data.decode()
    return data.encode() if isinstance(data, str) else data


def piece_converter(decode: bool | None) -> Callable[[str | bytes, bool], str | bytes]:
    """Apply ``recv_streaming``'s ``decode`` to each piece of one message, in order.

    With ``decode=True`` a binary message is decoded incrementally, so that
    a character split between two fragments is valid; the function takes
    each piece and whether it is the last.
    """
    decoder = codecs.getincrementaldecoder("utf-8")() if decode else None

    def convert_piece(data: str | bytes, last: bool) -> str | bytes:
        if decoder is not None and isinstance(data, bytes):
            return decoder.decode(data, final=last)
        return convert(data, decode)

    return convert_piece


class MessageQueue:
    """Messages received and not read yet, in arrival order.

    A whole message waits as its data alone (``str`` or ``bytes``), the
    pieces of a fragmented one as their :class:`Fragment` events: no event
    object is kept per message. ``max_queue`` is the number of whole
    messages that may wait before the reader should stop reading from the
    network; ``None`` means no bound.
    Reading resumes once at most half of them wait, or as many as the low
    mark of a ``(high, low)`` pair, websockets' spelling. Pieces of a
    message still arriving do not count: the engine bounds them by
    ``max_size``.
    """

    __slots__ = ("_items", "full_at", "low_at", "max_queue", "ready")

    def __init__(self, max_queue: int | tuple[int | None, int | None] | None = 16) -> None:
        low: int | None = None
        if isinstance(max_queue, tuple):
            max_queue, low = max_queue
        if max_queue is not None and max_queue < 1:
            raise ValueError("max_queue must be None or at least 1")
        if low is not None and (low < 0 or (max_queue is not None and low > max_queue)):
            raise ValueError("the low mark of max_queue must be between 0 and the high mark")
        self.max_queue = max_queue
        # The bounds of full and low as numbers: a thread's recv compares
        # ready with them on every message, and a property costs a call.
        self.full_at = sys.maxsize if max_queue is None else max_queue
        """The queue is full from this many whole messages on."""
        if low is None:
            low = sys.maxsize if max_queue is None else max_queue // 2
        self.low_at = low
        """The queue is low up to this many whole messages."""
        # Made on the first message: an empty deque takes 600 bytes, which
        # thousands of idle connections would hold for nothing.
        self._items: deque[str | bytes | Fragment] | None = None
        self.ready = 0
        """The number of whole messages ready to be read (also ``len(queue)``)."""

    def __len__(self) -> int:
        """The number of whole messages ready to be read."""
        return self.ready

    def put(self, event: Message | Fragment) -> None:
        """Add a message or a piece of one."""
        items = self._items
        if items is None:
            items = self._items = deque()
        if isinstance(event, Message):
            items.append(event.data)
            self.ready += 1
        else:
            items.append(event)
            if event.last:
                self.ready += 1

    def extend(self, events: list[Event]) -> Sequence[Event]:
        """Add the messages and pieces among ``events``, in order; return the other events.

        The engine's events come in batches, mostly of messages alone: one
        call per batch rather than one per message.
        """
        items = self._items
        others: list[Event] | None = None
        ready = self.ready
        for event in events:
            kind = type(event)
            if kind is Message or kind is Fragment:
                if items is None:
                    # Made on the first message, as in put(): a batch of
                    # handshake events alone must not make one.
                    items = self._items = deque()
                if kind is Message:
                    items.append(event.data)  # type: ignore[union-attr]
                    ready += 1
                else:
                    items.append(event)  # type: ignore[arg-type]
                    if event.last:  # type: ignore[union-attr]
                        ready += 1
            elif others is None:
                others = [event]
            else:
                others.append(event)
        self.ready = ready
        return () if others is None else others

    def extend_whole(self, messages: Sequence[Event]) -> None:
        """Add ``messages``, which must all be :class:`Message` events: whole messages.

        :meth:`extend` without sorting anything out, for a read the engine
        said brought nothing but whole messages.
        """
        items = self._items
        if items is None:
            items = self._items = deque()
        items.extend([message.data for message in messages])  # type: ignore[union-attr]
        self.ready += len(messages)

    @property
    def full(self) -> bool:
        """Whether ``max_queue`` whole messages are waiting."""
        return self.ready >= self.full_at

    @property
    def low(self) -> bool:
        """Whether at most half of ``max_queue`` whole messages wait: time to take more."""
        return self.ready <= self.low_at

    @property
    def pending(self) -> bool:
        """Whether anything, whole or partial, is waiting."""
        return bool(self._items)

    def get(self, decode: bool | None = None) -> str | bytes:
        """Remove and return the first whole message; only call when ``len(self)`` is not 0."""
        items = self._items
        assert items is not None, "get() called with no message ready"
        first = items.popleft()
        self.ready -= 1
        if type(first) is not Fragment:
            # A whole message: its data.
            if decode is None:
                return first  # type: ignore[return-value]
            return convert(first, decode)  # type: ignore[arg-type]
        parts = [first.data]
        while not first.last:
            first = items.popleft()
            # A message arrives whole before the next one starts.
            assert isinstance(first, Fragment)
            parts.append(first.data)
        if isinstance(parts[0], str):
            data: str | bytes = "".join(parts)  # type: ignore[arg-type]
        else:
            data = b"".join(parts)  # type: ignore[arg-type]
        return convert(data, decode)

    def get_fragment(self) -> tuple[str | bytes, bool] | None:
        """Remove and return the next piece and whether it ends its message, if one is here.

        A whole message comes as a single piece that ends it.
        """
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if type(item) is not Fragment:
            self.ready -= 1
            return item, True  # type: ignore[return-value]
        if item.last:
            self.ready -= 1
        return item.data, item.last


def parse_budget(messages: MessageQueue, protocol: Connection) -> int | None:
    """How many more messages the engine may parse: the queue's free room while open.

    Once closing, everything is parsed, so that the peer's close frame is
    not stuck behind messages nobody reads. Without an extension, a read
    holds no more payload than its own size: only inflating extensions need
    the budget, and it has a cost, so ``None`` (no bound) is the answer then.
    """
    max_queue = messages.max_queue
    if max_queue is None or not protocol.extensions or protocol.state is not _OPEN:
        return None
    return max(0, max_queue - messages.ready)


def receive_messages_python(
    engine: Connection,
    data: bytes | bytearray | memoryview,
    queue: MessageQueue,
    waiter: Any,
) -> int:
    """Take a read's whole messages straight into ``queue``, when the engine is free to.

    The common case of a read, in one call: the messages at the start of
    ``data`` that each came whole in one frame (plain, or compressed by the
    connection's permessage-deflate, as many as the queue has room for:
    :func:`parse_budget`) go to ``queue``, as
    :meth:`MessageQueue.extend_whole` adds them, without passing through
    the engine's events, and ``waiter``, a future or ``None``, is woken if
    there were any (unless it is done). Return how many bytes they took; the
    caller feeds the rest to ``engine.receive_data`` and sends what the
    engine has to send (a compressed message may fail the connection). Return -1, with
    nothing done, when the engine is not free to
    (:meth:`~tether.protocol.connection.Connection.take_messages`): the
    caller feeds the whole read then. The queue's bound is the caller's to
    check. The C accelerator's ``receive_messages`` does the same.
    """
    messages: list[Event] = []
    try:
        taken = engine.take_messages(data, messages, parse_budget(queue, engine))
    finally:
        # The messages read before an extension raised count too, as in C.
        if messages:
            queue.extend_whole(messages)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
    return taken


receive_messages: Callable[[Connection, bytes | bytearray | memoryview, MessageQueue, Any], int] = (
    receive_messages_python if speedups is None else speedups.receive_messages
)
""":func:`receive_messages_python`, in C when the accelerator is built."""


def take_message_python(queue: MessageQueue) -> str | bytes | None:
    """Remove and return the first message of ``queue`` when it came whole, as ``get()`` does.

    The common case of :meth:`MessageQueue.get` with no ``decode``, for a
    reader that takes many: the first item is a whole message.
    Return ``None``, with nothing done, otherwise (nothing waits, or the
    first message came in pieces): the caller uses ``get()`` then. The C
    accelerator's ``take_message`` does the same.
    """
    items = queue._items
    if not items:
        return None
    kind = type(items[0])
    if kind is not bytes and kind is not str:
        return None
    queue.ready -= 1
    return items.popleft()  # type: ignore[return-value]


take_message: Callable[[MessageQueue], str | bytes | None] = (
    take_message_python if speedups is None else speedups.take_message
)
""":func:`take_message_python`, in C when the accelerator is built."""
