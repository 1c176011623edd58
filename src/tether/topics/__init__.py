"""Publish and subscribe across connections, processes and machines.

:class:`tether.Topics` (asyncio) and :class:`tether.sync.Topics` (threading)
deliver in one process; a :class:`Broker` carries messages between
processes: :class:`MemoryBroker` within one process (tests), and
:class:`RedisBroker` through Redis (``pip install tether[redis]``), which
loads redis-py only when used. :class:`RedisPublisher` publishes from code
that has no event loop and no WebSocket connections, such as a web
request handler.
"""

from typing import TYPE_CHECKING, Any

from tether.topics.broker import Broker, MemoryBroker, MemoryBus
from tether.topics.fanout import Prepared
from tether.topics.registry import SlowPolicy, TopicStats

if TYPE_CHECKING:
    from tether.topics.publisher import RedisPublisher
    from tether.topics.redis import RedisBroker

__all__ = [
    "Broker",
    "MemoryBroker",
    "MemoryBus",
    "Prepared",
    "RedisBroker",
    "RedisPublisher",
    "SlowPolicy",
    "TopicStats",
]

_LAZY = {"RedisBroker": "tether.topics.redis", "RedisPublisher": "tether.topics.publisher"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tether.topics' has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
