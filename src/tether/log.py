"""Loggers of tether's connections: every record names its connection."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

__all__ = ["ConnectionLogger", "LoggerLike", "connection_logger"]

LoggerLike = logging.Logger | logging.LoggerAdapter[Any]
"""A logger, or an adapter around one."""


class ConnectionLogger(logging.LoggerAdapter[Any]):
    """Prefix each message with the connection it is about, and attach it to the record.

    The record carries the connection as ``record.websocket``, for filters and
    formatters that want more than the prefix.
    """

    def __init__(self, logger: LoggerLike, label: str, websocket: object) -> None:
        # A user's adapter would replace the record's extra with its own, and
        # drop ``websocket``, so log to the logger beneath the adapters and
        # apply their process() here instead.
        self.adapters: list[logging.LoggerAdapter[Any]] = []
        while isinstance(logger, logging.LoggerAdapter):
            self.adapters.append(logger)
            logger = logger.logger
        super().__init__(logger, {"websocket": websocket})
        self.label = label

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        """Add the connection's label to the message and the connection to the record.

        The user's adapters, if the ``logger`` option was one, process the
        message too; their extra goes into the record beside ``websocket``.
        """
        extra = {**(self.extra or {}), **kwargs.get("extra", {})}
        msg = f"[{self.label}] {msg}"
        for adapter in self.adapters:
            msg, kwargs = adapter.process(msg, kwargs)
            extra = {**(kwargs.get("extra") or {}), **extra}
        kwargs["extra"] = extra
        return msg, kwargs


def connection_logger(
    logger: LoggerLike | str | None, default: str, label: str, websocket: object
) -> ConnectionLogger:
    """Build the logger of one connection from the user's ``logger`` option."""
    if logger is None:
        logger = default
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    return ConnectionLogger(logger, label, websocket)
