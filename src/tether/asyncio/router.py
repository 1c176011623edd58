"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from tether.asyncio.server import ProcessRequest, ServerConnection, serve
from tether.routing import AsyncRouter, chain_process_request

if TYPE_CHECKING:
    from werkzeug.routing import Map

__all__ = ["RouteHandler", "Router", "route", "unix_route"]

RouteHandler = Callable[..., Awaitable[None]]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


class Router(AsyncRouter[ServerConnection]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` maps patterns to handlers, or is a werkzeug ``Map``: see
    :class:`~tether.routing.BaseRouter` for both, and for ``server_name``
    and ``url_scheme``, which build the ``Location`` of redirects.

    Give :meth:`~tether.routing.BaseRouter.route_request` and
    :meth:`~tether.routing.AsyncRouter.handler` to
    :func:`~tether.asyncio.server.serve`, or let :func:`route` do it.
    """


def route(
    routes: Mapping[str, RouteHandler] | Map,
    *args: Any,
    process_request: ProcessRequest | None = None,
    server_name: str | None = None,
    ssl: ssl_module.SSLContext | Literal[True] | None = None,
    create_router: Callable[..., Router] | None = None,
    **kwargs: Any,
) -> serve:
    """Start a server that dispatches connections by path; see :class:`Router`.

    It takes the arguments of :func:`~tether.asyncio.server.serve`, with
    ``routes`` instead of a handler: a dict of patterns, or a
    :class:`werkzeug.routing.Map` whose rules' endpoints are the handlers::

        async with route({"/chat/{room}": chat, "/echo": echo}, "localhost", 8765) as server:
            await server.serve_forever()

    Requests for other paths get a 404 during the handshake. A
    ``process_request`` given here runs first: when it returns a response,
    that is the answer and routing does not happen (so it may require
    authentication, see :func:`~tether.asyncio.auth.basic_auth`).

    For the redirects of a werkzeug ``Map``, ``server_name`` is the server's
    name as clients see it (the request's ``Host`` when ``None``), and
    ``ssl=True`` makes them ``wss://`` without enabling TLS, for a server
    behind a proxy that terminates TLS. ``create_router`` makes the router,
    as ``create_router(routes, server_name, url_scheme)``: a subclass of
    :class:`Router`, for instance.
    """
    url_scheme = "ws" if ssl is None else "wss"
    if ssl is not None and ssl is not True:
        kwargs["ssl"] = ssl
    router = (create_router or Router)(routes, server_name, url_scheme)
    if process_request is None:
        return serve(router.handler, *args, process_request=router.route_request, **kwargs)
    hook = chain_process_request(process_request, router)
    return serve(router.handler, *args, process_request=hook, **kwargs)


def unix_route(
    routes: Mapping[str, RouteHandler] | Map, path: str | None = None, **kwargs: Any
) -> serve:
    """Start a server on the Unix socket at ``path`` that dispatches by path; see :func:`route`."""
    return route(routes, unix=True, path=path, **kwargs)
