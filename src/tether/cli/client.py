"""``tether ws://...``: an interactive client, and a batch mode for shell pipelines."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import os
import re
import signal
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from tether.asyncio.client import ClientConnection, connect
from tether.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)
from tether.protocol.close import Close

__all__ = [
    "ClientOptions",
    "describe_close",
    "format_json_line",
    "format_message",
    "parse_json_line",
    "run_client",
]

# Exit statuses.
OK = 0
FAILED = 1
USAGE = 2

_HEX_LIMIT = 64


@dataclass
class ClientOptions:
    """What the command line asked for."""

    uri: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    subprotocols: list[str] = field(default_factory=list)
    origin: str | None = None
    compression: bool = True
    insecure: bool = False
    timeout: float = 10.0
    batch: bool = False
    wait: float = 1.0
    jsonl: bool = False


def format_message(message: str | bytes) -> str:
    """One line for a message: text as is, binary as hexadecimal."""
    if isinstance(message, str):
        return message
    shown = message[:_HEX_LIMIT].hex(" ")
    more = " ..." if len(message) > _HEX_LIMIT else ""
    return f"[binary, {len(message)} bytes] {shown}{more}"


def format_json_line(message: str | bytes) -> str:
    """One JSON value for a message: a string for text, ``{"binary": base64}`` for binary."""
    if isinstance(message, str):
        return json.dumps(message, ensure_ascii=False)
    return json.dumps({"binary": base64.b64encode(message).decode("ascii")})


def parse_json_line(line: str) -> str | bytes:
    """Read one line of ``--jsonl`` input: the inverse of :func:`format_json_line`.

    Raise :class:`ValueError` for anything but a JSON string or an object
    whose only key is ``binary``, holding base64.
    """
    value = json.loads(line)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.keys() == {"binary"} and isinstance(value["binary"], str):
        return base64.b64decode(value["binary"], validate=True)
    raise ValueError('expected a JSON string or {"binary": "<base64>"}')


def describe_close(ws: ClientConnection) -> str:
    """Say how the connection closed: the close frame each side sent, with its reason."""

    def side(close: Close | None) -> str:
        return "no close frame" if close is None else str(close)

    protocol = ws.protocol
    sent = f"sent {side(protocol.close_sent)}"
    received = f"received {side(protocol.close_rcvd)}"
    # Whoever closed first comes first.
    return f"{received}; {sent}" if protocol.close_rcvd_then_sent else f"{sent}; {received}"


def _closed_ok(ws: ClientConnection) -> bool:
    return ws.close_code in (1000, 1001)


def _ssl_context(options: ClientOptions) -> ssl.SSLContext | None:
    if not options.uri.lower().startswith("wss"):
        return None
    context = ssl.create_default_context()
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _open(options: ClientOptions) -> ClientConnection:
    return await connect(
        options.uri,
        origin=options.origin,
        subprotocols=options.subprotocols or None,
        compression="deflate" if options.compression else None,
        additional_headers=options.headers or None,
        open_timeout=options.timeout,
        close_timeout=options.timeout,
        ssl=_ssl_context(options),
    )


# OpenSSL's reasons when the peer's first bytes are not TLS: a plain server.
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "UNKNOWN_PROTOCOL",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LENGTH_MISMATCH",
    }
)


def _plain(detail: str) -> str:
    """Show the bytes literals of a library message as text: b'HTTP/1.0' as 'HTTP/1.0'."""
    return re.sub(r"\bb('(?:[^'\\]|\\.)*')", r"\1", detail)


def connect_error(uri: str, exc: BaseException, timeout: float) -> str | None:
    """One line explaining why connecting failed, or ``None`` for an unexpected error."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason_phrase}"
        if response.status_code < 400:
            # 200 and the like: a web server that ignored the upgrade.
            return (
                f"{uri} is not a WebSocket endpoint: the server answered {status} "
                "instead of switching to WebSocket"
            )
        return f"the server refused the WebSocket connection: {status}"
    if isinstance(exc, InvalidMessage):
        if isinstance(exc.__cause__, EOFError):
            return "the server closed the connection without answering the WebSocket handshake"
        return (
            f"{uri} is not a WebSocket server: its answer is not a valid HTTP/1.1 "
            f"handshake response ({_plain(str(exc))})"
        )
    if isinstance(exc, InvalidHandshake):
        return f"the opening handshake failed: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message} (--insecure skips it)"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or type(exc).__name__
        if reason in _NOT_TLS:
            return (
                f"TLS handshake failed ({reason}): the server does not speak TLS; "
                "for a plain server, use ws:// instead of wss://"
            )
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, TimeoutError):
        return f"timed out connecting to {uri} after {timeout:g} s"
    if isinstance(exc, OSError):
        # asyncio words refusals as "Connect call failed": the errno says it better.
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        return f"cannot connect to {uri}: {reason}"
    return None


