"""After a refused handshake: follow a redirect or answer an authentication challenge.

Shared by the asyncio and threading clients. A :class:`Follower` holds where
the next attempt goes (:attr:`~Follower.uri`, :attr:`~Follower.ws_uri`) and
what it sends (:meth:`~Follower.headers`); :meth:`~Follower.follow` reads a
failed attempt's exception and either updates them for one more attempt or
returns the exception to raise.

Redirects follow websockets 17: a 300, 301, 302, 303, 307 or 308 with a
``Location`` is followed, at most ``WEBSOCKETS_MAX_REDIRECTS`` times (10 by
default) before :class:`~tether.exceptions.SecurityError`; ``wss://`` to
``ws://`` is refused with :class:`~tether.exceptions.SecurityError`; a
redirect to another origin drops the ``Authorization``, ``Cookie`` and
``Proxy-Authorization`` headers and the ``auth`` credentials, and is refused
with :class:`ValueError` over a Unix socket or with ``host``/``port``
overrides; no redirect is followed with a socket given as ``sock``.

A 401 with a ``WWW-Authenticate: Digest`` challenge (RFC 7616) is answered
once, on a new connection, with the credentials of the URI or of the
``auth`` option; a 401 with only a Basic challenge is answered too when the
credentials came from ``auth`` (the URI's are sent as Basic from the start).
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from tether.digest import authorization, choose_challenge, parse_challenges
from tether.exceptions import InvalidHandshake, InvalidStatus, SecurityError
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.headers import Headers, HeadersLike
from tether.protocol.http11 import limit_from_environment
from tether.protocol.uri import WebSocketURI, parse_uri

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "Follower"]

MAX_REDIRECTS = limit_from_environment("WEBSOCKETS_MAX_REDIRECTS", 10)
"""How many redirects a client follows: ``WEBSOCKETS_MAX_REDIRECTS``, or 10."""

REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})
"""The statuses whose ``Location`` a client follows."""

_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _origin(uri: WebSocketURI) -> tuple[bool, str, int]:
    return uri.secure, uri.host, uri.port


class Follower:
    """Where a client's next handshake attempt goes, and with which headers.

    ``auth`` is a ``(username, password)`` pair used only to answer a
    challenge; the URI's user info, if any, is also sent as Basic
    credentials from the first attempt, as websockets does. ``sock``,
    ``unix`` and ``fixed_address`` (``host`` or ``port`` given) say how the
    client connects, which limits the redirects it can follow.
    """

    def __init__(
        self,
        uri: str,
        ws_uri: WebSocketURI,
        additional_headers: HeadersLike | None,
        auth: tuple[str, str] | None = None,
        *,
        sock: bool = False,
        unix: bool = False,
        fixed_address: bool = False,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        if auth is not None and ws_uri.user_info is not None:
            raise ValueError("give credentials in the URI or as auth=, not both")
        self.uri = uri
        """The URI of the next attempt, as a string."""
        self.ws_uri = ws_uri
        """The parsed URI of the next attempt."""
        self.additional_headers = additional_headers
        self.auth = auth
        self.sock = sock
        self.unix = unix
        self.fixed_address = fixed_address
        self.max_redirects = max_redirects
        self.redirects = 0
        self._authorization: str | None = None
        self._challenged = False

    def headers(self) -> HeadersLike | None:
        """The additional headers of the next attempt, with its answer to a challenge."""
        if self._authorization is None:
            return self.additional_headers
        headers = Headers(
            (name, value)
            for name, value in Headers(self.additional_headers or ()).raw_items()
            if name.lower() != "authorization"
        )
        headers["Authorization"] = self._authorization
        return headers

    def follow(self, exc: Exception) -> Exception | None:
        """Prepare the next attempt after ``exc``; or return the exception to raise.

        ``None`` means: connect again, to :attr:`ws_uri` with :meth:`headers`.
        """
        if not isinstance(exc, InvalidStatus):
            return exc
        status = exc.response.status_code
        if status == 401:
            return self._answer_challenge(exc)
        if status in REDIRECT_STATUSES and "Location" in exc.response.headers:
            return self._redirect(exc)
        return exc

    def _credentials(self) -> tuple[str, str] | None:
        return self.auth if self.auth is not None else self.ws_uri.user_info

    def _answer_challenge(self, exc: InvalidStatus) -> Exception | None:
        credentials = self._credentials()
        if self._challenged or credentials is None:
            return exc
        try:
            challenges = parse_challenges(exc.response.headers.get_all("WWW-Authenticate"))
        except InvalidHandshake:
            return exc
        digest = choose_challenge(challenges)
        if digest is not None:
            username, password = credentials
            self._authorization = authorization(
                digest, username, password, uri=self.ws_uri.resource_name
            )
        elif self.auth is not None and any(c.scheme == "basic" for c in challenges):
            self._authorization = build_authorization_basic(*self.auth)
        else:
            return exc
        # The URI's user info would add Basic credentials: the answer replaces them.
        self.ws_uri = dataclasses.replace(self.ws_uri, username=None, password=None)
        if self.auth is None:
            self.auth = credentials
        self._challenged = True
        return None

    def _redirect(self, exc: InvalidStatus) -> Exception | None:
        new_uri = urllib.parse.urljoin(self.uri, exc.response.headers["Location"])
        new_ws_uri = parse_uri(new_uri)
        if self.sock:
            return ValueError(f"cannot follow redirect to {new_uri} with a preexisting socket")
        if self.ws_uri.secure and not new_ws_uri.secure:
            return SecurityError(f"cannot follow redirect to non-secure URI {new_uri}")
        if self.redirects >= self.max_redirects:
            return SecurityError(f"more than {self.max_redirects} redirects")
        if _origin(new_ws_uri) != _origin(self.ws_uri):
            if self.unix:
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} with a Unix socket"
                )
            if self.fixed_address:
                return ValueError(
                    f"cannot follow cross-origin redirect to {new_uri} "
                    "with an explicit host or port"
                )
            # Credentials stay with the origin they were given for.
            if self.additional_headers is not None:
                self.additional_headers = Headers(
                    (name, value)
                    for name, value in Headers(self.additional_headers).raw_items()
                    if name.lower() not in _CREDENTIAL_HEADERS
                )
            self.auth = None
        self.redirects += 1
        self.uri = new_uri
        self.ws_uri = new_ws_uri
        self._authorization = None
        self._challenged = False
        return None
