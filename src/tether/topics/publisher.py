"""Publishing to topics from code without an event loop: :class:`RedisPublisher`."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.cluster import RedisCluster

from tether.sending import Data
from tether.topics.broker import encode_envelope, new_origin
from tether.topics.fanout import Prepared

__all__ = ["RedisPublisher"]


class RedisPublisher:
    """Publish to the topics of every :class:`~tether.Topics` on the same Redis, blocking.

    For a process with no WebSocket connections and no event loop, such as
    a Django or Flask view or a task worker::

        publisher = RedisPublisher("redis://localhost:6379/0")
        publisher.publish("room:42", "hello")

    ``url``, ``prefix``, ``sharded`` and ``cluster`` must match those of the
    :class:`~tether.topics.redis.RedisBroker` of the servers; other keyword
    arguments go to :class:`redis.Redis`. Errors of redis-py propagate:
    the caller decides whether a message that could not be published matters.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "tether:",
        sharded: bool = False,
        cluster: bool = False,
        **redis_kwargs: Any,
    ) -> None:
        self.prefix = prefix
        self.sharded = sharded or cluster
        self.origin = new_origin()
        self.client: Any = (
            RedisCluster.from_url(url, **redis_kwargs)
            if cluster
            else Redis.from_url(url, **redis_kwargs)
        )
        """The redis-py client."""

    def publish(self, topic: str, message: Data) -> int:
        """Publish ``message`` to ``topic``; return how many processes were listening."""
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"a topic is a non-empty str, not {topic!r}")
        prepared = Prepared(message)
        data = encode_envelope(self.origin, prepared.text, prepared.payload)
        channel = self.prefix + topic
        if self.sharded:
            return int(self.client.spublish(channel, data))
        return int(self.client.publish(channel, data))

    def close(self) -> None:
        """Close the connection to Redis."""
        self.client.close()

    def __enter__(self) -> RedisPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
