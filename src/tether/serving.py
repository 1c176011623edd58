"""What the servers share: their options, the handshake hooks and the handler (every API).

Nothing here waits on an event loop of its own: the coroutines only await
what the application's hooks and handler return, so asyncio and trio run
them alike.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from tether.exceptions import ConnectionClosed
from tether.extensions.base import ServerExtensionFactory
from tether.extensions.permessage_deflate import server_extensions
from tether.legacy import AbortHandshake
from tether.log import ConnectionLogger
from tether.protocol.close import CloseCode
from tether.protocol.connection import _OPEN
from tether.protocol.http11 import Limits, Request, Response
from tether.protocol.server import Origin, ServerProtocol, server_engines

__all__ = [
    "SERVER_HELPERS",
    "HookConnection",
    "ServerSide",
    "check_response",
    "handshake_response",
    "make_engines",
    "run_handler",
    "server_helper",
]

SERVER_HELPERS = {"basic_auth": "auth", "broadcast": "broadcast"}
"""The names a layer's server module gives too, as websockets' does, and their modules."""


def make_engines(
    *,
    origins: Sequence[Origin] | None,
    extensions: Sequence[ServerExtensionFactory] | None,
    compression: Literal["deflate"] | None,
    subprotocols: Sequence[str] | None,
    server_header: str | None,
    max_size: int | tuple[int | None, int | None] | None,
    limits: Limits | None,
    trusted_proxies: Sequence[str] | None,
    proxy_protocol: bool,
) -> Callable[[], ServerProtocol]:
    """Check the options of a server's ``serve`` and return what makes each connection's engine.

    The same for the asyncio, threading and trio servers:
    :func:`~tether.protocol.server.server_engines` with ``compression``
    applied to ``extensions``. The engine gets no subprotocol hook: the
    server calls its own ``select_subprotocol`` with the connection. Raise
    :class:`ValueError` for ``proxy_protocol`` without ``trusted_proxies``.
    """
    if proxy_protocol and trusted_proxies is None:
        raise ValueError("proxy_protocol needs trusted_proxies")
    return server_engines(
        origins=origins,
        extensions=server_extensions(compression, extensions),
        subprotocols=subprotocols,
        select_subprotocol=None,
        server_header=server_header,
        max_size=max_size,
        limits=limits,
    )


def server_helper(module: str, layer: str, name: str) -> Any:
    """Give ``name`` of :data:`SERVER_HELPERS` from ``layer``'s module, for ``__getattr__``.

    Imported on first use, since those modules import the server module.
    Raise :class:`AttributeError` for any other name, as ``module`` has none.
    """
    submodule = SERVER_HELPERS.get(name)
    if submodule is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{layer}.{submodule}"), name)


SHUTTING_DOWN = "Server is shutting down.\n"
FAILED = "Failed to open a WebSocket connection.\n"


class HookConnection(Protocol):
    """What the hooks and the handler need of a server connection."""

    @property
    def protocol(self) -> ServerProtocol: ...

    @property
    def logger(self) -> ConnectionLogger: ...

    def respond(self, status: int, text: str) -> Response:
        """Build an HTTP response with a plain-text body."""
        ...

    def _accept(self, request: Request) -> Response:
        """The engine's answer to ``request``, the server's subprotocol hook applied."""
        ...

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection."""
        ...


Conn = TypeVar("Conn", bound=HookConnection)


if TYPE_CHECKING:

    class _Peer:
        """For the type checker: the connection class after ServerSide has this."""

        @property
        def remote_address(self) -> Any:
            return None

else:
    _Peer = object


