"""HTTP authentication on a server, shared by both APIs: Basic and Digest.

Each reads the credentials of a handshake request, checks them and builds
the 401 answer. It does no I/O: each API's
``basic_auth`` hook calls it around the one step that differs, calling a
check function that may be a coroutine in the asyncio API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeGuard, TypeVar, cast

from tether.digest import (
    ALGORITHMS,
    DigestCredentials,
    build_challenge,
    expected_response,
    parse_credentials,
)
from tether.exceptions import InvalidHeader
from tether.log import ConnectionLogger
from tether.protocol.header_values import parse_authorization_basic
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response

__all__ = [
    "AuthConnection",
    "BasicAuth",
    "Credentials",
    "DigestAuth",
    "async_basic_auth",
    "async_digest_auth",
    "credentials_checker",
]

Credentials = tuple[str, str]
"""A username and its password."""

CheckResult = TypeVar("CheckResult")
Parsed = TypeVar("Parsed")


class AuthConnection(Protocol):
    """What authentication needs of a server connection; both APIs' connections have it."""

    username: str | None

    @property
    def logger(self) -> ConnectionLogger:
        """The connection's logger."""
        ...

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
        return _read_authorization(
            connection, request, parse_authorization_basic, self.unauthorized
        )

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
    pairs = _pairs(credentials)
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


def _pairs(credentials: Credentials | Iterable[Credentials]) -> list[Credentials]:
    """The ``(username, password)`` pairs of ``credentials``: one pair or an iterable of them.

    Raise :exc:`TypeError` when it holds something else than pairs of strings.
    """
    if _is_pair(credentials):
        return [credentials]
    items = list(cast(Iterable[object], credentials))
    pairs = [pair for pair in items if _is_pair(pair)]
    if len(pairs) != len(items):
        raise TypeError("credentials must be a (username, password) pair or pairs")
    return pairs


def _read_authorization(
    connection: AuthConnection,
    request: Request,
    parse: Callable[[str], Parsed],
    unauthorized: Callable[[AuthConnection, str], Response],
) -> Parsed | Response:
    """Parse the request's one ``Authorization`` value, or build the 401 that refuses it.

    A request gets the 401 when it has no ``Authorization`` header, more
    than one, or one that ``parse`` refuses with
    :class:`~tether.exceptions.InvalidHeader`.
    """
    values = request.headers.get_all("Authorization")
    if not values:
        return unauthorized(connection, "Missing credentials.")
    try:
        if len(values) > 1:
            raise InvalidHeader("Authorization", "multiple values")
        return parse(values[0])
    except InvalidHeader:
        return unauthorized(connection, "Unsupported credentials.")


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


