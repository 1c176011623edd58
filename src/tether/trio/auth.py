"""HTTP Basic authentication for :func:`~tether.trio.server.serve`: :func:`basic_auth`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from tether.auth import Credentials, async_basic_auth, async_digest_auth
from tether.protocol.http11 import Request, Response
from tether.trio.server import ServerConnection

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

    It works as :func:`tether.basic_auth` does: ``credentials`` (one pair or
    pairs, compared in constant time) or ``check_credentials(username,
    password)``, a plain or coroutine function; a 401 with a ``Basic``
    challenge otherwise; :attr:`ServerConnection.username` set on success.
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

    It works as :func:`tether.asyncio.auth.digest_auth` does: ``credentials``
    or ``get_password(username)``, a plain or coroutine function returning
    the password or ``None``; :attr:`ServerConnection.username` set on
    success.
    """
    return async_digest_auth(
        realm,
        credentials,
        get_password,
        algorithms=algorithms,
        nonce_lifetime=nonce_lifetime,
    )