def run_client(options: ClientOptions, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    """Connect, then run interactively on a terminal or in batch mode; return the exit status."""
    # The line editor needs termios: elsewhere (Windows), batch mode is what works.
    interactive = (
        not options.batch
        and stdin.isatty()
        and stdout.isatty()
        and importlib.util.find_spec("termios") is not None
    )
    try:
        return asyncio.run(_client(options, interactive, stdin, stdout, stderr))
    except KeyboardInterrupt:
        return 130


async def _client(
    options: ClientOptions, interactive: bool, stdin: TextIO, stdout: TextIO, stderr: TextIO
) -> int:
    try:
        ws = await _open(options)
    except InvalidURI as exc:
        print(f"tether: {exc}", file=stderr)
        return USAGE
    except Exception as exc:
        message = connect_error(options.uri, exc, options.timeout)
        if message is None:
            raise
        print(f"tether: {message}", file=stderr)
        return FAILED
    stop = asyncio.Event()
    input_ok = True
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    try:
        if interactive:
            await _interactive(ws, options.uri, stdin, stdout, stop)
        else:
            input_ok = await _batch(ws, options, stdin, stdout, stderr, stop=stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await ws.close()
    if interactive:
        print(f"Connection closed: {describe_close(ws)}.", file=stdout, flush=True)
    elif not _closed_ok(ws):
        print(f"tether: connection closed: {describe_close(ws)}", file=stderr, flush=True)
    return OK if _closed_ok(ws) and input_ok else FAILED


async def _receive(
    ws: ClientConnection,
    show: Callable[[str], None],
    render: Callable[[str | bytes], str] = format_message,
) -> None:
    try:
        async for message in ws:
            show(render(message))
    except ConnectionClosed:
        pass


async def _first(*aws: asyncio.Future[Any]) -> None:
    """Wait until one of ``aws`` is done."""
    await asyncio.wait(aws, return_when=asyncio.FIRST_COMPLETED)


async def _interactive(
    ws: ClientConnection, uri: str, stdin: TextIO, stdout: TextIO, stop: asyncio.Event
) -> None:
    from tether.cli.terminal import Terminal  # noqa: PLC0415  (termios: Unix only)

    with Terminal(stdin.fileno(), stdout) as terminal:
        details = f" (subprotocol {ws.subprotocol})" if ws.subprotocol else ""
        terminal.show(f"Connected to {uri}{details}.")
        terminal.show("Type a message and press Enter to send it; Ctrl-D closes.")
        receiver = asyncio.create_task(_receive(ws, lambda line: terminal.show("< " + line)))
        stopped = asyncio.create_task(stop.wait())
        try:
            while True:
                next_action = asyncio.create_task(terminal.actions.get())
                await _first(next_action, receiver, stopped)
                if not next_action.done():
                    next_action.cancel()
                    break
                action = next_action.result()
                if action.kind != "line":
                    break
                try:
                    await ws.send(action.text)
                except ConnectionClosed:
                    break
            # Close while the prompt is still up, so that late messages show above it.
            await ws.close()
            await receiver
        finally:
            receiver.cancel()
            stopped.cancel()


async def _batch(
    ws: ClientConnection,
    options: ClientOptions,
    stdin: TextIO,
    stdout: TextIO,
    stderr: TextIO,
    *,
    stop: asyncio.Event,
) -> bool:
    """Send stdin's lines and print what comes; return ``False`` if a line was unusable."""

    def show(line: str) -> None:
        stdout.write(line + "\n")
        stdout.flush()

    receiver = asyncio.create_task(
        _receive(ws, show, format_json_line if options.jsonl else format_message)
    )
    stopped = asyncio.create_task(stop.wait())
    lines = _read_lines(stdin)
    number = 0
    try:
        while True:
            next_line = asyncio.create_task(lines.get())
            await _first(next_line, receiver, stopped)
            if not next_line.done():
                next_line.cancel()
                return True
            line = next_line.result()
            if line is None:
                break
            number += 1
            message: str | bytes = line
            if options.jsonl:
                try:
                    message = parse_json_line(line)
                except ValueError as exc:
                    print(f"tether: --jsonl: line {number} of stdin: {exc}", file=stderr)
                    return False
            try:
                await ws.send(message)
            except ConnectionClosed:
                return True
        # stdin is over: replies may still be on their way.
        await asyncio.wait(
            [receiver, stopped], timeout=options.wait, return_when=asyncio.FIRST_COMPLETED
        )
        return True
    finally:
        stopped.cancel()
        await ws.close()
        await receiver


def _read_lines(stdin: TextIO) -> asyncio.Queue[str | None]:
    """Read ``stdin`` line by line in a thread; ``None`` marks its end.

    A daemon thread, because a blocking read cannot be interrupted: when the
    connection ends first, the process must be able to exit anyway.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> None:
        # Once the loop is closed, nobody is waiting anymore.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def read() -> None:
        try:
            for line in stdin:
                put(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        put(None)

    threading.Thread(target=read, name="tether-stdin", daemon=True).start()
    return queue


def parse_header(value: str) -> tuple[str, str]:
    """Split ``"Name: value"``; raise :class:`ValueError` without a name and a colon."""
    name, colon, rest = value.partition(":")
    name = name.strip()
    if not colon or not name:
        raise ValueError(f"expected 'Name: value', got {value!r}")
    return name, rest.strip()
