"""Logs of the asyncio connections: which logger, what each record names, nothing printed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tether.asyncio.connection import Connection

from .conftest import ServerFactory
from .pairs import Side, open_pair, open_raw_pair


def connection_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if isinstance(getattr(r, "websocket", None), Connection)]


async def exchange(start_server: ServerFactory, side: Side) -> tuple[Connection, Connection]:
    async with open_pair(start_server, side) as pair:
        await pair.ours.send("hello")
        assert await pair.theirs.recv() == "hello"
        await pair.ours.close()
        return pair.ours, pair.theirs


async def test_records_go_to_the_role_loggers(
    start_server: ServerFactory, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    ours, theirs = await exchange(start_server, side)
    records = connection_records(caplog)
    names = {r.name for r in records}
    assert names == {"tether.client", "tether.server"}
    for record in records:
        ws = record.websocket  # type: ignore[attr-defined]
        assert ws in (ours, theirs)
        role = "client" if ws is (ours if side == "client" else theirs) else "server"
        assert record.name == f"tether.{role}"
        assert record.getMessage().startswith(f"[{str(ws.id)[:8]}] ")
    # Both connections logged something of their own.
    assert {id(r.websocket) for r in records} == {id(ours), id(theirs)}  # type: ignore[attr-defined]


async def test_keepalive_timeout_is_logged(
    start_server: ServerFactory, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tether")
    async with open_raw_pair(start_server, side, ping_interval=0.05, ping_timeout=0.05) as (
        ours,
        _,
    ):
        await ours.wait_closed()
    messages = [r.getMessage() for r in connection_records(caplog) if r.websocket is ours]  # type: ignore[attr-defined]
    label = f"[{str(ours.id)[:8]}] "
    assert f"{label}no pong within 0.05 seconds" in messages
    assert f"{label}failing connection with code 1011: keepalive ping timeout" in messages


@pytest.fixture
def no_log_handlers() -> Iterator[None]:
    """Remove every handler, pytest's too, as in a program that configures no logging.

    Python then prints warnings and errors through its last-resort handler.
    """
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


@pytest.mark.usefixtures("no_log_handlers")
async def test_nothing_is_printed(
    start_server: ServerFactory, side: Side, capsys: pytest.CaptureFixture[str]
) -> None:
    await exchange(start_server, side)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("kind", ["logger", "adapter", "name"])
async def test_logger_option(
    start_server: ServerFactory, side: Side, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom")
    caplog.set_level(logging.DEBUG, logger="tether")
    option: logging.Logger | logging.LoggerAdapter[logging.Logger] | str
    if kind == "logger":
        option = logging.getLogger("custom.logger")
    elif kind == "adapter":
        option = logging.LoggerAdapter(logging.getLogger("custom.adapter"), {"app": "demo"})
    else:
        option = "custom.name"
    async with open_pair(start_server, side, ours={"logger": option}) as pair:
        await pair.ours.close()
    ours = pair.ours
    records = [r for r in caplog.records if getattr(r, "websocket", None) is ours]
    assert records
    for record in records:
        assert record.name == f"custom.{kind}"
        assert record.getMessage().startswith(f"[{str(ours.id)[:8]}] ")
        if kind == "adapter":
            assert record.app == "demo"  # type: ignore[attr-defined]
    # The other side keeps its default logger.
    theirs = [r for r in caplog.records if getattr(r, "websocket", None) is pair.theirs]
    assert theirs
    assert {r.name for r in theirs} == {"tether.server" if side == "client" else "tether.client"}
