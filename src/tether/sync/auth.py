"""HTTP authentication for :func:`~tether.sync.server.serve`: Basic and Digest."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from tether.auth import BasicAuth, Credentials, DigestAuth
from tether.protocol.http11 import Request, Response
from tether.sync.server import ServerConnection

__all__ = ["basic_auth", "digest_auth"]

CheckCredentials = Callable[[str, str], bool]
"""A function that tells whether a username and password are valid."""

AuthHook = Callable[[ServerConnection, Request], Response | None]
"""What :func:`basic_auth` returns: a ``process_request`` hook."""


def basic_auth(
    realm: str = "",
    credentials: Credentials | Iterable[Credentials] | None = None,
    check_credentials: CheckCredentials | None = None,
) -> AuthHook:
    """Build a ``process_request`` hook that requires HTTP Basic authentication (RFC 7617).

    Give either ``credentials``, one ``(username, password)`` pair or an
    iterable of them, or ``check_credentials(username, password)``, a
    function returning whether to let the user in; it runs in the
    connection's thread, during the handshake. A request without valid
    credentials gets a 401 with ``WWW-Authenticate: Basic realm="...",
    charset="UTF-8"``; on success the hook sets
    :attr:`ServerConnection.username <tether.sync.server.ServerConnection.username>`
    and lets the handshake go on.

    Passwords from ``credentials`` are compared in constant time, and an
    unknown username costs the same comparison as a known one, so that
    timing tells neither.

    To combine it with a hook of your own, call it from yours::

        auth = basic_auth(realm="chat", credentials=("alice", "s3cret"))

        def process_request(connection, request):
            if request.path == "/healthz":
                return connection.respond(200, "OK\\n")
            return auth(connection, request)

        serve(handler, host, port, process_request=process_request)
    """
    auth = BasicAuth(realm, credentials, check_credentials)

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        username, password = found
        return auth.conclude(connection, username, auth.check(username, password))

    return process_request


GetPassword = Callable[[str], str | None]
"""A function that returns a user's password, or ``None`` for an unknown user."""


def digest_auth(
    realm: str = "",
    credentials: Credentials | Iterable[Credentials] | None = None,
    get_password: GetPassword | None = None,
    *,
    algorithms: Iterable[str] = ("SHA-256", "MD5"),
    nonce_lifetime: float = 300.0,
) -> AuthHook:
    """Build a ``process_request`` hook that requires HTTP Digest authentication (RFC 7616).

    The threading twin of :func:`tether.asyncio.auth.digest_auth`: give
    either ``credentials`` or ``get_password(username)``, which runs in the
    connection's thread and returns the password or ``None``. On success the
    hook sets
    :attr:`ServerConnection.username <tether.sync.server.ServerConnection.username>`.
    """
    auth = DigestAuth(
        realm,
        credentials,
        get_password,
        algorithms=algorithms,
        nonce_lifetime=nonce_lifetime,
    )

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        password = cast(str | None, auth.get_password(found.username))
        return auth.conclude(connection, request, found, password)

    return process_request
