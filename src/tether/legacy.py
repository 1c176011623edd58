"""websockets' older spellings, as thin adapters onto tether's current API.

Code written for websockets' legacy API still runs: each adapter turns the
old spelling into the current one at the edge and warns with a
:exc:`DeprecationWarning` that names the current spelling. Nothing here is a
second path through the engine.

- :data:`InvalidStatusCode` is :class:`~tether.exceptions.InvalidStatus`, so
  ``except InvalidStatusCode`` catches a refused handshake, and
  ``exc.status_code`` and ``exc.headers`` still read (with a warning);
- :data:`WebSocketProtocolError` is :class:`~tether.exceptions.ProtocolError`;
- :class:`AbortHandshake`, raised by a ``process_request`` hook, answers the
  request with its status, headers and body;
- :class:`RedirectHandshake` exists for code that names it;
- :func:`adapt_handler` lets a handler take ``(websocket, path)``;
- :func:`adapt_process_request` lets ``process_request`` take
  ``(path, request_headers)`` and return ``(status, headers, body)``.

Import the exceptions from :mod:`tether.exceptions` (or ``tether``); the
functions are applied by ``serve`` in both APIs.
"""

from __future__ import annotations

import http
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from tether.exceptions import InvalidHandshake, InvalidStatus, ProtocolError
from tether.protocol.headers import Headers, HeadersLike
from tether.protocol.http11 import Request, Response

__all__ = [
    "AbortHandshake",
    "InvalidStatusCode",
    "RedirectHandshake",
    "WebSocketProtocolError",
    "adapt_handler",
    "adapt_process_request",
    "legacy_response",
]

InvalidStatusCode = InvalidStatus
"""Deprecated: the same class as :class:`~tether.exceptions.InvalidStatus`."""

WebSocketProtocolError = ProtocolError
"""Deprecated: the same class as :class:`~tether.exceptions.ProtocolError`."""


class AbortHandshake(InvalidHandshake):
    """Deprecated: raise it in ``process_request`` to answer with this HTTP response.

    Return ``connection.respond(status, text)`` from ``process_request``
    instead.
    """

    def __init__(
        self, status: http.HTTPStatus | int, headers: HeadersLike, body: bytes = b""
    ) -> None:
        self.status = http.HTTPStatus(status)
        self.headers = Headers(headers)
        self.body = body
        super().__init__(f"HTTP {self.status:d}, {len(self.headers)} headers, {len(body)} bytes")

    def response(self) -> Response:
        """The HTTP response this exception stands for."""
        return legacy_response(self.status, self.headers, self.body)


class RedirectHandshake(InvalidHandshake):
    """Deprecated: a handshake redirected to ``uri``; tether's client follows redirects itself."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"redirect to {uri}")


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; {new}", DeprecationWarning, stacklevel=3)


def takes_path(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is written for websockets' old ``handler(websocket, path)``.

    That is, it requires two positional arguments; one with a default value
    is not counted, so ``handler(connection, code=1000)`` stays as it is.
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # A builtin without a signature: assume the current API.
        return False
    required = [
        parameter
        for parameter in signature.parameters.values()
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        and parameter.default is parameter.empty
    ]
    return len(required) == 2


def adapt_handler(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Return ``handler`` itself, or, when it takes ``(websocket, path)``, an adapter.

    The adapter passes the request's path (with its query) as the second
    argument and warns once, when the server is made.
    """
    if not takes_path(handler):
        return handler
    _warn(
        "a handler taking (websocket, path)",
        "take only the connection and read connection.request.path",
    )

    def with_path(connection: Any) -> Any:
        return handler(connection, connection.request.path)

    return with_path


def takes_headers(process_request: Callable[..., Any]) -> bool:
    """Whether ``process_request`` is the old ``process_request(path, request_headers)``.

    Told apart by the name of its second parameter, since both spellings take two.
    """
    try:
        names = list(inspect.signature(process_request).parameters)
    except (TypeError, ValueError):
        return False
    return len(names) == 2 and names[0] == "path"


def legacy_response(status: http.HTTPStatus | int, headers: HeadersLike, body: bytes) -> Response:
    """Build the :class:`Response` of an old ``(status, headers, body)`` tuple."""
    status = http.HTTPStatus(status)
    fields = Headers(headers)
    if "Content-Length" not in fields:
        fields["Content-Length"] = str(len(body))
    return Response(status.value, status.phrase, fields, body)


def convert_legacy(result: Any) -> Response | None:
    """Turn what an old-style ``process_request`` returned into a response, or ``None``."""
    if result is None or isinstance(result, Response):
        return result
    if isinstance(result, tuple) and len(result) == 3:
        status, headers, body = result
        if isinstance(body, str):
            body = body.encode()
        return legacy_response(status, headers, body)
    raise TypeError(
        "process_request(path, request_headers) must return None or "
        f"(status, headers, body), not {type(result).__name__}"
    )


def adapt_process_request(process_request: Callable[..., Any] | None) -> Any:
    """Return ``process_request`` itself, or an adapter from the old spelling.

    The old ``process_request(path, request_headers)`` returns ``None`` to go
    on with the handshake, or ``(status, headers, body)`` to answer with that
    HTTP response. The adapter calls it with the request's path and headers
    and converts the tuple; it is a coroutine function when the hook is one.
    A hook of either spelling may also raise :class:`AbortHandshake`; the
    servers answer with its response.
    """
    if process_request is None or not takes_headers(process_request):
        return process_request
    _warn(
        "process_request(path, request_headers)",
        "use process_request(connection, request) returning a Response or None",
    )
    hook = process_request

    def old(connection: Any, request: Request) -> Any:
        result = hook(request.path, request.headers)
        if inspect.isawaitable(result):

            async def later() -> Response | None:
                return convert_legacy(await result)

            return later()
        return convert_legacy(result)

    return old
