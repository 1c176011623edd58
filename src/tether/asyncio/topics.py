"""Publish and subscribe for asyncio connections: :class:`Topics`."""

from __future__ import annotations

from tether.asyncio._direct import DIRECT, write_direct
from tether.asyncio.connection import Connection, Data
from tether.topics.broker import Broker
from tether.topics.fanout import Prepared
from tether.topics.registry import BaseTopics, SlowPolicy

__all__ = ["Topics"]


class Topics(BaseTopics[Connection]):
    """Topics that connections subscribe to, and messages published to them.

    ::

        topics = tether.Topics()

        async def handler(websocket):
            topics.subscribe(websocket, "room:42")
            async for message in websocket:
                await topics.publish("room:42", message)

    A published message is framed once, compressed once per set of deflate
    settings that allow it, and written to every subscriber without
    waiting: a subscriber whose write buffer is over its ``write_limit`` is
    skipped (``slow="drop"``) or closed with 1013 (``slow="close"``), and
    never slows the others. :meth:`set_policy` chooses per topic.

    With a ``broker``, such as :class:`~tether.topics.redis.RedisBroker`, messages
    reach the subscribers of every process using the same broker, and this
    process listens only to the topics it has subscribers for. Delivery to
    other processes is at most once.

    Use it from the event loop of its connections. :attr:`stats` counts
    what happened.
    """

    def __init__(self, *, broker: Broker | None = None, slow: SlowPolicy = "drop") -> None:
        super().__init__(slow=slow)
        self.broker = broker
        """The broker that carries messages to other processes, if any."""
        if broker is not None:
            broker.attach(self._receive, self.stats)

    async def publish(self, topic: str, message: Data) -> int:
        """Send ``message`` (``str`` as text, bytes-like as binary) to the subscribers of ``topic``.

        Return how many connections of this process it was written to. With
        a broker, the message also goes to the other processes; if the
        broker cannot take it, it is counted in ``stats.undelivered`` and
        logged, and local delivery happens all the same.
        """
        prepared = Prepared(message)
        self.stats.published += 1
        sent = self.publish_local(topic, prepared)
        if self.broker is not None:
            await self.broker.publish(topic, prepared.text, prepared.payload)
        return sent

    def publish_local(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` to the subscribers of ``topic`` in this process only; don't wait.

        Return how many connections it was written to.
        """
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        subscribers = self._snapshot(topic)
        if not subscribers:
            return 0
        sent = 0
        if DIRECT:
            # The plain frame straight to the sockets of subscribers without
            # extensions; those with one may share a compressed frame.
            sent, subscribers, _ = write_direct(
                subscribers, lambda: prepared.plain, plain_only=True
            )
            self.stats.shared_frames += sent
        return self._publish_async(topic, prepared, subscribers, sent)

    def _receive(self, topic: str, prepared: Prepared) -> None:
        """Deliver a message that came through the broker."""
        self.stats.received += 1
        self.publish_local(topic, prepared)

    def _is_open(self, connection: Connection) -> bool:
        return not connection._lost

    def _topic_created(self, topic: str) -> None:
        if self.broker is not None:
            self.broker.subscribe(topic)

    def _topic_emptied(self, topic: str) -> None:
        if self.broker is not None:
            self.broker.unsubscribe(topic)

    async def aclose(self) -> None:
        """Close the broker, if any: send what waits, and stop listening."""
        if self.broker is not None:
            await self.broker.aclose()

    async def __aenter__(self) -> Topics:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
