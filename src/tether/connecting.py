"""What the async ``connect`` classes share: awaiting, ``async with`` and ``async for``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator, Iterator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from tether.log import LoggerLike, connection_logger
from tether.reconnecting import Backoff, raise_unless_retried

__all__ = ["AsyncConnect"]


class _Closing(Protocol):
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


Conn = TypeVar("Conn", bound=_Closing)


class AsyncConnect(Generic[Conn]):
    """Await a ``connect`` for its connection, or use it with ``async with``.

    The layer's ``connect`` provides :meth:`_create`, which opens one
    connection; on leaving ``async with``, that connection's own
    ``__aexit__`` closes it. For ``async for``, it provides :meth:`_sleep`
    and :meth:`_close_reconnected`, and the options below.
    """

    connection: Conn | None
    logger: LoggerLike | str | None
    process_exception: Callable[[Exception], Exception | None]
    reconnect_delays: Callable[[], Iterator[float]] | None
    backoff_initial_delay: float
    backoff_factor: float
    backoff_max_delay: float

    async def _create(self) -> Conn:
        raise NotImplementedError

    async def _sleep(self, delay: float) -> None:
        raise NotImplementedError

    async def _close_reconnected(self, connection: Conn) -> None:
        raise NotImplementedError

    async def __aiter__(self) -> AsyncIterator[Conn]:
        """Connect, and connect again each time the connection drops or cannot be opened.

        Failed attempts are retried when ``process_exception`` says so, after
        the waits of :class:`~tether.reconnecting.Backoff`; each connection
        is closed when the loop moves on.
        """
        logger = connection_logger(self.logger, "tether.client", "reconnect", None)
        delays = Backoff(
            self.reconnect_delays,
            self.backoff_initial_delay,
            self.backoff_factor,
            self.backoff_max_delay,
        )
        while True:
            try:
                connection = await self._create()
            except Exception as exc:
                raise_unless_retried(self.process_exception, exc)
                delay = delays.next(exc)
                logger.info("connection failed (%s); retrying in %.3f seconds", exc, delay)
                await self._sleep(delay)
                continue
            delays.reset()
            try:
                yield connection
            finally:
                await self._close_reconnected(connection)

    def __await__(self) -> Generator[Any, None, Conn]:
        return self._create().__await__()

    async def __aenter__(self) -> Conn:
        self.connection = await self._create()
        return self.connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.connection is not None
        await self.connection.__aexit__(exc_type, exc, tb)
