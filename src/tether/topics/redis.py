"""A broker on Redis pub/sub: :class:`RedisBroker` (needs ``tether[redis]``).

Each topic is a Redis channel, ``prefix + topic``. A process subscribes in
Redis only to the topics it has subscribers for, over one connection; it
publishes over another. Redis pub/sub delivers at most once: a message
published while a process is disconnected from Redis never reaches that
process. When Redis goes away, local delivery goes on, what could not be
published is counted in :attr:`~tether.topics.registry.TopicStats.undelivered`, and
the broker reconnects with exponential backoff, then subscribes again to
every topic it needs.

With ``sharded=True``, it uses the commands of sharded pub/sub
(``SPUBLISH``, ``SSUBSCRIBE``, Redis 7 or later) on the server of the URL.
With ``cluster=True``, the URL names a node of a Redis Cluster: each
topic's channel lives on the shard of its hash slot, and the broker
subscribes on each shard through redis-py's cluster client (redis-py 8 or
later), which polls the shards in turn (``cluster_poll`` seconds each at
most, when idle).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tether.topics.broker import Broker, encode_envelope
from tether.topics.registry import logger

__all__ = ["RedisBroker"]

# What a lost or unreachable Redis raises.
_DOWN = (RedisError, OSError, asyncio.TimeoutError, EOFError)


def _ignore_outcome(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


class RedisBroker(Broker):
    """A broker on Redis pub/sub, for :class:`~tether.Topics` in many processes and machines.

    ``url`` is a redis-py URL such as ``redis://localhost:6379/0``; other
    keyword arguments go to :class:`redis.asyncio.Redis`. ``prefix`` keeps
    these channels apart from others on the same Redis. Reconnection waits
    ``min_backoff`` seconds, doubling up to ``max_backoff``, with jitter.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str = "tether:",
        sharded: bool = False,
        cluster: bool = False,
        cluster_poll: float = 0.05,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        connect_timeout: float = 2.0,
        **redis_kwargs: Any,
    ) -> None:
        super().__init__()
        if not 0 < min_backoff <= max_backoff:
            raise ValueError("expected 0 < min_backoff <= max_backoff")
        if cluster and not hasattr(RedisCluster, "pubsub"):
            # redis-py's asyncio cluster client has pub/sub from version 8.
            raise RuntimeError("cluster=True needs redis-py 8 or later: pip install 'redis>=8'")
        self.url = url
        """Where Redis is."""
        self.prefix = prefix
        """What the Redis channel of each topic starts with."""
        self.sharded = sharded or cluster
        """Whether sharded pub/sub is used."""
        self.cluster = cluster
        """Whether the URL names a node of a Redis Cluster."""
        self.cluster_poll = cluster_poll
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._connect_timeout = connect_timeout
        self._redis_kwargs: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            # This broker reconnects itself, with backoff, and resubscribes.
            "retry": Retry(NoBackoff(), 0),
            **redis_kwargs,
        }
        self._wanted: set[str] = set()
        self._active: set[str] = set()
        self._changed: asyncio.Event | None = None
        # Set once the first connection attempt is over, made or failed.
        self._attempted: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._publisher: Any = None
        self._up = False
        self._closed = False
        self._was_up = False
        self._warned_down = False

    @property
    def connected(self) -> bool:
        """Whether the broker is connected to Redis and subscribed to what it needs."""
        return self._up

    def _channel(self, topic: str) -> str:
        return self.prefix + topic

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._changed = asyncio.Event()
            self._attempted = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` in Redis, now or once connected."""
        self._wanted.add(topic)
        self._start()
        assert self._changed is not None
        self._changed.set()

    def unsubscribe(self, topic: str) -> None:
        """Unsubscribe from ``topic`` in Redis."""
        self._wanted.discard(topic)
        if self._changed is not None:
            self._changed.set()

    async def publish(self, topic: str, text: bool, payload: bytes) -> bool:
        """Publish to every process subscribed to ``topic``; ``False`` if Redis was unreachable."""
        self._start()
        attempted = self._attempted
        if attempted is not None and not attempted.is_set():
            # The first messages of a fresh process wait for the connection
            # rather than being lost to it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(attempted.wait(), self._connect_timeout + 1)
        publisher = self._publisher
        if not self._up or publisher is None:
            return self._lost(topic, None)
        data = encode_envelope(self.origin, text, payload)
        try:
            if self.sharded:
                await publisher.spublish(self._channel(topic), data)
            else:
                await publisher.publish(self._channel(topic), data)
        except _DOWN as exc:
            return self._lost(topic, exc)
        return True

    def _lost(self, topic: str, exc: BaseException | None) -> bool:
        self.stats.undelivered += 1
        if not self._warned_down:
            self._warned_down = True
            logger.warning("Redis unreachable: messages to other processes are lost (%s)", exc)
        else:
            logger.debug("not published to Redis: %s", topic)
        return False

    async def _run(self) -> None:
        delay = self.min_backoff
        while not self._closed:
            subscriber: Any
            publisher: Any
            if self.cluster:
                # One cluster client: the pub/sub borrows its node connections.
                publisher = subscriber = RedisCluster.from_url(self.url, **self._redis_kwargs)
            else:
                subscriber = Redis.from_url(self.url, **self._redis_kwargs)
                publisher = Redis.from_url(self.url, **self._redis_kwargs)
            pubsub = subscriber.pubsub()
            try:
                await publisher.ping()
                delay = self.min_backoff
                self._active = set()
                self._publisher = publisher
                await self._sync(pubsub)
            except _DOWN as exc:
                if self._up or not self._warned_down:
                    logger.warning("Redis connection lost: %s; reconnecting", exc)
                self._warned_down = True
                assert self._attempted is not None
                self._attempted.set()
            finally:
                self._up = False
                self._publisher = None
                for client in {id(c): c for c in (pubsub, subscriber, publisher)}.values():
                    with contextlib.suppress(*_DOWN):
                        await client.aclose()
            if self._closed:
                return
            # Full jitter: processes that lost Redis together don't come back together.
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self.max_backoff)

    async def _sync(self, pubsub: Any) -> None:
        """Keep Redis subscribed to the wanted topics, and read, until the connection fails."""
        changed = self._changed
        assert changed is not None
        reader: asyncio.Task[None] | None = None
        first = True
        try:
            while not self._closed:
                changed.clear()
                wanted = set(self._wanted)
                add = [self._channel(t) for t in wanted - self._active]
                remove = [self._channel(t) for t in self._active - wanted]
                if add:
                    await (pubsub.ssubscribe(*add) if self.sharded else pubsub.subscribe(*add))
                if remove:
                    if self.sharded:
                        await pubsub.sunsubscribe(*remove)
                    else:
                        await pubsub.unsubscribe(*remove)
                self._active = wanted
                if first:
                    first = False
                    if self._was_up:
                        self.stats.reconnects += 1
                        logger.info("Redis connected again; %d topics resubscribed", len(wanted))
                    self._was_up = self._up = True
                    self._warned_down = False
                    assert self._attempted is not None
                    self._attempted.set()
                if reader is None and (self._active if self.cluster else pubsub.subscribed):
                    # Reading starts with the first subscription: redis-py connects then.
                    reader = asyncio.get_running_loop().create_task(self._read(pubsub))
                waiter = asyncio.ensure_future(changed.wait())
                waiting: set[asyncio.Future[Any]] = {waiter} if reader is None else {waiter, reader}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if reader is not None and reader in done:
                    waiter.cancel()
                    reader.result()  # Raise what ended it.
                    raise ConnectionError("Redis subscription ended")
        finally:
            if reader is not None:
                # Not awaited: a read of redis-py may swallow the cancellation.
                # Closing the connection, which the caller does next, ends it.
                reader.cancel()
                reader.add_done_callback(_ignore_outcome)

    async def _read(self, pubsub: Any) -> None:
        prefix = len(self.prefix)
        cluster = self.cluster
        poll = self.cluster_poll
        while True:
            if cluster:
                message = await pubsub.get_sharded_message(timeout=poll)
            else:
                message = await pubsub.get_message(timeout=None)
            if message is None or message["type"] not in ("message", "smessage"):
                continue
            channel = message["channel"]
            topic = (channel.decode() if isinstance(channel, bytes) else channel)[prefix:]
            data = message["data"]
            if isinstance(data, str):
                data = data.encode()
            self._deliver(topic, data)

    async def aclose(self) -> None:
        """Disconnect from Redis."""
        self._closed = True
        task = self._task
        if task is None:
            return
        # Told rather than cancelled: redis-py may swallow a cancellation.
        assert self._changed is not None
        self._changed.set()
        await asyncio.wait([task], timeout=self.max_backoff + 1)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
