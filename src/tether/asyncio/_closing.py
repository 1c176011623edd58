"""How an asyncio protocol running a tether engine ends TCP.

Shared by :mod:`tether.asyncio.connection` and :mod:`tether.asgi`: after
failing on the peer's data, half-close and read on rather than close at once
(:meth:`TransportEnding._linger`), and drop TCP when the closing handshake or
the TCP close takes too long (:meth:`TransportEnding._arm_close_timer`).
"""

from __future__ import annotations

import asyncio

from tether.log import ConnectionLogger

__all__ = ["TransportEnding"]


class TransportEnding:
    """A mixin for the end of a connection's TCP; its class sets the attributes below."""

    transport: asyncio.Transport | None
    _loop: asyncio.AbstractEventLoop
    # connection_lost() was called.
    _lost: bool
    _eof_written: bool
    _reading_paused: bool
    _replies_paused: bool
    _close_timer: asyncio.TimerHandle | None

    def _connection_logger(self) -> ConnectionLogger:
        """The connection's logger, for the close timer's record."""
        raise NotImplementedError

    def _linger(self, transport: asyncio.Transport) -> None:
        """Half-close, then read and drop until the peer closes TCP.

        Used after failing on the peer's data, and by a server after the
        closing handshake (RFC 6455 section 7.1.1: the server closes TCP first).
        The peer may still be sending: the rest of a message after an error,
        or a pong answering a ping that crossed its close frame. Bytes that
        reach a closed socket, or wait unread in it as it closes, make the
        kernel answer with a RST, which drops our unacknowledged bytes (the
        close frame, if lost once, is never sent again) and may make the
        peer's kernel discard it before the peer reads it: the peer would see
        an abnormal closure (1006) instead of, say, 1000 or 1009. The engine
        ignores the input; EOF from the peer or the close timer ends the
        connection.
        """
        if self._eof_written:
            return
        if not transport.can_write_eof():
            transport.close()
            return
        self._eof_written = True
        transport.write_eof()
        # The engine ignores input now: reading makes no more replies.
        if self._reading_paused or self._replies_paused:
            self._reading_paused = False
            self._replies_paused = False
            transport.resume_reading()

    def _arm_close_timer(self, timeout: float | None) -> None:
        """Abort TCP in ``timeout`` seconds (never, for ``None``) unless it is lost by then.

        A timer already armed to fire sooner is kept; a later one is replaced.
        """
        if timeout is None or self._lost:
            return
        timer = self._close_timer
        if timer is not None:
            if timer.when() <= self._loop.time() + timeout:
                return
            timer.cancel()
        self._close_timer = self._loop.call_later(timeout, self._close_timed_out, timeout)

    def _cancel_close_timer(self) -> None:
        """Forget the close timer: TCP is closed."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None

    def _close_timed_out(self, timeout: float) -> None:
        self._close_timer = None
        if self.transport is not None and not self._lost:
            self._connection_logger().debug("closing timed out after %s seconds", timeout)
            self.transport.abort()