class DigestAuth:
    """The I/O-free part of HTTP Digest authentication (RFC 7616) on a server.

    Give either ``credentials``, one ``(username, password)`` pair or an
    iterable of them, or ``get_password(username)``, which returns the
    password or ``None`` for an unknown user (Digest needs the password
    itself, not a check of it). A request without valid credentials gets a
    401 with one challenge per algorithm of ``algorithms`` (``SHA-256`` and
    ``MD5`` by default, strongest first), ``qop="auth"`` and a nonce.

    Nonces are made here, not stored: each carries its time of issue and a
    keyed MAC of it, so that any nonce this instance issued in the last
    ``nonce_lifetime`` seconds is accepted. An older one gets a new
    challenge with ``stale=true``, which clients answer without asking the
    user again. Each nonce counts its uses: an ``nc`` that is not larger
    than the last one seen for that nonce is a replay and refused.

    A hook does::

        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        return auth.conclude(connection, request, found, get_password(found.username))
    """

    def __init__(
        self,
        realm: str,
        credentials: Credentials | Iterable[Credentials] | None,
        get_password: Callable[[str], CheckResult] | None,
        *,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        nonce_lifetime: float = 300.0,
    ) -> None:
        if (credentials is None) == (get_password is None):
            raise ValueError("provide either credentials or get_password")
        self.get_password: Callable[[str], CheckResult | str | None]
        """Return a user's password, or ``None`` for an unknown user."""
        if get_password is not None:
            self.get_password = get_password
        else:
            assert credentials is not None
            self.get_password = _password_lookup(credentials)
        self.realm = realm
        self.algorithms = list(algorithms)
        for algorithm in self.algorithms:
            if algorithm.removesuffix("-sess") not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm: {algorithm}")
        if not self.algorithms:
            raise ValueError("give at least one algorithm")
        self.nonce_lifetime = nonce_lifetime
        self._key = os.urandom(32)
        self._opaque = os.urandom(16).hex()
        # The highest nonce count seen per nonce still alive.
        self._counts: dict[str, int] = {}
        # Refuse a realm unfit for a header now.
        Headers([("WWW-Authenticate", build_challenge(realm, "x", self.algorithms[0]))])

    def _nonce(self) -> str:
        issued = f"{time.time():.6f}"
        mac = hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:32]
        return base64.urlsafe_b64encode(f"{issued} {mac}".encode()).decode()

    def _nonce_state(self, nonce: str) -> str:
        """``"fresh"``, ``"stale"`` (ours but too old) or ``"invalid"``."""
        try:
            issued, _, mac = base64.urlsafe_b64decode(nonce.encode()).decode().partition(" ")
            when = float(issued)
        except (ValueError, UnicodeError):
            return "invalid"
        expected = hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            return "invalid"
        return "fresh" if time.time() - when <= self.nonce_lifetime else "stale"

    def unauthorized(self, connection: AuthConnection, text: str, stale: bool = False) -> Response:
        """Build a 401 with a challenge per algorithm and a plain-text body."""
        response = connection.respond(401, text + "\n")
        nonce = self._nonce()
        for algorithm in self.algorithms:
            challenge = build_challenge(
                self.realm, nonce, algorithm, opaque=self._opaque, stale=stale
            )
            response.headers["WWW-Authenticate"] = challenge
        return response

    def read(self, connection: AuthConnection, request: Request) -> DigestCredentials | Response:
        """Return the request's Digest credentials, or the 401 that refuses it."""
        return _read_authorization(connection, request, parse_credentials, self.unauthorized)

    def conclude(
        self,
        connection: AuthConnection,
        request: Request,
        credentials: DigestCredentials,
        password: str | None,
    ) -> Response | None:
        """Check ``credentials`` against ``password``: set ``connection.username`` or return a 401.

        ``password`` is the user's, or ``None`` for an unknown user, who
        costs the same computation as a known one.
        """
        username = credentials.username
        algorithm = next(
            (name for name in self.algorithms if name.upper() == credentials.algorithm.upper()),
            None,
        )
        if (
            algorithm is None
            or credentials.qop != "auth"
            or credentials.userhash
            or credentials.realm != self.realm
            or credentials.uri != request.path
            or credentials.opaque not in (None, self._opaque)
            or credentials.nc is None
            or credentials.cnonce is None
        ):
            connection.logger.info("unusable digest credentials for %r", username)
            return self.unauthorized(connection, "Unsupported credentials.")
        expected = expected_response(
            algorithm=algorithm,
            username=username,
            realm=self.realm,
            password=os.urandom(16).hex() if password is None else password,
            method="GET",
            uri=credentials.uri,
            nonce=credentials.nonce,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            qop="auth",
        )
        valid = hmac.compare_digest(expected, credentials.response.lower())
        if password is None or not valid:
            connection.logger.info("invalid credentials for %r", username)
            return self.unauthorized(connection, "Invalid credentials.")
        state = self._nonce_state(credentials.nonce)
        if state != "fresh":
            return self.unauthorized(connection, "Stale nonce.", stale=state == "stale")
        if not self._count(credentials.nonce, credentials.nc):
            connection.logger.info("replayed digest credentials for %r", username)
            return self.unauthorized(connection, "Replayed credentials.")
        connection.username = username
        return None

    def _count(self, nonce: str, nc: str) -> bool:
        """Record a use of ``nonce``; tell whether its count is new (not a replay)."""
        try:
            count = int(nc, 16)
        except ValueError:
            return False
        if count <= self._counts.get(nonce, 0):
            return False
        if len(self._counts) >= _MAX_NONCES:
            # Forget the nonces that expired: their uses are refused anyway.
            self._counts = {
                key: value
                for key, value in self._counts.items()
                if self._nonce_state(key) == "fresh"
            }
            if len(self._counts) >= _MAX_NONCES:
                return False
        self._counts[nonce] = count
        return True


# How many live nonces a DigestAuth remembers the counts of: beyond, new
# nonces are refused until old ones expire, which bounds the memory used.
_MAX_NONCES = 100_000


def _password_lookup(
    credentials: Credentials | Iterable[Credentials],
) -> Callable[[str], str | None]:
    """Build the lookup of fixed credentials; raise :exc:`TypeError` for anything but pairs."""
    return dict(_pairs(credentials)).get


AuthConn = TypeVar("AuthConn", bound=AuthConnection)


def async_basic_auth(
    realm: str,
    credentials: Credentials | Iterable[Credentials] | None,
    check_credentials: Callable[[str, str], bool | Awaitable[bool]] | None,
) -> Callable[[AuthConn, Request], Awaitable[Response | None]]:
    """The ``process_request`` hook of the async APIs' ``basic_auth``.

    ``check_credentials`` may be a plain or a coroutine function.
    """
    auth = BasicAuth(realm, credentials, check_credentials)

    async def process_request(connection: AuthConn, request: Request) -> Response | None:
        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        username, password = found
        valid = auth.check(username, password)
        if inspect.isawaitable(valid):
            valid = await valid
        return auth.conclude(connection, username, valid)

    return process_request


def async_digest_auth(
    realm: str,
    credentials: Credentials | Iterable[Credentials] | None,
    get_password: Callable[[str], str | Awaitable[str | None] | None] | None,
    *,
    algorithms: Iterable[str] = ("SHA-256", "MD5"),
    nonce_lifetime: float = 300.0,
) -> Callable[[AuthConn, Request], Awaitable[Response | None]]:
    """The ``process_request`` hook of the async APIs' ``digest_auth``.

    ``get_password`` may be a plain or a coroutine function.
    """
    auth = DigestAuth(
        realm, credentials, get_password, algorithms=algorithms, nonce_lifetime=nonce_lifetime
    )

    async def process_request(connection: AuthConn, request: Request) -> Response | None:
        found = auth.read(connection, request)
        if isinstance(found, Response):
            return found
        password = auth.get_password(found.username)
        if inspect.isawaitable(password):
            password = await password
        return auth.conclude(connection, request, found, cast(str | None, password))

    return process_request
