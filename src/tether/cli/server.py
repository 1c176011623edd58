"""``tether serve``: the demo server, with an echo endpoint, chat rooms and a chat page.

With ``--workers N`` it runs N processes on the port (:mod:`tether.workers`);
with ``--redis URL`` their chat rooms are shared through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.resources
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from tether.asyncio.router import route
from tether.asyncio.server import ServerConnection, serve
from tether.asyncio.topics import Topics
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response
from tether.topics.broker import Broker

__all__ = ["Demo", "run_server"]


def _page() -> bytes:
    return importlib.resources.files("tether.cli").joinpath("page.html").read_bytes()


class Demo:
    """The endpoints of the demo: ``/echo``, ``/chat``, ``/chat/{room}``, and the page at ``/``.

    With a ``broker``, the chat rooms are shared with the other processes
    using it.
    """

    def __init__(self, broker: Broker | None = None) -> None:
        self.topics = Topics(broker=broker)
        """The chat rooms: one topic each."""
        self.page = _page()

    async def echo(self, ws: ServerConnection) -> None:
        """Send every message back."""
        async for message in ws:
            await ws.send(message)

    async def chat(self, ws: ServerConnection, room: str = "") -> None:
        """Send every message to everyone in the room, its sender included."""
        topic = f"chat:{room}"
        self.topics.subscribe(ws, topic)
        async for message in ws:
            await self.topics.publish(topic, message)

    def routes(self) -> dict[str, Callable[..., Awaitable[None]]]:
        """The WebSocket endpoints by path."""
        return {"/echo": self.echo, "/chat": self.chat, "/chat/{room}": self.chat}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer a plain HTTP request for ``/`` with the page; let WebSocket requests through."""
        if request.path.partition("?")[0] != "/" or _is_websocket(request):
            return None
        headers = Headers(
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(self.page))),
                ("Cache-Control", "no-store"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, self.page)


def _is_websocket(request: Request) -> bool:
    tokens = ",".join(request.headers.get_all("Upgrade")).split(",")
    return any(token.strip().lower() == "websocket" for token in tokens)


def _url_host(host: str) -> str:
    """The host to put in the URLs printed: a wildcard address is reached on loopback."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _command() -> str:
    """How to run this command from the current directory, for the hint printed at startup."""
    found = shutil.which("tether")
    if found is not None and Path(found).resolve() == Path(sys.argv[0]).resolve():
        return "tether"
    script = Path(sys.executable).parent / "tether"
    if not script.exists():
        return f"{sys.executable} -m tether"
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(script)
        if not relative.startswith(".."):
            return relative if "/" in relative else f"./{relative}"
    return str(script)


def run_server(
    host: str,
    port: int,
    stdout: TextIO,
    *,
    workers: int = 1,
    redis: str | None = None,
) -> int:
    """Run the demo server until Ctrl-C or SIGTERM; return the exit status.

    With ``workers`` over 1, that many processes share the port; with a
    ``redis`` URL, chat rooms are shared through Redis.
    """
    if workers > 1:
        return _run_workers(host, port, stdout, workers, redis)
    try:
        asyncio.run(_serve(host, port, stdout, redis))
    except KeyboardInterrupt:
        pass  # Without signal handlers (on Windows), Ctrl-C ends the loop this way.
    except OSError as exc:
        _cannot_listen(host, port, exc)
        return 1
    print("Server stopped.", file=stdout, flush=True)
    return 0


def _cannot_listen(host: str, port: int, exc: OSError) -> None:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    print(f"tether: cannot listen on {_url_host(host)}:{port}: {reason}", file=sys.stderr)


def _banner(host: str, port: int, stdout: TextIO, note: str = "") -> None:
    address = f"{_url_host(host)}:{port}"
    command = _command()
    print(
        f"tether demo server listening on {address}{note}\n"
        f"  Chat in a browser:   http://{address}/\n"
        f"  Chat in a terminal:  {command} ws://{address}/chat\n"
        f"  Echo:                {command} ws://{address}/echo\n"
        "Press Ctrl-C to stop.",
        file=stdout,
        flush=True,
    )


def _broker(redis: str | None) -> Broker | None:
    if redis is None:
        return None
    from tether.topics.redis import RedisBroker  # noqa: PLC0415

    return RedisBroker(redis)


def demo_server(host: str, port: int, redis: str | None, **kwargs: Any) -> serve:
    """The demo's server in one worker process: a new :class:`Demo`, the rooms on ``redis``."""
    demo = Demo(_broker(redis))
    return route(demo.routes(), host, port, process_request=demo.process_request, **kwargs)


def _run_workers(host: str, port: int, stdout: TextIO, workers: int, redis: str | None) -> int:
    from tether.workers import Supervisor  # noqa: PLC0415

    # Crashed and killed workers are news for whoever runs the command.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tether serve: %(message)s"))
    workers_logger = logging.getLogger("tether.workers")
    workers_logger.addHandler(handler)
    workers_logger.setLevel(logging.WARNING)
    if port == 0:
        # Each worker would get a port of its own: choose one for all.
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    supervisor = Supervisor(functools.partial(demo_server, host, port, redis), workers)
    note = f" with {workers} workers" + (f", rooms shared through {redis}" if redis else "")
    supervisor.on_ready = lambda: _banner(host, port, stdout, note)
    status = supervisor.run()
    print("Server stopped.", file=stdout, flush=True)
    return status


async def _serve(host: str, port: int, stdout: TextIO, redis: str | None = None) -> None:
    demo = Demo(_broker(redis))
    async with route(demo.routes(), host, port, process_request=demo.process_request) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        _banner(host, bound, stdout)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, server.close)
        await server.serve_forever()
    await demo.topics.aclose()
