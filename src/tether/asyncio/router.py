"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tether.asyncio.server import ProcessRequest, ServerConnection, serve
from tether.protocol.close import CloseCode
from tether.protocol.http11 import Request, Response

__all__ = ["RouteHandler", "Router", "route"]

RouteHandler = Callable[..., Awaitable[None]]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


@dataclass(frozen=True, slots=True)
class _Segment:
    """One segment of a pattern: a literal, or a parameter's name."""

    text: str
    param: bool = False


class _Pattern:
    """A compiled path pattern, matched segment by segment: no regular expression."""

    def __init__(self, pattern: str) -> None:
        if not pattern.startswith("/"):
            raise ValueError(f"pattern must start with '/': {pattern!r}")
        self.pattern = pattern
        self.segments: list[_Segment] = []
        self.rest: str | None = None  # The name of a trailing {name:path} parameter.
        names: set[str] = set()
        parts = pattern.split("/")[1:]
        for index, part in enumerate(parts):
            if not (part.startswith("{") and part.endswith("}")):
                if "{" in part or "}" in part:
                    raise ValueError(f"a parameter must fill its segment: {pattern!r}")
                self.segments.append(_Segment(part))
                continue
            name, colon, kind = part[1:-1].partition(":")
            if not name.isidentifier():
                raise ValueError(f"invalid parameter name {name!r} in {pattern!r}")
            if name in names:
                raise ValueError(f"parameter {name!r} appears twice in {pattern!r}")
            names.add(name)
            if not colon:
                self.segments.append(_Segment(name, param=True))
            elif kind == "path" and index == len(parts) - 1:
                self.rest = name
            elif kind == "path":
                raise ValueError(f"a {{name:path}} parameter must come last: {pattern!r}")
            else:
                raise ValueError(f"unknown parameter kind {kind!r} in {pattern!r}")

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """Match the raw segments of a path (after its leading ``/``); return the parameters."""
        segments = self.segments
        count = len(segments)
        if self.rest is None:
            if len(parts) != count:
                return None
        elif len(parts) <= count:
            return None
        params: dict[str, str] = {}
        for segment, raw in zip(segments, parts, strict=False):
            value = unquote(raw)
            if segment.param:
                if not value:
                    return None
                params[segment.text] = value
            elif value != segment.text:
                return None
        if self.rest is not None:
            rest = unquote("/".join(parts[count:]))
            if not rest:
                return None
            params[self.rest] = rest
        return params


class Router:
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` maps patterns to handlers. A pattern is made of ``/``-separated
    segments, each a literal or a parameter: ``{name}`` takes one non-empty
    segment, and a last ``{name:path}`` takes the rest of the path, slashes
    included. The handler is called as ``handler(connection, **params)``
    with the parameters percent-decoded. The first pattern that matches, in
    the order given, wins. The query string plays no part, and a trailing
    slash counts: ``/echo/`` does not match ``/echo``.

    Give :meth:`process_request` and :meth:`handler` to
    :func:`~tether.asyncio.server.serve`, or let :func:`route` do it.
    """

    def __init__(self, routes: Mapping[str, RouteHandler]) -> None:
        self.routes = dict(routes)
        """The patterns and their handlers."""
        self._patterns = [(_Pattern(pattern), handler) for pattern, handler in routes.items()]
        self._matched: weakref.WeakKeyDictionary[
            ServerConnection, tuple[RouteHandler, dict[str, str]]
        ] = weakref.WeakKeyDictionary()

    def match(self, path: str) -> tuple[RouteHandler, dict[str, str]] | None:
        """Find the handler of ``path`` (a request target, query allowed) and its parameters."""
        path = path.partition("?")[0]
        if not path.startswith("/"):
            return None
        parts = path.split("/")[1:]
        for pattern, handler in self._patterns:
            params = pattern.match(parts)
            if params is not None:
                return handler, params
        return None

    def not_found(self, connection: ServerConnection, request: Request) -> Response:
        """Build the answer to a path no pattern matches: 404. Override to change it."""
        return connection.respond(404, "Not Found.")

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Route the request: refuse it with :meth:`not_found` when no pattern matches."""
        matched = self.match(request.path)
        if matched is None:
            return self.not_found(connection, request)
        self._matched[connection] = matched
        return None

    async def handler(self, connection: ServerConnection) -> None:
        """Run the handler that :meth:`process_request` chose for this connection."""
        matched = self._matched.pop(connection, None)
        if matched is None:
            # process_request was not used: route now, though it is too late for a 404.
            assert connection.request is not None
            matched = self.match(connection.request.path)
            if matched is None:
                await connection.close(CloseCode.POLICY_VIOLATION, "no route for this path")
                return
        handler, params = matched
        await handler(connection, **params)


def route(
    routes: Mapping[str, RouteHandler],
    *args: Any,
    process_request: ProcessRequest | None = None,
    **kwargs: Any,
) -> serve:
    """Start a server that dispatches connections by path; see :class:`Router`.

    It takes the arguments of :func:`~tether.asyncio.server.serve`, with
    ``routes`` instead of a handler::

        async with route({"/chat/{room}": chat, "/echo": echo}, "localhost", 8765) as server:
            await server.serve_forever()

    Requests for other paths get a 404 during the handshake. A
    ``process_request`` given here runs first: when it returns a response,
    that is the answer and routing does not happen (so it may require
    authentication, see :func:`~tether.asyncio.auth.basic_auth`).
    """
    router = Router(routes)
    if process_request is None:
        return serve(router.handler, *args, process_request=router.process_request, **kwargs)
    first = process_request

    async def route_request(connection: ServerConnection, request: Request) -> Response | None:
        response = first(connection, request)
        if inspect.isawaitable(response):
            response = await response
        if response is not None:
            return response
        return router.process_request(connection, request)

    return serve(router.handler, *args, process_request=route_request, **kwargs)
