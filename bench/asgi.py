"""The ASGI servers of the benchmark: one Starlette echo app under uvicorn, with each ``--ws``.

The application is the same for every row; only uvicorn's WebSocket
implementation changes: its default ``websockets-sansio``, ``wsproto``, and
tether's :class:`tether.asgi.protocol.WebSocketProtocol`. uvicorn runs with
``--http httptools --loop uvloop`` (its fastest set-up), in the benchmark's
server process, with its defaults otherwise (permessage-deflate offered,
16 MiB messages), without access logs. Where granian is installed (the
``bench`` extra installs it where it has wheels), the same app also runs
under granian, embedded in the server process with one runtime thread, so
that its CPU time counts like the others'.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import Callable
from typing import Any

from bench.workloads import MAX_SIZE, Sink, is_sink

__all__ = ["GRANIAN", "WS_IMPLEMENTATIONS", "serve_granian", "serve_uvicorn"]

WS_IMPLEMENTATIONS = {
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-wsproto": "wsproto",
    "uvicorn-tether": "tether.asgi:WebSocketProtocol",
}
"""Benchmark library names and the ``--ws`` value each runs uvicorn with."""

GRANIAN = importlib.util.find_spec("granian") is not None
"""Whether granian is installed: its row is left out otherwise."""


def echo_app() -> Any:
    """The Starlette application: echo each message with its type, or be the sink when asked."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        sink: Sink | None = None
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if sink is not None:
                if text is not None:
                    await ws.send_text(sink.summary())
                    sink = None
                else:
                    sink.feed(message["bytes"])
            elif text is not None:
                if is_sink(text):
                    sink = Sink(text)
                else:
                    await ws.send_text(text)
            else:
                await ws.send_bytes(message["bytes"])

    return Starlette(routes=[WebSocketRoute("/", echo)])


def serve_uvicorn(name: str, ready: Callable[[int], None]) -> None:
    """Run the echo app under uvicorn with ``name``'s WebSocket implementation."""
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(
        echo_app(),
        ws=WS_IMPLEMENTATIONS[name],
        http="httptools",
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        access_log=False,
        ws_max_size=MAX_SIZE,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    ready(sock.getsockname()[1])
    server.run(sockets=[sock])


def serve_granian(ready: Callable[[int], None]) -> None:
    """Run the echo app under granian's embedded server, on uvloop."""
    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    # granian binds the port itself and does not say which: a free one, found first.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server(
        echo_app(),
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        log_enabled=False,
        backlog=2048,
    )

    async def main() -> None:
        serving = asyncio.ensure_future(server.serve())
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        ready(port)
        await serving

    uvloop.run(main())
