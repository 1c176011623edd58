"""Per-connection loggers: every record names its connection."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tether.log import ConnectionLogger, connection_logger


class Conn:
    """Stands for a connection: the adapter only attaches it to records."""


@pytest.fixture
def caplog_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="test_log")
    return caplog


def test_prefix_and_websocket(caplog_debug: pytest.LogCaptureFixture) -> None:
    conn = Conn()
    logger = ConnectionLogger(logging.getLogger("test_log.plain"), "abcd1234", conn)
    logger.info("hello %s", "world")
    (record,) = caplog_debug.records
    assert record.name == "test_log.plain"
    assert record.levelno == logging.INFO
    assert record.getMessage() == "[abcd1234] hello world"
    assert record.websocket is conn  # type: ignore[attr-defined]
    assert logger.label == "abcd1234"
    assert logger.adapters == []
    assert logger.extra == {"websocket": conn}


def test_caller_extra_is_kept(caplog_debug: pytest.LogCaptureFixture) -> None:
    conn = Conn()
    logger = ConnectionLogger(logging.getLogger("test_log.extra"), "label", conn)
    logger.warning("msg", extra={"peer": "10"})
    (record,) = caplog_debug.records
    assert record.peer == "10"  # type: ignore[attr-defined]
    assert record.websocket is conn  # type: ignore[attr-defined]


class Tagging(logging.LoggerAdapter[Any]):
    """A user's adapter that rewrites the message and sets its own extra."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = dict(self.extra or {})
        return f"<{msg}>", kwargs


def test_user_adapters_are_applied(caplog_debug: pytest.LogCaptureFixture) -> None:
    base = logging.getLogger("test_log.adapted")
    inner = Tagging(base, {"app": "demo", "websocket": "not this"})
    outer = logging.LoggerAdapter(inner, {"tenant": "t1"})
    conn = Conn()
    logger = ConnectionLogger(outer, "lbl", conn)
    # Records go straight to the logger beneath the adapters.
    assert logger.logger is base
    assert logger.adapters == [outer, inner]
    logger.error("boom")
    (record,) = caplog_debug.records
    assert record.name == "test_log.adapted"
    assert record.getMessage() == "<[lbl] boom>"
    assert record.app == "demo"  # type: ignore[attr-defined]
    # The connection wins over an adapter's key of the same name.
    assert record.websocket is conn  # type: ignore[attr-defined]


def test_adapter_without_extra(caplog_debug: pytest.LogCaptureFixture) -> None:
    logger = ConnectionLogger(
        logging.LoggerAdapter(logging.getLogger("test_log.bare"), None), "x", None
    )
    logger.debug("quiet")
    (record,) = caplog_debug.records
    assert record.getMessage() == "[x] quiet"
    assert record.websocket is None  # type: ignore[attr-defined]


def test_connection_logger_default() -> None:
    conn = Conn()
    logger = connection_logger(None, "test_log.default", "id", conn)
    assert isinstance(logger, ConnectionLogger)
    assert logger.logger is logging.getLogger("test_log.default")
    assert logger.label == "id"
    assert logger.extra == {"websocket": conn}


def test_connection_logger_name() -> None:
    logger = connection_logger("test_log.named", "test_log.default", "id", None)
    assert logger.logger is logging.getLogger("test_log.named")


def test_connection_logger_logger_and_adapter() -> None:
    base = logging.getLogger("test_log.given")
    assert connection_logger(base, "unused", "id", None).logger is base
    adapter = logging.LoggerAdapter(base, {})
    logger = connection_logger(adapter, "unused", "id", None)
    assert logger.logger is base
    assert logger.adapters == [adapter]


def test_logger_does_not_keep_its_connection(caplog_debug: pytest.LogCaptureFixture) -> None:
    conn = Conn()
    logger = ConnectionLogger(logging.getLogger("test_log.gone"), None, conn)
    del conn
    # The weak reference is gone with the connection: records name nobody.
    logger.info("late")
    (record,) = caplog_debug.records
    assert record.websocket is None  # type: ignore[attr-defined]
    assert record.getMessage() == "[] late"
    assert logger.extra == {"websocket": None}
