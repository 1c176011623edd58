"""Who subscribes to what, what to do with slow subscribers, and the counters.

:class:`BaseTopics` holds what the asyncio, trio and threading topics share:
the subscriptions, the policies and :class:`TopicStats`, and the write to
the subscribers of the async layers (as a broadcast's, see
:mod:`tether.broadcasting`); the threading topics write their own way.
A connection leaves every topic when it closes: it tells its topics through
its ``_on_closed`` hooks, and nothing here keeps a reference to it
afterwards. A topic exists only while it has subscribers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable
from typing import Generic, Literal, Protocol, TypeVar

from tether.broadcasting import CLOSED, FULL, Broadcastable
from tether.exceptions import InvalidState
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN
from tether.sending import Closable
from tether.topics.fanout import Prepared

__all__ = ["SLOW_POLICIES", "BaseTopics", "SlowPolicy", "TopicStats"]

logger = logging.getLogger("tether.topics")

SlowPolicy = Literal["drop", "close"]
"""What happens to a subscriber whose unsent bytes pass its write limit.

``"drop"`` skips messages for it until it catches up; ``"close"`` closes it
with code 1013 (try again later).
"""

SLOW_POLICIES: frozenset[str] = frozenset({"drop", "close"})


@dataclasses.dataclass
class TopicStats:
    """Counters of a :class:`~tether.Topics`, readable at any time."""

    published: int = 0
    """Messages published through these topics."""
    delivered: int = 0
    """Copies of messages written to a connection of this process."""
    dropped: int = 0
    """Copies skipped: the subscriber was too slow (``drop``) or sending a fragmented message."""
    closed: int = 0
    """Subscribers closed with 1013 for being too slow (``close``)."""
    shared_frames: int = 0
    """Frames built once and written to every connection able to share them."""
    compressions: int = 0
    """Messages compressed once for the subscribers sharing the same deflate settings."""
    own_frames: int = 0
    """Copies the connection's own engine encoded (clients, extensions other than deflate)."""
    received: int = 0
    """Messages received from the broker, published by another process."""
    undelivered: int = 0
    """Messages the broker could not carry to other processes: at most once, they are lost."""
    invalid: int = 0
    """Messages from the broker that were refused: not in tether's envelope, or bad UTF-8."""
    reconnects: int = 0
    """Times the broker connection was lost and made again."""


class Subscriber(Broadcastable, Protocol):
    """What :meth:`BaseTopics._publish_async` needs of a connection.

    A broadcast's needs, and failing the connection.
    """

    def _fail(self, code: int, reason: str) -> object:
        """Close with ``code`` at once, without waiting."""
        ...


C = TypeVar("C", bound=Closable)
"""The type of connections: asyncio or threading."""


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"a topic is a non-empty str, not {topic!r}")
    return topic


def check_policy(policy: object) -> SlowPolicy:
    """Return ``policy`` if it is a :data:`SlowPolicy`, else raise :class:`ValueError`."""
    if policy in SLOW_POLICIES:
        return policy  # type: ignore[return-value]
    raise ValueError(f"slow must be 'drop' or 'close', not {policy!r}")


