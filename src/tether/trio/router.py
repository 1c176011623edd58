"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from tether.routing import AsyncRouter, chain_process_request
from tether.trio.server import ProcessRequest, Server, ServerConnection, serve

__all__ = ["RouteHandler", "Router", "route"]

RouteHandler = Callable[..., Awaitable[None]]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


class Router(AsyncRouter[ServerConnection]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    Patterns work as in :class:`tether.Router`: ``{name}`` takes one
    segment, a last ``{name:path}`` the rest of the path, and the handler is
    called as ``handler(connection, **params)``. Give
    :meth:`~tether.routing.BaseRouter.route_request` and
    :meth:`~tether.routing.AsyncRouter.handler` to
    :func:`~tether.trio.server.serve`, or let :func:`route` do it.
    """


async def route(
    routes: Mapping[str, RouteHandler],
    *args: Any,
    process_request: ProcessRequest | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Serve connections dispatched by path; see :class:`Router` and :func:`serve`.

    It takes the arguments of :func:`~tether.trio.server.serve`, with
    ``routes`` instead of a handler::

        server = await nursery.start(route, {"/chat/{room}": chat, "/echo": echo}, 8765)

    Requests for other paths get a 404 during the handshake. A
    ``process_request`` given here runs first: when it returns a response,
    that is the answer and routing does not happen.
    """
    router = Router(routes)
    hook = (
        router.route_request
        if process_request is None
        else chain_process_request(process_request, router)
    )
    await serve(router.handler, *args, process_request=hook, task_status=task_status, **kwargs)