class ServerSide(_Peer):
    """What the server connections of every API add to their connection class.

    Put first among the bases: :attr:`remote_address` reads the connection's
    own, unless a trusted proxy gave the client's address.
    """

    __slots__ = ()

    protocol: ServerProtocol
    server: Any
    # The client's address that a trusted proxy gave, if any.
    _client: tuple[str, int] | None

    @property
    def remote_address(self) -> Any:
        """The client's address: that of the socket's peer, or the one a trusted proxy gave.

        A proxy's word counts only if its address is in ``trusted_proxies``
        (see :mod:`tether.proxies`); the port is 0 when a header gave the
        address.
        """
        client = self._client
        return super().remote_address if client is None else client

    def respond(self, status: int, text: str) -> Response:
        """Build an HTTP response with ``text`` as its plain-text body, for ``process_request``.

        Add headers to the response's ``headers`` before returning it, if
        needed.
        """
        return self.protocol.reject(status, text)

    def _accept(self, request: Request) -> Response:
        select = self.server.select_subprotocol
        if select is None:
            return self.protocol.accept(request)
        # The user's hook gets this connection rather than the engine.
        return self.protocol.accept(
            request, select_subprotocol=lambda _, offered: select(self, offered)
        )


def check_response(response: object, hook: str) -> None:
    """Raise :class:`TypeError` unless a hook returned a :class:`Response` or ``None``."""
    if response is not None and not isinstance(response, Response):
        raise TypeError(f"{hook} must return a Response or None, not {type(response).__name__}")


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def default_response(connection: HookConnection, request: Request, serving: bool) -> Response:
    """The answer without hooks: the engine's 101 or refusal, or 503 once the server closes."""
    try:
        if serving:
            return connection._accept(request)
        return connection.respond(503, SHUTTING_DOWN)
    except Exception:
        connection.logger.error("opening handshake failed", exc_info=True)
        return connection.respond(500, FAILED)


async def handshake_response(
    connection: Conn,
    request: Request,
    process_request: Callable[[Conn, Request], Any] | None,
    process_response: Callable[[Conn, Request, Response], Any] | None,
    serving: Callable[[], bool],
) -> Response:
    """Run ``process_request`` and ``process_response`` (plain or coroutine functions).

    Return the response to send: what ``process_request`` returned, else the
    engine's, as ``process_response`` left or replaced it. A hook that raises
    or returns something else than a response or ``None`` gets the client a
    500, and the error is logged; one that raises the deprecated
    :class:`~tether.legacy.AbortHandshake` gets its response. ``serving()``
    tells whether the server still accepts connections: a 101 becomes a 503
    once it does not, also when it stopped while a hook ran.
    """
    try:
        response = None
        if process_request is not None:
            response = await _maybe_await(process_request(connection, request))
            check_response(response, "process_request")
        if response is None:
            response = default_response(connection, request, serving())
        if process_response is not None:
            replaced = await _maybe_await(process_response(connection, request, response))
            check_response(replaced, "process_response")
            if replaced is not None:
                response = replaced
    except AbortHandshake as exc:
        response = exc.response()
    except Exception:
        connection.logger.error("opening handshake failed", exc_info=True)
        response = connection.respond(500, FAILED)
    if response.status_code == 101 and not serving():
        # The server closed while a hook ran.
        response = connection.respond(503, SHUTTING_DOWN)
    return response


async def run_handler(connection: Conn, handler: Callable[[Conn], Awaitable[None]]) -> None:
    """Run the connection handler, then close the connection: 1000, or 1011 if it failed.

    The handler's exception is logged at ERROR. A
    :class:`~tether.exceptions.ConnectionClosed` let out after its own
    connection closed is no error: the client left while the handler talked
    to it, and that is logged at DEBUG only.
    """
    try:
        await handler(connection)
    except ConnectionClosed as exc:
        if connection.protocol.state is _OPEN:
            # Another connection closed: this one is still fine, the handler is not.
            connection.logger.error("connection handler failed", exc_info=True)
            await connection.close(CloseCode.INTERNAL_ERROR)
        else:
            connection.logger.debug("connection handler ended by the closure: %s", exc)
    except Exception:
        connection.logger.error("connection handler failed", exc_info=True)
        await connection.close(CloseCode.INTERNAL_ERROR)
    else:
        await connection.close()
