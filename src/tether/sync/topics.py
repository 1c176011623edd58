"""Publish and subscribe for threading connections: :class:`Topics`."""

from __future__ import annotations

import threading

from tether.exceptions import InvalidState
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN
from tether.sending import Data
from tether.sync.connection import Connection
from tether.topics.bridge import BrokerThread
from tether.topics.broker import Broker
from tether.topics.fanout import Prepared
from tether.topics.registry import BaseTopics, SlowPolicy

__all__ = ["DEFAULT_WRITE_LIMIT", "Topics"]

DEFAULT_WRITE_LIMIT = 32 * 1024
"""Bytes waiting to be written past which a threading subscriber is too slow."""


class Topics(BaseTopics[Connection]):
    """Topics for the threading API: as :class:`tether.Topics`, with a publish that never blocks.

    :meth:`publish` may be called from any thread and never waits for a
    subscriber: what a socket does not take at once is written by a thread
    of that connection's own. A subscriber with more than ``write_limit``
    bytes still waiting is too slow: skipped (``slow="drop"``) or closed
    with 1013 (``slow="close"``).

    With a ``broker`` (an asyncio one such as
    :class:`~tether.topics.redis.RedisBroker`, which runs on an event loop
    in a thread of its own), messages also reach the subscribers of other
    processes, and :meth:`publish` waits until the broker took the message.
    Call :meth:`close` when done.
    """

    def __init__(
        self,
        *,
        broker: Broker | None = None,
        slow: SlowPolicy = "drop",
        write_limit: int = DEFAULT_WRITE_LIMIT,
    ) -> None:
        super().__init__(slow=slow)
        if write_limit < 0:
            raise ValueError("write_limit must be at least 0")
        self.write_limit = write_limit
        """Bytes waiting to be written past which a subscriber is too slow."""
        self.broker = broker
        """The broker that carries messages to other processes, if any."""
        self._bridge = None if broker is None else BrokerThread(broker, self._receive, self.stats)

    def publish(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` to the subscribers of ``topic``; return how many of this process got it.

        With a broker, the message goes to the other processes too.
        """
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        self.stats.published += 1
        sent = self.publish_local(topic, prepared)
        if self._bridge is not None:
            self._bridge.publish(topic, prepared.text, prepared.payload)
        return sent

    def _receive(self, topic: str, prepared: Prepared) -> None:
        self.stats.received += 1
        self.publish_local(topic, prepared)

    def _topic_created(self, topic: str) -> None:
        if self._bridge is not None:
            self._bridge.subscribe(topic)

    def _topic_emptied(self, topic: str) -> None:
        if self._bridge is not None:
            self._bridge.unsubscribe(topic)

    def close(self) -> None:
        """Close the broker, if any, and its thread."""
        if self._bridge is not None:
            self._bridge.close()

    def __enter__(self) -> Topics:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish_local(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` to the subscribers of ``topic`` in this process only."""
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        stats = self.stats
        subscribers = self._snapshot(topic)
        policy = self._policies.get(topic, self.slow)
        limit = self.write_limit
        sent = 0
        for connection in subscribers:
            protocol = connection.protocol
            slow = False
            data: list[bytes] | None = None
            with connection._mutex:
                if protocol.state is not _OPEN:
                    continue
                if connection._write_lock.locked() and protocol.pending_output > limit:
                    # Another thread is stuck writing and this much waits behind it.
                    slow = True
                else:
                    try:
                        shared = prepared.send_to(protocol)
                    except InvalidState:
                        stats.dropped += 1
                        continue
                    if connection._write_lock.acquire(False):
                        data = protocol.data_to_send()
            if slow:
                if policy == "drop":
                    stats.dropped += 1
                else:
                    stats.closed += 1
                    connection.logger.info("closing: too slow for %s", topic)
                    # The close frame waits behind the stuck write, on a
                    # thread of its own; close_timeout bounds the wait.
                    threading.Thread(
                        target=connection._fail,
                        args=(CloseCode.TRY_AGAIN_LATER, "too slow"),
                        name=f"tether-closer-{str(connection.id)[:8]}",
                        daemon=True,
                    ).start()
                continue
            if shared:
                stats.shared_frames += 1
            else:
                stats.own_frames += 1
            if data is not None:
                # What the socket does not take now goes on a thread of its own.
                connection._flush(data=data, nowait=True, quiet=True)
            sent += 1
        stats.delivered += sent
        stats.compressions += prepared.compressions
        return sent

    def _is_open(self, connection: Connection) -> bool:
        return not connection._closed.is_set()
