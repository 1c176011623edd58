"""Publish and subscribe for trio connections: :class:`Topics`."""

from __future__ import annotations

import trio

from tether.topics.bridge import BrokerThread
from tether.topics.broker import Broker
from tether.topics.fanout import Prepared
from tether.topics.registry import BaseTopics, SlowPolicy, logger
from tether.trio.connection import Connection, Data

__all__ = ["Topics"]


class Topics(BaseTopics[Connection]):
    """Topics for the trio API: as :class:`tether.Topics`, for trio connections.

    ::

        topics = tether.trio.Topics()

        async def handler(websocket):
            topics.subscribe(websocket, "room:42")
            async for message in websocket:
                await topics.publish("room:42", message)

    A published message is framed once and written to every subscriber
    without waiting for any: what a connection cannot take at once is
    written by a task of that connection. A subscriber over its
    ``write_limit`` is skipped (``slow="drop"``) or closed with 1013
    (``slow="close"``). A connection leaves its topics when it closes.

    With a ``broker`` (an asyncio one, such as
    :class:`~tether.topics.redis.RedisBroker`), messages also reach the
    subscribers of other processes: the broker runs on an event loop in a
    thread of its own, as with :class:`tether.sync.Topics`, and messages
    from it are delivered in the trio run that made these topics. Make them
    inside ``trio.run`` then, and call :meth:`aclose` when done.
    """

    def __init__(self, *, broker: Broker | None = None, slow: SlowPolicy = "drop") -> None:
        super().__init__(slow=slow)
        self.broker = broker
        """The broker that carries messages to other processes, if any."""
        self._bridge: BrokerThread | None = None
        if broker is not None:
            self._token = trio.lowlevel.current_trio_token()
            self._bridge = BrokerThread(broker, self._receive_from_thread, self.stats)

    async def publish(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` (``str`` as text, bytes-like as binary) to the subscribers of ``topic``.

        Return how many connections of this process it was written to. With
        a broker, the message also goes to the other processes: this waits,
        in a worker thread, until the broker took it.
        """
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        self.stats.published += 1
        sent = self.publish_local(topic, prepared)
        bridge = self._bridge
        if bridge is None:
            await trio.lowlevel.checkpoint()
        else:
            await trio.to_thread.run_sync(bridge.publish, topic, prepared.text, prepared.payload)
        return sent

    def publish_local(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` to the subscribers of ``topic`` in this process only; don't wait.

        Return how many connections it was written to.
        """
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        return self._publish_async(topic, prepared, self._snapshot(topic))

    def _receive(self, topic: str, prepared: Prepared) -> None:
        """Deliver a message that came through the broker."""
        self.stats.received += 1
        self.publish_local(topic, prepared)

    def _receive_from_thread(self, topic: str, prepared: Prepared) -> None:
        """The broker's receiver, on its thread: deliver in the trio run."""
        try:
            self._token.run_sync_soon(self._receive, topic, prepared)
        except trio.RunFinishedError:
            logger.debug("dropped a message of %s: the trio run is over", topic)

    def _is_open(self, connection: Connection) -> bool:
        return not connection._lost

    def _topic_created(self, topic: str) -> None:
        if self._bridge is not None:
            self._bridge.subscribe(topic)

    def _topic_emptied(self, topic: str) -> None:
        if self._bridge is not None:
            self._bridge.unsubscribe(topic)

    async def aclose(self) -> None:
        """Close the broker, if any, and its thread."""
        bridge = self._bridge
        if bridge is not None:
            await trio.to_thread.run_sync(bridge.close)

    async def __aenter__(self) -> Topics:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
