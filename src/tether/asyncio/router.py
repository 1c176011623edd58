"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tether.asyncio.server import ProcessRequest, ServerConnection, serve
from tether.protocol.close import CloseCode
from tether.protocol.http11 import Request, Response
from tether.routing import NO_ROUTE, BaseRouter

__all__ = ["RouteHandler", "Router", "route"]

RouteHandler = Callable[..., Awaitable[None]]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


class Router(BaseRouter[ServerConnection, RouteHandler]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` maps patterns to handlers. A pattern is made of ``/``-separated
    segments, each a literal or a parameter: ``{name}`` takes one non-empty
    segment, and a last ``{name:path}`` takes the rest of the path, slashes
    included. The handler is called as ``handler(connection, **params)``
    with the parameters percent-decoded. The first pattern that matches, in
    the order given, wins. The query string plays no part, and a trailing
    slash counts: ``/echo/`` does not match ``/echo``.

    Give :meth:`~tether.routing.BaseRouter.process_request` and :meth:`handler` to
    :func:`~tether.asyncio.server.serve`, or let :func:`route` do it.
    """

    async def handler(self, connection: ServerConnection) -> None:
        """Run the handler that ``process_request`` chose for this connection."""
        matched = self.routed(connection)
        if matched is None:
            await connection.close(CloseCode.POLICY_VIOLATION, NO_ROUTE)
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
