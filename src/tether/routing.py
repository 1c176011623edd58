"""Dispatching by request path, shared by both APIs: :class:`Pattern` and :class:`BaseRouter`.

Routes are a dict of tether's patterns, or a :class:`werkzeug.routing.Map`
as websockets' ``route`` takes (werkzeug is the optional extra
``tether[router]``, imported only when a ``Map`` is given). Patterns are
compiled and matched here, and the handshake hook that answers 404 (or a
redirect of a werkzeug rule) lives here too; it does no I/O. Each API's
``Router`` adds the connection handler, which calls the routed handler its
own way.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from tether.protocol.close import CloseCode
from tether.protocol.http11 import Request, Response

if TYPE_CHECKING:
    from werkzeug.routing import Map

__all__ = [
    "NO_ROUTE",
    "AsyncRouter",
    "BaseRouter",
    "Pattern",
    "RoutedConnection",
    "chain_process_request",
]

NO_ROUTE = "no route for this path"
"""The close reason of a connection that was opened on a path no pattern matches."""


@dataclass(frozen=True, slots=True)
class _Segment:
    """One segment of a pattern: a literal, or a parameter's name."""

    text: str
    param: bool = False


class Pattern:
    """A compiled path pattern, matched segment by segment: no regular expression.

    A pattern is made of ``/``-separated segments, each a literal or a
    parameter: ``{name}`` takes one non-empty segment, and a last
    ``{name:path}`` takes the rest of the path, slashes included. Raise
    :exc:`ValueError` for an invalid pattern.
    """

    def __init__(self, pattern: str) -> None:
        if not pattern.startswith("/"):
            raise ValueError(f"pattern must start with '/': {pattern!r}")
        self.pattern = pattern
        """The pattern as given."""
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


class RoutedConnection(Protocol):
    """What routing needs of a server connection; both APIs' connections have it."""

    @property
    def request(self) -> Request | None:
        """The opening handshake request."""
        ...

    def respond(self, status: int, text: str) -> Response:
        """Build an HTTP response with a plain-text body."""
        ...


Conn = TypeVar("Conn", bound=RoutedConnection)
Handler = TypeVar("Handler")


