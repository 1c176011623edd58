"""A broker for threading code: :class:`BrokerThread` runs it on an event loop of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from tether.topics.broker import Broker, Receiver
from tether.topics.registry import TopicStats, logger

__all__ = ["BrokerThread"]


class BrokerThread:
    """Drive an asyncio :class:`~tether.topics.broker.Broker` from threads.

    The broker runs on an event loop in a daemon thread of its own; its
    receiver is called on that thread. ``timeout`` bounds each publish.
    """

    def __init__(
        self, broker: Broker, receiver: Receiver, stats: TopicStats, timeout: float = 10.0
    ) -> None:
        self.broker = broker
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        broker.attach(receiver, stats)
        self._stats = stats
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tether-broker", daemon=True
        )
        self._thread.start()

    def subscribe(self, topic: str) -> None:
        """Subscribe the broker to ``topic``, soon."""
        self.loop.call_soon_threadsafe(self.broker.subscribe, topic)

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe the broker from ``topic``, soon."""
        self.loop.call_soon_threadsafe(self.broker.unsubscribe, topic)

    def publish(self, topic: str, text: bool, payload: bytes) -> bool:
        """Hand a message to the broker and wait until it took it (or could not)."""
        if self.loop.is_closed():
            self._stats.undelivered += 1
            return False
        future = asyncio.run_coroutine_threadsafe(
            self.broker.publish(topic, text, payload), self.loop
        )
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._stats.undelivered += 1
            logger.warning("publishing to the broker took over %s seconds", self.timeout)
            return False

    def close(self) -> None:
        """Close the broker and stop its thread."""
        if self.loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.broker.aclose(), self.loop)
        try:
            future.result(self.timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(self.timeout)
            self.loop.close()
