"""What the asyncio and trio connections share: the methods written the same for both.

:class:`AsyncConnection` is a mixin of :class:`tether.asyncio.connection.Connection`
and :class:`tether.trio.connection.Connection`. What it holds runs the same on
both event loops and is off the per-message path; what differs between them
(how a task waits for input, how writing waits for room, how a ping's waiter
is made and woken, and the receiving and sending of one message, which each
layer writes out for speed) stays in each layer, behind the few methods below
that a layer provides:

* ``_begin_receiving()`` / ``_end_receiving()``: a task starts receiving
  (raise :class:`~tether.exceptions.ConcurrencyError` if another one is) and
  stops, cancelled or not;
* ``_input()``: an awaitable that returns once input may have arrived, or
  raises :class:`~tether.exceptions.ConnectionClosed`;
* ``_maybe_resume_reading()``: a message was taken from the queue;
* ``_flush_wait()``: write what the engine has to send, and wait while the
  write buffer is over its limit;
* ``_pong_waiter_done(waiter, latency)``: the pong of a ``ping()`` came;
  ``_keepalive_answered()``: the pong of a keepalive ping came;
* ``_fail(code, reason)`` and ``close(code)``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable
from types import TracebackType
from typing import Any, Self

from tether.exceptions import ConcurrencyError, ConnectionClosed, InvalidState
from tether.messages import MessageQueue, piece_converter
from tether.pings import answer_pings, ping_payload
from tether.protocol.client import ClientProtocol
from tether.protocol.close import CloseCode
from tether.protocol.server import ServerProtocol
from tether.sending import Data, Fragments

__all__ = ["AsyncConnection"]


class AsyncConnection:
    """The methods the asyncio and trio connections share; see the module.

    Each layer's class declares the attributes in its ``__slots__``.
    """

    protocol: ClientProtocol | ServerProtocol
    latency: float
    _messages: MessageQueue
    # Pings waiting for their pong: payload -> (waiter or None for a
    # keepalive ping, when it left); None while there is none.
    _pings: dict[bytes, tuple[Any, float]] | None

    # Exceptions that leave a fragmented message unfinished without failing
    # the connection: ConnectionClosed, and what a layer adds.
    _fragments_pass: tuple[type[BaseException], ...] = (ConnectionClosed,)

    # Provided by each layer.

    def _begin_receiving(self) -> None:
        raise NotImplementedError

    def _end_receiving(self) -> None:
        raise NotImplementedError

    def _input(self) -> Awaitable[object]:
        raise NotImplementedError

    def _maybe_resume_reading(self) -> None:
        raise NotImplementedError

    async def _flush_wait(self) -> None:
        raise NotImplementedError

    def _fail(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def _pong_waiter_done(self, waiter: Any, latency: float) -> None:
        raise NotImplementedError

    def _keepalive_answered(self) -> None:
        raise NotImplementedError

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection (see each layer)."""
        raise NotImplementedError

    # Shared.

    async def recv_streaming(self, decode: bool | None = None) -> AsyncIterator[str | bytes]:
        """Yield the next message piece by piece, as its frames arrive.

        ``decode`` works as in ``recv``; a UTF-8 sequence split between two
        binary pieces is decoded whole.
        """
        self._begin_receiving()
        # A binary fragment may end inside a UTF-8 sequence: decode across pieces.
        convert_piece = piece_converter(decode)
        try:
            while True:
                piece = self._messages.get_fragment()
                if piece is None:
                    await self._input()
                    continue
                data, last = piece
                yield convert_piece(data, last)
                if last:
                    self._maybe_resume_reading()
                    return
        finally:
            self._end_receiving()

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """Iterate over messages until the connection closes.

        The iteration ends quietly on a normal closure (1000 or 1001) and
        raises :class:`~tether.exceptions.ConnectionClosedError` otherwise.
        The connection is its own iterator: the messages are its state.
        """
        return self

    async def __anext__(self) -> str | bytes:
        """The next message of ``async for`` (each layer writes it out)."""
        raise NotImplementedError

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong, as a one-way heartbeat."""
        payload = data.encode() if isinstance(data, str) else bytes(data)
        try:
            self.protocol.send_pong(payload)
        except InvalidState:
            raise self.protocol.close_exc() from None
        await self._flush_wait()

    def _record_ping(self, data: Data | None, waiter: object) -> bytes:
        """Have the engine send a ping and record it with ``waiter``; return its payload.

        Without ``data``, four random bytes, unique among the pings waiting.
        Raise :class:`~tether.exceptions.ConcurrencyError` if a ping with the
        same data waits for its pong.
        """
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        payload = ping_payload(data)
        if payload in pings:
            if data is not None:
                raise ConcurrencyError("a ping with the same data is waiting for its pong")
            while payload in pings:  # pragma: no cover - 1 in 2**32
                payload = ping_payload(None)
        try:
            self.protocol.send_ping(payload)
        except InvalidState:
            raise self.protocol.close_exc() from None
        # Not the event loop's clock: uvloop's ticks in milliseconds, and a
        # pong on a fast link would often measure 0.
        pings[payload] = (waiter, time.monotonic())
        return payload

    def _pong_received(self, data: bytes) -> None:
        """A pong came: wake the pings it answers and record the latency."""
        pings = self._pings
        if pings is None or data not in pings:
            return
        keepalive_answered = False
        for waiter, latency in answer_pings(pings, data, time.monotonic()):
            self.latency = latency
            if waiter is None:
                keepalive_answered = True
            else:
                self._pong_waiter_done(waiter, latency)
        if not pings:
            # An emptied dictionary keeps its table: idle connections drop it.
            self._pings = None
        if keepalive_answered:
            self._keepalive_answered()

    async def _send_fragments(
        self, pieces: Iterable[Data] | AsyncIterable[Data], text: bool | None
    ) -> None:
        """Send one fragmented message, a frame per piece; the caller holds the send lock."""
        fragments = Fragments(self.protocol, text)
        try:
            if isinstance(pieces, AsyncIterable):
                async for piece in pieces:
                    fragments.send(piece)
                    await self._flush_wait()
            else:
                for piece in pieces:
                    fragments.send(piece)
                    await self._flush_wait()
        except self._fragments_pass:
            raise
        except BaseException:
            # A message cut in the middle cannot be finished: fail the connection.
            if fragments.started:
                self._fail(CloseCode.INTERNAL_ERROR, "error in fragmented message")
            raise
        fragments.end()
        await self._flush_wait()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection: with 1000, or with 1011 when the block raised."""
        await self.close(CloseCode.NORMAL_CLOSURE if exc_type is None else CloseCode.INTERNAL_ERROR)