class BaseRouter(Generic[Conn, Handler]):
    """Map request paths to handlers; answer 404 in the handshake for other paths.

    ``routes`` is either a dict of patterns or a werkzeug ``Map``.

    A pattern is made of ``/``-separated segments, each a literal or a
    parameter: ``{name}`` takes one non-empty segment, and a last
    ``{name:path}`` takes the rest of the path, slashes included. The handler
    is called as ``handler(connection, **params)`` with the parameters
    percent-decoded. The first pattern that matches, in the order given,
    wins. The query string plays no part, and a trailing slash counts:
    ``/echo/`` does not match ``/echo``.

    With a :class:`werkzeug.routing.Map` (``pip install 'tether[router]'``),
    each rule's ``endpoint`` is its handler, called with the values of the
    rule's converters; every rule is made a WebSocket rule. A rule's redirect
    (``redirect_to``, or a missing trailing slash) answers 302 with a
    ``Location`` built from ``server_name`` (the request's ``Host`` when
    ``None``) and ``url_scheme``.

    Each API's ``Router`` adds ``handler``, which runs what :meth:`routed`
    returns.
    """

    def __init__(
        self,
        routes: Mapping[str, Handler] | Map,
        server_name: str | None = None,
        url_scheme: str = "ws",
    ) -> None:
        self.server_name = server_name
        """The server's name as clients see it, for redirects; ``None`` for the ``Host`` header."""
        self.url_scheme = url_scheme
        """``ws``, or ``wss`` behind TLS: the scheme of redirects."""
        self.url_map: Map | None = None
        """The werkzeug ``Map`` given as routes, if any."""
        self.routes: dict[str, Handler] = {}
        """The patterns and their handlers, when routes are a dict."""
        self._patterns: list[tuple[Pattern, Handler]] = []
        if isinstance(routes, Mapping):
            self.routes = dict(routes)
            self._patterns = [(Pattern(pattern), handler) for pattern, handler in routes.items()]
        else:
            self.url_map = routes
            for rule in routes.iter_rules():
                rule.websocket = True
        # Weak, so that a connection whose handshake failed after routing is not kept.
        self._matched: weakref.WeakKeyDictionary[Conn, tuple[Handler, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def match(self, path: str) -> tuple[Handler, dict[str, Any]] | None:
        """Find the handler of ``path`` (a request target, query allowed) and its parameters.

        With a werkzeug ``Map``, a redirect counts as no match here.
        """
        if self.url_map is not None:
            matched = self._match_map(path, self.server_name or "localhost")
            return None if isinstance(matched, str) else matched
        path = path.partition("?")[0]
        if not path.startswith("/"):
            return None
        parts = path.split("/")[1:]
        for pattern, handler in self._patterns:
            params = pattern.match(parts)
            if params is not None:
                return handler, params
        return None

    def _match_map(
        self, path: str, server_name: str
    ) -> tuple[Handler, dict[str, Any]] | str | None:
        """Match with the werkzeug ``Map``: the handler, a URL to redirect to, or ``None``."""
        from werkzeug.exceptions import HTTPException  # noqa: PLC0415
        from werkzeug.routing import RequestRedirect  # noqa: PLC0415

        assert self.url_map is not None
        adapter = self.url_map.bind(server_name=server_name, url_scheme=self.url_scheme)
        target = urlsplit(path)
        try:
            handler, params = adapter.match(path_info=target.path, query_args=target.query)
        except RequestRedirect as redirect:
            return redirect.new_url
        except HTTPException:  # NotFound, or MethodNotAllowed for a rule's methods.
            return None
        return handler, dict(params)

    def get_server_name(self, connection: Conn, request: Request) -> str:
        """The server's name for redirects: ``server_name``, or the request's ``Host``."""
        if self.server_name is not None:
            return self.server_name
        return request.headers["Host"]

    def not_found(self, connection: Conn, request: Request) -> Response:
        """Build the answer to a path no route matches: 404. Override to change it."""
        return connection.respond(404, "Not Found.\n")

    def redirect(self, connection: Conn, url: str) -> Response:
        """Build the answer to a werkzeug rule's redirect: 302 to ``url``. Override to change it."""
        response = connection.respond(302, f"Found at {url}")
        response.headers["Location"] = url
        return response

    def route_request(self, connection: Conn, request: Request) -> Response | None:
        """Route the request: refuse it with :meth:`not_found` when no route matches.

        With a werkzeug ``Map``, a rule's redirect answers with :meth:`redirect`.
        """
        matched: tuple[Handler, dict[str, Any]] | str | None
        if self.url_map is None:
            matched = self.match(request.path)
        else:
            matched = self._match_map(request.path, self.get_server_name(connection, request))
        if matched is None:
            return self.not_found(connection, request)
        if isinstance(matched, str):
            return self.redirect(connection, matched)
        self._matched[connection] = matched
        return None

    def process_request(self, connection: Conn, request: Request) -> Response | None:
        """Route the request; the same as :meth:`route_request`."""
        return self.route_request(connection, request)

    def routed(self, connection: Conn) -> tuple[Handler, dict[str, Any]] | None:
        """The handler and parameters that :meth:`route_request` chose for ``connection``.

        Without :meth:`route_request`, route the open connection now;
        ``None`` means that no route matches, too late for a 404.
        """
        matched = self._matched.pop(connection, None)
        if matched is None:
            request = connection.request
            assert request is not None
            matched = self.match(request.path)
        return matched


class AsyncRoutedConnection(RoutedConnection, Protocol):
    """What an async router needs of a server connection: routing, and closing."""

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection."""
        ...


AsyncConn = TypeVar("AsyncConn", bound=AsyncRoutedConnection)
RouteHandler = Callable[..., Awaitable[None]]


class AsyncRouter(BaseRouter[AsyncConn, RouteHandler]):
    """A :class:`BaseRouter` whose handlers are coroutine functions: asyncio's and trio's."""

    async def handler(self, connection: AsyncConn) -> None:
        """Run the handler that :meth:`route_request` chose for this connection."""
        matched = self.routed(connection)
        if matched is None:
            await connection.close(CloseCode.POLICY_VIOLATION, NO_ROUTE)
            return
        handler, params = matched
        await handler(connection, **params)


def chain_process_request(
    first: Callable[[AsyncConn, Request], Any], router: BaseRouter[AsyncConn, Any]
) -> Callable[[AsyncConn, Request], Awaitable[Response | None]]:
    """A ``process_request`` hook that runs ``first`` (plain or coroutine), then routes.

    When ``first`` returns a response, that is the answer and routing does not
    happen (so it may require authentication first).
    """

    async def route_request(connection: AsyncConn, request: Request) -> Response | None:
        response = first(connection, request)
        if inspect.isawaitable(response):
            response = await response
        if response is not None:
            return response  # type: ignore[no-any-return]
        return router.route_request(connection, request)

    return route_request
