"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import trio

from tether.routing import AsyncRouter, chain_process_request
from tether.trio.server import ProcessRequest, Server, ServerConnection, serve

if TYPE_CHECKING:
    from werkzeug.routing import Map

__all__ = ["RouteHandler", "Router", "route"]

RouteHandler = Callable[..., Awaitable[None]]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


class Router(AsyncRouter[ServerConnection]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` maps patterns to handlers, or is a werkzeug ``Map``, as in
    :class:`tether.Router`: see :class:`~tether.routing.BaseRouter` for
    both, and for ``server_name`` and ``url_scheme``, which build the
    ``Location`` of redirects. The handler is called as
    ``handler(connection, **params)``. Give
    :meth:`~tether.routing.BaseRouter.route_request` and
    :meth:`~tether.routing.AsyncRouter.handler` to
    :func:`~tether.trio.server.serve`, or let :func:`route` do it.
    """


async def route(
    routes: Mapping[str, RouteHandler] | Map,
    *args: Any,
    process_request: ProcessRequest | None = None,
    server_name: str | None = None,
    ssl: ssl_module.SSLContext | Literal[True] | None = None,
    create_router: Callable[..., Router] | None = None,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Serve connections dispatched by path; see :class:`Router` and :func:`serve`.

    It takes the arguments of :func:`~tether.trio.server.serve`, with
    ``routes`` instead of a handler: a dict of patterns, or a
    :class:`werkzeug.routing.Map` whose rules' endpoints are the handlers
    (``pip install 'tether[router]'``)::

        server = await nursery.start(route, {"/chat/{room}": chat, "/echo": echo}, 8765)

    Requests for other paths get a 404 during the handshake. A
    ``process_request`` given here runs first: when it returns a response,
    that is the answer and routing does not happen. ``server_name``,
    ``ssl=True`` (``wss://`` redirects without TLS here, behind a proxy
    that terminates it) and ``create_router`` work as in :func:`tether.route`.
    """
    url_scheme = "ws" if ssl is None else "wss"
    if ssl is not None and ssl is not True:
        kwargs["ssl"] = ssl
    router = (create_router or Router)(routes, server_name, url_scheme)
    hook = (
        router.route_request
        if process_request is None
        else chain_process_request(process_request, router)
    )
    await serve(router.handler, *args, process_request=hook, task_status=task_status, **kwargs)
