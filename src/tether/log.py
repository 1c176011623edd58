"""Loggers of tether's connections: every record names its connection."""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["ConnectionLogger", "LoggerLike", "base_logger", "connection_logger"]

LoggerLike = logging.Logger | logging.LoggerAdapter[Any]
"""A logger, or an adapter around one."""


class ConnectionLogger(logging.LoggerAdapter[Any]):
    """Prefix each message with the connection it is about, and attach it to the record.

    The record carries the connection as ``record.websocket``, for filters and
    formatters that want more than the prefix. Without a ``label``, the
    prefix is the first 8 characters of ``websocket.id``, worked out when the
    first record is made: a connection that logs nothing never needs it.

    The logger holds its connection by a weak reference: the connection holds
    its logger, and a cycle between them would leave every closed connection
    to the garbage collector instead of freeing it at once. Records made once
    the connection is gone carry ``None``.
    """

    def __init__(self, logger: LoggerLike, label: str | None, websocket: object) -> None:
        # A user's adapter would replace the record's extra with its own, and
        # drop ``websocket``, so log to the logger beneath the adapters and
        # apply their process() here instead.
        adapters: list[logging.LoggerAdapter[Any]] = []
        while isinstance(logger, logging.LoggerAdapter):
            adapters.append(logger)
            logger = logger.logger
        # Not LoggerAdapter.__init__: every connection has one of these, and
        # an ``extra`` dictionary kept for each would cost idle connections.
        self.logger = logger
        self._adapters = tuple(adapters)
        self._label = label
        self._websocket: Callable[[], object] = (
            _no_connection if websocket is None else weakref.ref(websocket)
        )

    @property
    def extra(self) -> Mapping[str, object]:
        """What each record gets as attributes: ``websocket``, the connection."""
        return {"websocket": self._websocket()}

    @extra.setter
    def extra(self, value: Mapping[str, object] | None) -> None:
        # Only to match LoggerAdapter's type: records always name their connection.
        raise AttributeError("a connection logger's extra is fixed; pass extra= when logging")

    @property
    def adapters(self) -> list[logging.LoggerAdapter[Any]]:
        """The user's adapters that the ``logger`` option wrapped the logger in, outermost first."""
        return list(self._adapters)

    @property
    def label(self) -> str:
        """The prefix of every message, between brackets."""
        label = self._label
        if label is None:
            label = self._label = str(getattr(self._websocket(), "id", ""))[:8]
        return label

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the connection's label to the message and the connection to the record.

        The user's adapters, if the ``logger`` option was one, process the
        message too; their extra goes into the record beside ``websocket``.
        """
        extra = {"websocket": self._websocket(), **kwargs.get("extra", {})}
        msg = f"[{self.label}] {msg}"
        for adapter in self._adapters:
            msg, kwargs = adapter.process(msg, kwargs)
            extra = {**(kwargs.get("extra") or {}), **extra}
        kwargs["extra"] = extra
        return msg, kwargs


def _no_connection() -> None:
    return None


def connection_logger(
    logger: LoggerLike | str | None, default: str, label: str | None, websocket: object
) -> ConnectionLogger:
    """Build the logger of one connection from the user's ``logger`` option.

    ``label`` ``None`` takes the label from ``websocket.id`` when it is first
    needed.
    """
    return ConnectionLogger(base_logger(logger, default), label, websocket)


def base_logger(logger: LoggerLike | str | None, default: str) -> LoggerLike:
    """The logger or adapter that a connection's logger wraps, from the ``logger`` option."""
    if logger is None:
        logger = default
    if isinstance(logger, str):
        return _named_logger(logger)
    return logger


# getLogger takes the logging module's lock on every call; a logger, once
# made, is never replaced, so each connection can share the first lookup.
_named_logger = functools.lru_cache(maxsize=64)(logging.getLogger)
