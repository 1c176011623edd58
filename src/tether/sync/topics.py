"""Publish and subscribe for threading connections: :class:`Topics`."""

from __future__ import annotations

import threading

from tether.exceptions import InvalidState
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN
from tether.sending import Data
from tether.sync.connection import Connection
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
    with 1013 (``slow="close"``). Delivery stays in this process.
    """

    def __init__(
        self, *, slow: SlowPolicy = "drop", write_limit: int = DEFAULT_WRITE_LIMIT
    ) -> None:
        super().__init__(slow=slow)
        if write_limit < 0:
            raise ValueError("write_limit must be at least 0")
        self.write_limit = write_limit
        """Bytes waiting to be written past which a subscriber is too slow."""

    def publish(self, topic: str, message: Data | Prepared) -> int:
        """Send ``message`` to the subscribers of ``topic``; return how many it was written to."""
        prepared = message if isinstance(message, Prepared) else Prepared(message)
        stats = self.stats
        stats.published += 1
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
