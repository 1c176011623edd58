"""The Starlette application the ASGI tests serve with uvicorn, and its endpoints.

The FastAPI application of :mod:`tests.asgi.fastapi_app` has the same
WebSocket endpoints, written once here against Starlette's ``WebSocket``
(which FastAPI uses too); it lives apart so that the Starlette servers do not
import FastAPI. Everything the
application is given is recorded: a connection opened with ``?id=NAME``
keeps the ASGI messages its ``receive`` returned, the types of those it
sent (but ``websocket.send``) and the errors its ``send`` raised, and
``GET /seen/NAME`` returns them as JSON, so that a test compares what the
application saw under tether and under uvicorn's own classes.

Endpoints (under ``--root-path``, if the server has one):

- ``/echo``: sends every message back.
- ``/ack``: answers each message that does not start with ``ack`` with
  ``ack:`` and the message; for peers that echo everything themselves.
- ``/chat``: every message goes to every connection of the room.
- ``/scope``: sends the scope as JSON, then echoes.
- ``/subprotocol``: accepts with ``chat.v2`` when the client offers it.
- ``/deny``: refuses with HTTP 403 and a custom body; ``/deny-stream`` with
  a body streamed in pieces.
- ``/close-after``: closes with 4002 after the first message, then reads on.
- ``/stall?seconds=S``: reads nothing for S seconds, then counts the
  messages up to the text ``end`` and sends the count.
- ``/refuse``: closes before accepting (HTTP 403 without a body of its own).
- ``/raise`` raises before accepting, ``/raise-after`` after.
- ``/flood?count=N``: sends N messages of 64 KiB, counting in ``/seen``
  how many went out (``flooded``).
- ``/headers``: accepts with an extra response header.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

SEEN: dict[str, list[Any]] = defaultdict(list)
"""What the application saw, by the ``id`` of the connection."""

ROOMS: dict[str, set[WebSocket]] = defaultdict(set)

FLOOD_SIZE = 65536


def _summary(message: Message) -> Any:
    """An ASGI message as JSON can hold it: payloads by kind and length."""
    summary = dict(message)
    for key in ("text", "bytes"):
        value = summary.get(key)
        if value is not None:
            summary[key] = f"{type(value).__name__}:{len(value)}"
    return summary


async def _echo(ws: WebSocket) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await ws.send_text(message["text"])
        else:
            await ws.send_bytes(message["bytes"])


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    await _echo(ws)


async def ack(ws: WebSocket) -> None:
    await ws.accept()
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            text = message["bytes"].decode()
        if not text.startswith("ack"):
            await ws.send_text("ack:" + text)


async def chat(ws: WebSocket) -> None:
    room = ROOMS[ws.query_params.get("room", "main")]
    await ws.accept()
    room.add(ws)
    try:
        while True:
            text = await ws.receive_text()
            for member in list(room):
                try:
                    await member.send_text(text)
                except (WebSocketDisconnect, RuntimeError):
                    room.discard(member)
    except WebSocketDisconnect:
        pass
    finally:
        room.discard(ws)


async def scope(ws: WebSocket) -> None:
    await ws.accept()
    described = {
        key: ws.scope[key]
        for key in ("type", "asgi", "http_version", "scheme", "root_path", "path", "subprotocols")
    }
    described["raw_path"] = ws.scope["raw_path"].decode("latin-1")
    described["query_string"] = ws.scope["query_string"].decode("latin-1")
    described["server"] = list(ws.scope["server"])
    described["client"] = list(ws.scope["client"])
    described["headers"] = [
        [name.decode("latin-1"), value.decode("latin-1")] for name, value in ws.scope["headers"]
    ]
    described["extensions"] = sorted(ws.scope.get("extensions", {}))
    described["state"] = sorted(ws.scope.get("state", {}))
    await ws.send_text(json.dumps(described))
    await _echo(ws)


async def subprotocol(ws: WebSocket) -> None:
    offered = ws.scope["subprotocols"]
    await ws.accept(subprotocol="chat.v2" if "chat.v2" in offered else None)
    await _echo(ws)


async def headers(ws: WebSocket) -> None:
    await ws.accept(headers=[(b"x-tether-test", b"yes")])
    await _echo(ws)


async def deny(ws: WebSocket) -> None:
    await ws.send_denial_response(
        PlainTextResponse("go away", status_code=403, headers={"x-denied": "1"})
    )


async def deny_stream(ws: WebSocket) -> None:
    async def pieces() -> Any:
        for index in range(3):
            await asyncio.sleep(0)
            yield f"piece {index};"

    await ws.send_denial_response(StreamingResponse(pieces(), status_code=401))


async def close_after(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    await ws.close(code=4002, reason="app bye")
    # What the application gets once it closed: its own close, as a disconnect.
    await ws.receive()


async def stall(ws: WebSocket) -> None:
    await ws.accept()
    await asyncio.sleep(float(ws.query_params.get("seconds", "1")))
    count = 0
    while (message := await ws.receive())["type"] == "websocket.receive":
        if message.get("text") == "end":
            await ws.send_text(str(count))
            break
        count += 1
    await _echo(ws)


async def refuse(ws: WebSocket) -> None:
    await ws.close(code=1008)


async def raise_before(ws: WebSocket) -> None:
    raise RuntimeError("raised before accepting")


async def raise_after(ws: WebSocket) -> None:
    await ws.accept()
    await ws.receive_text()
    raise RuntimeError("raised after accepting")


async def flood(ws: WebSocket) -> None:
    count = int(ws.query_params.get("count", "100"))
    name = ws.query_params.get("id", "")
    await ws.accept()
    chunk = bytes(FLOOD_SIZE)
    sent = {"flooded": 0}
    SEEN[name].append(sent)
    try:
        for _ in range(count):
            await ws.send_bytes(chunk)
            sent["flooded"] += 1
    except (WebSocketDisconnect, OSError, RuntimeError):
        return
    await _echo(ws)


async def seen(request: Request) -> Response:
    return JSONResponse(SEEN.get(request.path_params["name"], []))


WEBSOCKETS = {
    "/echo": echo,
    "/ack": ack,
    "/chat": chat,
    "/scope": scope,
    "/subprotocol": subprotocol,
    "/headers": headers,
    "/deny": deny,
    "/deny-stream": deny_stream,
    "/close-after": close_after,
    "/stall": stall,
    "/refuse": refuse,
    "/raise": raise_before,
    "/raise-after": raise_after,
    "/flood": flood,
}


class Recorder:
    """ASGI middleware: record what a WebSocket connection with ``?id=`` receives and raises."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        query = dict(
            pair.split("=", 1) for pair in scope["query_string"].decode().split("&") if "=" in pair
        )
        name = query.get("id")
        if name is None:
            await self.app(scope, receive, send)
            return
        log = SEEN[name]

        async def recording_receive() -> Message:
            message = await receive()
            log.append(_summary(message))
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] != "websocket.send":
                log.append({"send": message["type"]})
            try:
                await send(message)
            except Exception as exc:
                log.append({"raised": type(exc).__name__, "sending": message["type"]})
                raise

        try:
            await self.app(scope, recording_receive, recording_send)
        except Exception as exc:
            log.append({"app raised": type(exc).__name__})
            raise


def _starlette() -> Starlette:
    routes: list[Any] = [Route("/seen/{name}", seen)]
    routes += [WebSocketRoute(path, endpoint) for path, endpoint in WEBSOCKETS.items()]
    return Starlette(routes=routes)


starlette_app = Recorder(_starlette())
"""The Starlette application: ``tests.asgi.apps:starlette_app``."""
