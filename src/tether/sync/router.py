"""Dispatch connections to handlers by request path: :func:`route` and :class:`Router`."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from tether.protocol.close import CloseCode
from tether.protocol.http11 import Request, Response
from tether.routing import NO_ROUTE, BaseRouter

if TYPE_CHECKING:
    from werkzeug.routing import Map
from tether.sync.server import ProcessRequest, Server, ServerConnection, serve

__all__ = ["RouteHandler", "Router", "route", "unix_route"]

RouteHandler = Callable[..., None]
"""A routed handler: ``handler(connection, **params)``, one keyword per path parameter."""


class Router(BaseRouter[ServerConnection, RouteHandler]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` maps patterns to handlers, or is a werkzeug ``Map``: see
    :class:`~tether.routing.BaseRouter` for both, and for ``server_name``
    and ``url_scheme``, which build the ``Location`` of redirects.

    Give :meth:`~tether.routing.BaseRouter.route_request` and :meth:`handler` to
    :func:`~tether.sync.server.serve`, or let :func:`route` do it.
    """

    def handler(self, connection: ServerConnection) -> None:
        """Run the handler that ``process_request`` chose for this connection."""
        matched = self.routed(connection)
        if matched is None:
            connection.close(CloseCode.POLICY_VIOLATION, NO_ROUTE)
            return
        handler, params = matched
        handler(connection, **params)


def route(
    routes: Mapping[str, RouteHandler] | Map,
    *args: Any,
    process_request: ProcessRequest | None = None,
    server_name: str | None = None,
    ssl: ssl_module.SSLContext | Literal[True] | None = None,
    create_router: Callable[..., Router] | None = None,
    **kwargs: Any,
) -> Server:
    """Start a server that dispatches connections by path; see :class:`Router`.

    It takes the arguments of :func:`~tether.sync.server.serve`, with
    ``routes`` instead of a handler: a dict of patterns, or a
    :class:`werkzeug.routing.Map` whose rules' endpoints are the handlers::

        with route({"/chat/{room}": chat, "/echo": echo}, "localhost", 8765) as server:
            server.serve_forever()

    Requests for other paths get a 404 during the handshake. A
    ``process_request`` given here runs first: when it returns a response,
    that is the answer and routing does not happen (so it may require
    authentication, see :func:`~tether.sync.auth.basic_auth`).

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
    first = process_request

    def route_request(connection: ServerConnection, request: Request) -> Response | None:
        response = first(connection, request)
        if response is not None:
            return response
        return router.route_request(connection, request)

    return serve(router.handler, *args, process_request=route_request, **kwargs)


def unix_route(
    routes: Mapping[str, RouteHandler] | Map, path: str | None = None, **kwargs: Any
) -> Server:
    """Start a server on the Unix socket at ``path`` that dispatches by path; see :func:`route`."""
    return route(routes, unix=True, path=path, **kwargs)
