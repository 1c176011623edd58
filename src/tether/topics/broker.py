"""Carrying published messages between processes: :class:`Broker`, :class:`MemoryBroker`.

A broker connects the :class:`~tether.Topics` of several processes. Each
process tells its broker which topics it has subscribers for
(:meth:`Broker.subscribe`, :meth:`Broker.unsubscribe`) and hands it what it
publishes (:meth:`Broker.publish`); the broker hands messages published
elsewhere to its receiver. The process that publishes delivers to its own
subscribers itself: a broker never echoes a message back to its origin.
Delivery is at most once: what a broker cannot carry is counted in
:attr:`~tether.topics.registry.TopicStats.undelivered` and lost.
"""

from __future__ import annotations

import abc
import asyncio
import os
import threading
from collections.abc import Callable

from tether.topics.fanout import Prepared
from tether.topics.registry import TopicStats, logger

__all__ = [
    "Broker",
    "MemoryBroker",
    "MemoryBus",
    "Receiver",
    "decode_envelope",
    "encode_envelope",
]

Receiver = Callable[[str, Prepared], None]
"""What a broker calls with each message published by another process."""

_TEXT = 1
_BINARY = 2
ORIGIN_SIZE = 8


def new_origin() -> bytes:
    """A random identifier of one publisher, so that it can skip its own messages."""
    return os.urandom(ORIGIN_SIZE)


def encode_envelope(origin: bytes, text: bool, payload: bytes) -> bytes:
    """The bytes a broker carries for one message: kind, origin, payload."""
    return b"".join((bytes((_TEXT if text else _BINARY,)), origin, payload))


def decode_envelope(data: bytes) -> tuple[bytes, Prepared]:
    """Read an envelope: return the origin and the message; raise :class:`ValueError` if bad.

    A text message must be valid UTF-8, as it goes to clients as a text frame.
    """
    if len(data) < 1 + ORIGIN_SIZE or data[0] not in (_TEXT, _BINARY):
        raise ValueError("not a message envelope of tether")
    origin = data[1 : 1 + ORIGIN_SIZE]
    payload = data[1 + ORIGIN_SIZE :]
    if data[0] == _TEXT:
        # Checked once here rather than by every client.
        message: str | bytes = payload.decode()
    else:
        message = payload
    return origin, Prepared(message)


class Broker(abc.ABC):
    """What carries messages between the :class:`~tether.Topics` of several processes.

    One broker serves one :class:`~tether.Topics`, which calls
    :meth:`attach` when it is made. :meth:`subscribe` and
    :meth:`unsubscribe` don't wait: the broker applies them in the
    background, and keeps them across reconnections.
    """

    def __init__(self) -> None:
        self.origin = new_origin()
        """This broker's identifier in the envelopes it sends."""
        self._receiver: Receiver | None = None
        self.stats = TopicStats()
        """The counters it updates: those of its topics once attached."""

    def attach(self, receiver: Receiver, stats: TopicStats) -> None:
        """Hand messages from other processes to ``receiver``; count in ``stats``."""
        if self._receiver is not None:
            raise RuntimeError("this broker already serves other topics")
        self._receiver = receiver
        self.stats = stats

    def _deliver(self, topic: str, data: bytes) -> None:
        """Hand an envelope received for ``topic`` to the receiver, unless it is ours or bad."""
        try:
            origin, prepared = decode_envelope(data)
        except ValueError as exc:
            self.stats.invalid += 1
            logger.warning("refused a message from the broker: %s", exc)
            return
        if origin == self.origin or self._receiver is None:
            return
        self._receiver(topic, prepared)

    @abc.abstractmethod
    def subscribe(self, topic: str) -> None:
        """Start receiving what other processes publish to ``topic``."""

    @abc.abstractmethod
    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""

    @abc.abstractmethod
    async def publish(self, topic: str, text: bool, payload: bytes) -> bool:
        """Send a message to the other processes; return whether the broker took it.

        Never raise for a broker that is unreachable: count the message in
        ``stats.undelivered``, log it, and return ``False``.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop: no more messages in or out."""


class MemoryBus:
    """Brokers in one process that see each other's messages: for tests and single-process use.

    Each :meth:`broker` serves one :class:`~tether.Topics`, typically on
    its own event loop; messages go to the loop of each receiving broker.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._brokers: list[MemoryBroker] = []

    def broker(self) -> MemoryBroker:
        """A new broker on this bus."""
        broker = MemoryBroker(self)
        with self._lock:
            self._brokers.append(broker)
        return broker

    def _publish(self, sender: MemoryBroker, topic: str, data: bytes) -> int:
        with self._lock:
            receivers = [b for b in self._brokers if b is not sender and topic in b._topics]
        for broker in receivers:
            broker._receive_soon(topic, data)
        return len(receivers)

    def _remove(self, broker: MemoryBroker) -> None:
        with self._lock:
            if broker in self._brokers:
                self._brokers.remove(broker)


class MemoryBroker(Broker):
    """A broker whose peers are the other brokers of its :class:`MemoryBus`, in this process."""

    def __init__(self, bus: MemoryBus | None = None) -> None:
        super().__init__()
        self.bus = MemoryBus() if bus is None else bus
        """The bus it is on."""
        self._topics: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def subscribe(self, topic: str) -> None:
        """Receive ``topic`` from the other brokers of the bus."""
        self._loop = asyncio.get_running_loop()
        self._topics.add(topic)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``."""
        self._topics.discard(topic)

    async def publish(self, topic: str, text: bool, payload: bytes) -> bool:
        """Send to the brokers of the bus subscribed to ``topic``."""
        if self._closed:
            self.stats.undelivered += 1
            return False
        self.bus._publish(self, topic, encode_envelope(self.origin, text, payload))
        return True

    def _receive_soon(self, topic: str, data: bytes) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._receive, topic, data)

    def _receive(self, topic: str, data: bytes) -> None:
        if topic in self._topics and not self._closed:
            self._deliver(topic, data)

    async def aclose(self) -> None:
        """Leave the bus."""
        self._closed = True
        self.bus._remove(self)
