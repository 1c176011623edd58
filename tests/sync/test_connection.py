"""What only the threading connection does: threads sending at once, its reader thread.

The behaviour every API shares (receiving, sending, pings, closing,
attributes) is tested once for all of them in ``tests/behaviour``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tether.exceptions import ConnectionClosedError
from tether.log import ConnectionLogger
from tether.sync import ClientConnection, Server, ServerConnection, connect

from .conftest import (
    TIMEOUT,
    RawServer,
    ServerFactory,
    bounded,
    start_thread,
    uri_of,
)


def open_client(server: Server, **kwargs: object) -> ClientConnection:
    """Connect to ``server`` with bounded timeouts."""
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    return connect(uri_of(server), **kwargs)  # type: ignore[arg-type]


# Sending


def test_send_from_many_threads_does_not_interleave(echo_server: Server) -> None:
    threads, count = 16, 200
    with open_client(echo_server, max_queue=None) as ws:

        def sender(n: int) -> None:
            for i in range(count):
                if i % 3 == 0:
                    ws.send([f"{n}:", f"{i}:", "x" * (i % 7)])
                else:
                    ws.send(f"{n}:{i}:" + "x" * (i % 7))

        workers = [start_thread(lambda n=n: sender(n)) for n in range(threads)]  # type: ignore[misc]
        received = [ws.recv(timeout=TIMEOUT) for _ in range(threads * count)]
        for worker in workers:
            worker.join(TIMEOUT)
            assert not worker.is_alive()
    per_thread: dict[int, list[int]] = {n: [] for n in range(threads)}
    for message in received:
        assert isinstance(message, str)
        n, i, filler = message.split(":")
        assert filler == "x" * (int(i) % 7)
        per_thread[int(n)].append(int(i))
    # Each thread's messages arrive whole and in the order it sent them.
    assert per_thread == {n: list(range(count)) for n in range(threads)}


# Keepalive and flow control


def test_large_messages_both_ways_do_not_deadlock(start_server: ServerFactory) -> None:
    # Both peers write 20 MiB without reading first: neither may stop reading
    # because its own write is stuck.
    size = 20 * 1024 * 1024

    def handler(ws: ServerConnection) -> None:
        sender = start_thread(lambda: ws.send(b"s" * size))
        received = ws.recv(timeout=TIMEOUT)
        sender.join(TIMEOUT)
        ws.send(b"ok" if received == b"c" * size and not sender.is_alive() else b"bad")

    server = start_server(handler, max_size=None, compression=None)
    with open_client(server, max_size=None, compression=None) as ws:
        sender = start_thread(lambda: ws.send(b"c" * size))
        assert ws.recv(timeout=TIMEOUT) == b"s" * size
        assert ws.recv(timeout=TIMEOUT) == b"ok"
        sender.join(TIMEOUT)
        assert not sender.is_alive()


def test_recv_timeout_while_a_write_is_stuck(raw_server: RawServer) -> None:
    ws = connect(raw_server.uri, open_timeout=TIMEOUT, close_timeout=0.1, ping_interval=None)
    raw_server.peer()  # It never reads.
    failures: list[BaseException] = []

    def send() -> None:
        try:
            ws.send(b"x" * (64 * 1024 * 1024))
        except BaseException as exc:
            failures.append(exc)

    stuck = start_thread(send)
    try:
        # recv's timeout holds even while a send waits for the peer to read.
        with pytest.raises(TimeoutError):
            bounded(lambda: ws.recv(timeout=0.1))
    finally:
        # close() is bounded by close_timeout even with the write stuck, and
        # the stuck send then fails.
        bounded(ws.close)
        stuck.join(TIMEOUT)
        assert not stuck.is_alive()
    assert len(failures) == 1
    assert isinstance(failures[0], ConnectionClosedError)


# What an idle connection keeps: nothing it has not needed yet


def test_a_connection_is_its_own_iterator(start_server: ServerFactory) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send("one")
        ws.send(b"two")
        assert ws.request is not None
        ws.close(1000 if ws.request.path == "/ok" else 1011)

    server = start_server(handler)
    with connect(uri_of(server, "/ok"), open_timeout=TIMEOUT) as ws:
        assert iter(ws) is ws
        assert list(ws) == ["one", b"two"]
        with pytest.raises(StopIteration):
            next(ws)
    with connect(uri_of(server, "/fail"), open_timeout=TIMEOUT) as ws:
        assert [next(ws), next(ws)] == ["one", b"two"]
        with pytest.raises(ConnectionClosedError):
            next(ws)


class Records(logging.Handler):
    """Keep the records logged."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[tuple[logging.Logger, Records]]:
    logger = logging.getLogger("tether.tests.lazy")
    handler = Records()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


@pytest.mark.parametrize("level", [logging.WARNING, logging.INFO])
def test_the_logger_is_made_by_the_first_record(
    start_server: ServerFactory, records: tuple[logging.Logger, Records], level: int
) -> None:
    logger, handler = records
    logger.setLevel(level)
    made_before: list[bool] = []

    def log_once(ws: ServerConnection) -> None:
        made_before.append(ws._logger is not None)
        ws.logger.warning("from the handler")
        ws.send(str(ws.id))

    server = start_server(log_once, logger=logger)
    with connect(uri_of(server, "/lazy"), open_timeout=TIMEOUT) as ws:
        connection_id = ws.recv(timeout=TIMEOUT)
    # At INFO, the handshake's record made it; at WARNING, nothing did.
    assert made_before == [level == logging.INFO]
    messages = [record.getMessage() for record in handler.records]
    label = f"[{str(connection_id)[:8]}]"
    expected = [f"{label} from the handler"]
    if level == logging.INFO:
        expected.insert(0, f"{label} connection open: /lazy")
    assert messages[: len(expected)] == expected
    assert all(str(record.websocket.id) == connection_id for record in handler.records)  # type: ignore[attr-defined]


def test_a_subclass_may_set_its_own_logger(
    start_server: ServerFactory, records: tuple[logging.Logger, Records]
) -> None:
    logger, handler = records
    logger.setLevel(logging.INFO)

    class Labelled(ServerConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.logger = ConnectionLogger(logger, "mine", self)

    def greet(ws: ServerConnection) -> None:
        ws.logger.info("hello")

    server = start_server(greet, create_connection=Labelled)
    with connect(uri_of(server), open_timeout=TIMEOUT) as ws:
        ws.wait_closed(TIMEOUT)
    assert [record.getMessage() for record in handler.records] == [
        "[mine] connection open: /",
        "[mine] hello",
    ]