class BaseTopics(Generic[C]):
    """Subscriptions of connections ``C`` to topics; see :class:`tether.Topics`.

    Safe to use from several threads: a lock guards the subscriptions.
    """

    def __init__(self, *, slow: SlowPolicy = "drop") -> None:
        self.slow: SlowPolicy = check_policy(slow)
        """The policy for slow subscribers of topics without one of their own."""
        self.stats = TopicStats()
        """The counters; see :class:`TopicStats`."""
        self._lock = threading.Lock()
        self._subscribers: dict[str, dict[C, None]] = {}
        self._memberships: dict[C, set[str]] = {}
        self._policies: dict[str, SlowPolicy] = {}

    # Subscriptions

    def subscribe(self, connection: C, *topics: str) -> None:
        """Add ``connection`` to each of ``topics``; it leaves them all when it closes.

        Subscribing again to a topic does nothing. A connection that is
        already closed is not added.
        """
        names = [_check_topic(topic) for topic in topics]
        if not self._is_open(connection):
            return
        created = []
        with self._lock:
            memberships = self._memberships.get(connection)
            if memberships is None:
                memberships = self._memberships[connection] = set()
                hooks = connection._on_closed
                if hooks is None:
                    hooks = connection._on_closed = []
                hooks.append(self._connection_closed)
            for name in names:
                if name in memberships:
                    continue
                memberships.add(name)
                subscribers = self._subscribers.get(name)
                if subscribers is None:
                    subscribers = self._subscribers[name] = {}
                    created.append(name)
                subscribers[connection] = None
        for name in created:
            self._topic_created(name)

    def unsubscribe(self, connection: C, *topics: str) -> None:
        """Remove ``connection`` from each of ``topics``, or from every topic if none is given."""
        names = [_check_topic(topic) for topic in topics]
        emptied = []
        with self._lock:
            memberships = self._memberships.get(connection)
            if memberships is None:
                return
            for name in names or list(memberships):
                if name not in memberships:
                    continue
                memberships.discard(name)
                subscribers = self._subscribers[name]
                del subscribers[connection]
                if not subscribers:
                    del self._subscribers[name]
                    emptied.append(name)
            if not memberships:
                del self._memberships[connection]
                hooks = connection._on_closed
                if hooks is not None:
                    hooks.remove(self._connection_closed)
        for name in emptied:
            self._topic_emptied(name)

    def _connection_closed(self, connection: C) -> None:
        self.unsubscribe(connection)

    def subscribers(self, topic: str) -> list[C]:
        """The connections of this process subscribed to ``topic``."""
        with self._lock:
            return list(self._subscribers.get(topic, ()))

    def topics(self, connection: C | None = None) -> set[str]:
        """The topics ``connection`` subscribes to, or every topic with a subscriber here."""
        with self._lock:
            if connection is None:
                return set(self._subscribers)
            return set(self._memberships.get(connection, ()))

    # Slow subscribers

    def set_policy(self, topic: str, slow: SlowPolicy | None) -> None:
        """Choose what happens to slow subscribers of ``topic``; ``None`` for :attr:`slow`."""
        name = _check_topic(topic)
        if slow is None:
            self._policies.pop(name, None)
        else:
            self._policies[name] = check_policy(slow)

    def policy(self, topic: str) -> SlowPolicy:
        """The policy that applies to slow subscribers of ``topic``."""
        return self._policies.get(topic, self.slow)

    # For subclasses

    def _is_open(self, connection: C) -> bool:
        raise NotImplementedError

    def _topic_created(self, topic: str) -> None:
        """The first subscriber of ``topic`` in this process arrived."""

    def _topic_emptied(self, topic: str) -> None:
        """The last subscriber of ``topic`` in this process left."""

    def _publish_async(
        self, topic: str, prepared: Prepared, subscribers: Iterable[Subscriber], sent: int = 0
    ) -> int:
        """Write ``prepared`` to the open subscribers of an async layer that have room; count.

        Each says whether it can take a frame now and writes without
        waiting, as for a broadcast (see :mod:`tether.broadcasting`). One
        over its ``write_limit`` is dropped from this message or closed with
        1013, as the topic's policy says. ``sent`` counts those already
        written to another way; return the total.
        """
        stats = self.stats
        policy = self._policies.get(topic, self.slow)
        for connection in subscribers:
            protocol = connection.protocol
            if protocol.state is not _OPEN:
                continue
            room = connection._write_room()
            if room == CLOSED:
                continue
            if room == FULL:
                # Over write_limit: this one does not keep up.
                if policy == "drop":
                    stats.dropped += 1
                    connection.logger.debug("dropped a message of %s: too slow", topic)
                else:
                    stats.closed += 1
                    connection.logger.info("closing: too slow for %s", topic)
                    connection._fail(CloseCode.TRY_AGAIN_LATER, "too slow")
                continue
            try:
                shared = prepared.send_to(protocol)
            except InvalidState:
                # Open was checked: a fragmented message is on its way out.
                stats.dropped += 1
                connection.logger.debug("dropped a message of %s: sending fragments", topic)
                continue
            if shared:
                stats.shared_frames += 1
            else:
                stats.own_frames += 1
            connection._flush_nowait()
            sent += 1
        stats.delivered += sent
        stats.compressions += prepared.compressions
        return sent

    def _snapshot(self, topic: str) -> Iterable[C]:
        with self._lock:
            subscribers = self._subscribers.get(topic)
            return () if subscribers is None else list(subscribers)
