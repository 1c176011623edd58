"""Dispatching by request path, shared by both APIs: :class:`Pattern` and :class:`BaseRouter`.

Patterns are compiled and matched here, and the handshake hook that answers
404 lives here too; it does no I/O. Each API's ``Router`` adds the
connection handler, which calls the routed handler its own way.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote

from tether.protocol.http11 import Request, Response

__all__ = ["NO_ROUTE", "BaseRouter", "Pattern", "RoutedConnection"]

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

    ``routes`` maps patterns to handlers. A pattern is made of ``/``-separated
    segments, each a literal or a parameter: ``{name}`` takes one non-empty
    segment, and a last ``{name:path}`` takes the rest of the path, slashes
    included. The handler is called as ``handler(connection, **params)``
    with the parameters percent-decoded. The first pattern that matches, in
    the order given, wins. The query string plays no part, and a trailing
    slash counts: ``/echo/`` does not match ``/echo``.

    Each API's ``Router`` adds ``handler``, which runs what :meth:`routed`
    returns.
    """

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)
        """The patterns and their handlers."""
        self._patterns = [(Pattern(pattern), handler) for pattern, handler in routes.items()]
        # Weak, so that a connection whose handshake failed after routing is not kept.
        self._matched: weakref.WeakKeyDictionary[Conn, tuple[Handler, dict[str, str]]] = (
            weakref.WeakKeyDictionary()
        )

    def match(self, path: str) -> tuple[Handler, dict[str, str]] | None:
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

    def not_found(self, connection: Conn, request: Request) -> Response:
        """Build the answer to a path no pattern matches: 404. Override to change it."""
        return connection.respond(404, "Not Found.")

    def process_request(self, connection: Conn, request: Request) -> Response | None:
        """Route the request: refuse it with :meth:`not_found` when no pattern matches."""
        matched = self.match(request.path)
        if matched is None:
            return self.not_found(connection, request)
        self._matched[connection] = matched
        return None

    def routed(self, connection: Conn) -> tuple[Handler, dict[str, str]] | None:
        """The handler and parameters that :meth:`process_request` chose for ``connection``.

        Without :meth:`process_request`, route the open connection now;
        ``None`` means that no pattern matches, too late for a 404.
        """
        matched = self._matched.pop(connection, None)
        if matched is None:
            request = connection.request
            assert request is not None
            matched = self.match(request.path)
        return matched
