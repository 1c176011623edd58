"""HTTP Basic authentication on a server, shared by both APIs: :class:`BasicAuth`.

It reads the credentials of a handshake request, checks fixed credentials in
constant time and builds the 401 answer. It does no I/O: each API's
``basic_auth`` hook calls it around the one step that differs, calling a
check function that may be a coroutine in the asyncio API.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeGuard, TypeVar, cast

from tether.exceptions import InvalidHeader
from tether.log import ConnectionLogger
from tether.protocol.header_values import parse_authorization_basic
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

__all__ = ["AuthConnection", "BasicAuth", "Credentials", "credentials_checker"]

Credentials = tuple[str, str]
"""A username and its password."""

CheckResult = TypeVar("CheckResult")


class AuthConnection(Protocol):
    """What authentication needs of a server connection; both APIs' connections have it."""

    username: str | None
    logger: ConnectionLogger

    def respond(self, status: int, text: str) -> Response:
        """Build an HTTP response with a plain-text body."""
        ...


class BasicAuth(Generic[CheckResult]):
    """The I/O-free part of HTTP Basic authentication (RFC 7617) on a server.

    Give either ``credentials``, one ``(username, password)`` pair or an
    iterable of them, or ``check_credentials(username, password)``; the hook
    calls :attr:`check`, which returns what ``check_credentials`` returns, or
    a ``bool`` for fixed credentials. Raise :exc:`ValueError` unless exactly
    one is given (as websockets does) or when ``realm`` cannot go in a
    header, and :exc:`TypeError` when ``credentials`` holds something else
    than pairs.

    A hook does::

        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        username, password = found
        return auth.conclude(connection, username, auth.check(username, password))
    """

    def __init__(
        self,
        realm: str,
        credentials: Credentials | Iterable[Credentials] | None,
        check_credentials: Callable[[str, str], CheckResult] | None,
    ) -> None:
        if (credentials is None) == (check_credentials is None):
            raise ValueError("provide either credentials or check_credentials")
        self.check: Callable[[str, str], CheckResult | bool]
        """Tell whether a username and password are valid."""
        if check_credentials is not None:
            self.check = check_credentials
        else:
            assert credentials is not None
            self.check = credentials_checker(credentials)
        self.challenge = f'Basic realm="{_quote(realm)}", charset="UTF-8"'
        """The value of ``WWW-Authenticate`` in a 401."""
        Headers([("WWW-Authenticate", self.challenge)])  # Refuse a realm unfit for a header now.

    def read(self, connection: AuthConnection, request: Request) -> Credentials | Response:
        """Return the request's username and password, or the 401 that refuses it.

        A request gets a 401 when it has no ``Authorization`` header, more
        than one, or one that is not readable Basic credentials.
        """
        values = request.headers.get_all("Authorization")
        if not values:
            return self.unauthorized(connection, "Missing credentials.")
        try:
            if len(values) > 1:
                raise InvalidHeader("Authorization", "multiple values")
            return parse_authorization_basic(values[0])
        except InvalidHeader:
            return self.unauthorized(connection, "Unsupported credentials.")

    def conclude(self, connection: AuthConnection, username: str, valid: bool) -> Response | None:
        """Let ``username`` in if ``valid``: set ``connection.username``; else return a 401."""
        if not valid:
            connection.logger.info("invalid credentials for %r", username)
            return self.unauthorized(connection, "Invalid credentials.")
        connection.username = username
        return None

    def unauthorized(self, connection: AuthConnection, text: str) -> Response:
        """Build a 401 with the challenge and a plain-text body."""
        response = connection.respond(401, text + "\n")
        response.headers["WWW-Authenticate"] = self.challenge
        return response


def credentials_checker(
    credentials: Credentials | Iterable[Credentials],
) -> Callable[[str, str], bool]:
    """Build the check of fixed credentials: one pair or an iterable of pairs.

    Passwords are compared in constant time, and an unknown username costs
    the same comparison as a known one, so that timing tells neither. Raise
    :exc:`TypeError` when ``credentials`` holds something else than pairs of
    strings.
    """
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
