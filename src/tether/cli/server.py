"""``tether serve``: the demo server, with an echo endpoint, a chat room and a chat page."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import TextIO

from tether.asyncio.broadcast import broadcast
from tether.asyncio.router import route
from tether.asyncio.server import ServerConnection
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

__all__ = ["Demo", "run_server"]


def _page() -> bytes:
    return importlib.resources.files("tether.cli").joinpath("page.html").read_bytes()


class Demo:
    """The endpoints of the demo: ``/echo``, ``/chat``, and the page at ``/``."""

    def __init__(self) -> None:
        self.room: set[ServerConnection] = set()
        """The connections in the chat room."""
        self.page = _page()

    async def echo(self, ws: ServerConnection) -> None:
        """Send every message back."""
        async for message in ws:
            await ws.send(message)

    async def chat(self, ws: ServerConnection) -> None:
        """Send every message to everyone in the room, its sender included."""
        self.room.add(ws)
        try:
            async for message in ws:
                broadcast(self.room, message)
        finally:
            self.room.discard(ws)

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


def run_server(host: str, port: int, stdout: TextIO) -> int:
    """Run the demo server until Ctrl-C or SIGTERM; return the exit status."""
    try:
        asyncio.run(_serve(host, port, stdout))
    except KeyboardInterrupt:
        pass  # Without signal handlers (on Windows), Ctrl-C ends the loop this way.
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        print(f"tether: cannot listen on {_url_host(host)}:{port}: {reason}", file=sys.stderr)
        return 1
    print("Server stopped.", file=stdout, flush=True)
    return 0


async def _serve(host: str, port: int, stdout: TextIO) -> None:
    demo = Demo()
    routes = {"/echo": demo.echo, "/chat": demo.chat}
    async with route(routes, host, port, process_request=demo.process_request) as server:
        bound = next(iter(server.sockets)).getsockname()[1]
        address = f"{_url_host(host)}:{bound}"
        command = _command()
        print(
            f"tether demo server listening on {address}\n"
            f"  Chat in a browser:   http://{address}/\n"
            f"  Chat in a terminal:  {command} ws://{address}/chat\n"
            f"  Echo:                {command} ws://{address}/echo\n"
            "Press Ctrl-C to stop.",
            file=stdout,
            flush=True,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, server.close)
        await server.serve_forever()
