"""What the async ``connect`` classes share: awaiting and ``async with``."""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

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
    ``__aexit__`` closes it.
    """

    connection: Conn | None

    async def _create(self) -> Conn:
        raise NotImplementedError

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
