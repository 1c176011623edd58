"""HTTP authentication for :func:`~tether.asyncio.server.serve`: Basic and Digest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from tether.asyncio.server import ServerConnection
from tether.auth import Credentials, async_basic_auth, async_digest_auth
from tether.protocol.http11 import Request, Response

__all__ = ["basic_auth", "digest_auth"]

CheckCredentials = Callable[[str, str], bool | Awaitable[bool]]
"""A function, plain or coroutine, that tells whether a username and password are valid."""

AuthHook = Callable[[ServerConnection, Request], Awaitable[Response | None]]
"""What :func:`basic_auth` returns: a ``process_request`` hook."""


def basic_auth(
    realm: str = "",
    credentials: Credentials | Iterable[Credentials] | None = None,
    check_credentials: CheckCredentials | None = None,
) -> AuthHook:
    """Build a ``process_request`` hook that requires HTTP Basic authentication (RFC 7617).

    Give either ``credentials``, one ``(username, password)`` pair or an
    iterable of them, or ``check_credentials(username, password)``, a plain
    or coroutine function returning whether to let the user in. A request
    without valid credentials gets a 401 with ``WWW-Authenticate: Basic
    realm="...", charset="UTF-8"``; on success the hook sets
    :attr:`ServerConnection.username <tether.asyncio.server.ServerConnection.username>`
    and lets the handshake go on.

    Passwords from ``credentials`` are compared in constant time, and an
    unknown username costs the same comparison as a known one, so that
    timing tells neither.

    To combine it with a hook of your own, call it from yours::

        auth = basic_auth(realm="chat", credentials=("alice", "s3cret"))

        async def process_request(connection, request):
            if request.path == "/healthz":
                return connection.respond(200, "OK\\n")
            return await auth(connection, request)

        serve(handler, host, port, process_request=process_request)
    """
    return async_basic_auth(realm, credentials, check_credentials)


GetPassword = Callable[[str], str | Awaitable[str | None] | None]
"""A function, plain or coroutine, that returns a user's password or ``None``."""


def digest_auth(
    realm: str = "",
    credentials: Credentials | Iterable[Credentials] | None = None,
    get_password: GetPassword | None = None,
    *,
    algorithms: Iterable[str] = ("SHA-256", "MD5"),
    nonce_lifetime: float = 300.0,
) -> AuthHook:
    """Build a ``process_request`` hook that requires HTTP Digest authentication (RFC 7616).

    The password never crosses the network, unlike Basic's. Give either
    ``credentials``, one ``(username, password)`` pair or an iterable of
    them, or ``get_password(username)``, a plain or coroutine function
    returning the user's password, or ``None`` for an unknown user. A
    request without valid credentials gets a 401 with a challenge per
    algorithm (``SHA-256`` then ``MD5`` by default) and ``qop="auth"``; on
    success the hook sets
    :attr:`ServerConnection.username <tether.asyncio.server.ServerConnection.username>`.
    Nonces last ``nonce_lifetime`` seconds, and a replayed answer is refused;
    see :class:`tether.auth.DigestAuth`. tether's clients answer it with the
    URI's credentials or their ``auth`` option.
    """
    return async_digest_auth(
        realm,
        credentials,
        get_password,
        algorithms=algorithms,
        nonce_lifetime=nonce_lifetime,
    )
