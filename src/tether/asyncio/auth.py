"""HTTP Basic authentication for :func:`~tether.asyncio.server.serve`: :func:`basic_auth`."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeGuard, cast

from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidHeader
from tether.protocol.header_values import parse_authorization_basic
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

__all__ = ["basic_auth"]

Credentials = tuple[str, str]
"""A username and its password."""

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
    if (credentials is None) == (check_credentials is None):
        raise TypeError("give either credentials or check_credentials")
    check = check_credentials if check_credentials is not None else _checker(credentials)
    challenge = f'Basic realm="{_quote(realm)}", charset="UTF-8"'
    Headers([("WWW-Authenticate", challenge)])  # Refuse a realm unfit for a header now.

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        values = request.headers.get_all("Authorization")
        if not values:
            return _unauthorized(connection, challenge, "Missing credentials.")
        try:
            if len(values) > 1:
                raise InvalidHeader("Authorization", "multiple values")
            username, password = parse_authorization_basic(values[0])
        except InvalidHeader:
            return _unauthorized(connection, challenge, "Unsupported credentials.")
        valid = check(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        if not valid:
            connection.logger.info("invalid credentials for %r", username)
            return _unauthorized(connection, challenge, "Invalid credentials.")
        connection.username = username
        return None

    return process_request


def _checker(credentials: Credentials | Iterable[Credentials] | None) -> Callable[[str, str], bool]:
    """Build the check of a fixed set of credentials."""
    if _is_pair(credentials):
        pairs = [credentials]
    else:
        items = list(cast(Iterable[object], credentials))
        pairs = [pair for pair in items if _is_pair(pair)]
        if len(pairs) != len(items):
            raise TypeError("credentials must be a (username, password) pair or pairs")
    # Keyed digests have one length whatever the password's, and stay in
    # memory rather than the passwords.
    key = os.urandom(32)

    def digest(password: str) -> bytes:
        return hmac.new(key, password.encode(), hashlib.sha256).digest()

    known = {username: digest(password) for username, password in pairs}
    # An unknown user is compared with this, so that it takes as long as a known one.
    dummy = digest(os.urandom(16).hex())

    def check(username: str, password: str) -> bool:
        expected = known.get(username)
        matches = hmac.compare_digest(digest(password), dummy if expected is None else expected)
        return expected is not None and matches

    return check


def _is_pair(value: object) -> TypeGuard[Credentials]:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], str)
    )


def _quote(realm: str) -> str:
    """Escape ``realm`` for a quoted-string (RFC 9110 section 5.6.4)."""
    return realm.replace("\\", "\\\\").replace('"', '\\"')


def _unauthorized(connection: ServerConnection, challenge: str, text: str) -> Response:
    response = connection.respond(401, text)
    response.headers["WWW-Authenticate"] = challenge
    return response
