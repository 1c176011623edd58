"""HTTP Digest authentication (RFC 7616) without I/O, for clients and servers.

A client that got a 401 reads its ``WWW-Authenticate`` values with
:func:`parse_challenges`, picks one with :func:`choose_challenge` and answers
it with :func:`authorization`. A server builds challenges with
:func:`build_challenge`, reads answers with :func:`parse_credentials` and
checks them with :func:`expected_response`. ``SHA-256`` and ``MD5`` (and
their ``-sess`` variants) are supported, with ``qop=auth`` or, for servers
of RFC 2069, no ``qop``; ``auth-int`` protects a request body, which a
WebSocket handshake does not have, so it is not offered. Usernames that do
not fit a quoted string travel as ``username*`` (RFC 8187), and
``userhash=true`` is honoured.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tether.exceptions import InvalidHeaderFormat
from tether.protocol.header_values import (
    _parse_quoted_string,
    _parse_token,
    _skip_commas,
    _skip_ows,
)

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "DigestCredentials",
    "authorization",
    "build_challenge",
    "choose_challenge",
    "expected_response",
    "parse_challenges",
    "parse_credentials",
]

ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
}
"""The digest algorithms, by name, each giving a lower-case hexadecimal digest."""

# Preference when a server offers several: the strongest first.
_PREFERENCE = ("SHA-256-sess", "SHA-256", "MD5-sess", "MD5")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters.

    ``scheme`` is in lower case, as are parameter names; values are
    unquoted. A ``token68`` challenge (``Negotiate abc==``) has it as
    ``token68`` and no parameters.
    """

    scheme: str
    params: Mapping[str, str]
    token68: str | None = None


def parse_challenges(values: Iterable[str], name: str = "WWW-Authenticate") -> list[Challenge]:
    """Read every challenge of the ``WWW-Authenticate`` values (RFC 9110 section 11.6.1).

    Raise :class:`~tether.exceptions.InvalidHeaderFormat` for a value that
    does not parse.
    """
    challenges: list[Challenge] = []
    for value in values:
        challenges.extend(_parse_challenge_list(value, name))
    return challenges


def _parse_challenge_list(value: str, name: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    pos = _skip_commas(value, 0)
    while pos < len(value):
        scheme, pos = _parse_token(value, pos, name)
        params: dict[str, str] = {}
        token68 = None
        after_scheme = pos
        pos = _skip_ows(value, pos)
        if pos > after_scheme and pos < len(value) and value[pos] != ",":
            match = _TOKEN68_RE.match(value, pos)
            end = _skip_ows(value, match.end()) if match else pos
            if match and (end == len(value) or value[end] == ",") and not _is_param(value, pos):
                token68, pos = match.group(), end
            else:
                pos = _parse_params(value, pos, name, params)
        challenges.append(Challenge(scheme.lower(), params, token68))
        pos = _skip_commas(value, pos)
    return challenges


def _is_param(value: str, pos: int) -> bool:
    """Tell whether ``value[pos:]`` starts with ``token BWS "="``, an auth-param."""
    match = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+[ \t]*=").match(value, pos)
    if match is None:
        return False
    # "abc==" is a token68, "abc= x" or "abc=x" a parameter.
    return not value.startswith("=", match.end())


def _parse_params(value: str, pos: int, name: str, params: dict[str, str]) -> int:
    """Read ``name=value`` pairs up to the next challenge; return where it starts."""
    while True:
        param, pos = _parse_token(value, pos, name)
        pos = _skip_ows(value, pos)
        if pos == len(value) or value[pos] != "=":
            raise InvalidHeaderFormat(name, "expected '='", value, pos)
        pos = _skip_ows(value, pos + 1)
        if pos < len(value) and value[pos] == '"':
            param_value, pos = _parse_quoted_string(value, pos, name)
        else:
            param_value, pos = _parse_token(value, pos, name)
        params[param.lower()] = param_value
        pos = _skip_ows(value, pos)
        if pos == len(value):
            return pos
        if value[pos] != ",":
            raise InvalidHeaderFormat(name, "expected comma", value, pos)
        pos = _skip_commas(value, pos + 1)
        if pos == len(value) or not _is_param(value, pos):
            # What follows is the next challenge.
            return pos


def choose_challenge(challenges: Iterable[Challenge]) -> Challenge | None:
    """Pick the Digest challenge to answer: the strongest supported algorithm with ``qop=auth``.

    Return ``None`` when no Digest challenge is usable (no nonce, an
    unsupported algorithm, or only ``qop`` values other than ``auth``).
    """
    usable: dict[str, Challenge] = {}
    for challenge in challenges:
        if challenge.scheme != "digest" or "nonce" not in challenge.params:
            continue
        algorithm = _algorithm_name(challenge.params.get("algorithm", "MD5"))
        if algorithm is None or algorithm in usable:
            continue
        qop = challenge.params.get("qop")
        if qop is not None and "auth" not in _qop_options(qop):
            continue
        usable[algorithm] = challenge
    for algorithm in _PREFERENCE:
        if algorithm in usable:
            return usable[algorithm]
    return None


def _algorithm_name(value: str) -> str | None:
    """The canonical spelling of a supported algorithm, or ``None``."""
    for algorithm in _PREFERENCE:
        if value.upper() == algorithm.upper():
            return algorithm
    return None


def _qop_options(value: str) -> list[str]:
    return [option.strip(" \t").lower() for option in value.split(",")]


def _hash(algorithm: str) -> Callable[[bytes], str]:
    return ALGORITHMS[algorithm.removesuffix("-sess")]


def _ha1(
    algorithm: str, *, username: str, realm: str, password: str, nonce: str, cnonce: str
) -> str:
    digest = _hash(algorithm)
    ha1 = digest(f"{username}:{realm}:{password}".encode())
    if algorithm.endswith("-sess"):
        ha1 = digest(f"{ha1}:{nonce}:{cnonce}".encode())
    return ha1


def expected_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str | None,
) -> str:
    """Compute the ``response`` parameter (RFC 7616 section 3.4.1).

    ``algorithm`` is a name of :data:`ALGORITHMS`, optionally with
    ``-sess``; ``qop`` is ``"auth"`` or ``None`` for the RFC 2069 form.
    """
    digest = _hash(algorithm)
    ha1 = _ha1(
        algorithm, username=username, realm=realm, password=password, nonce=nonce, cnonce=cnonce
    )
    ha2 = digest(f"{method}:{uri}".encode())
    if qop is None:
        return digest(f"{ha1}:{nonce}:{ha2}".encode())
    return digest(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fits_quoted(value: str) -> bool:
    return value.isascii() and value.isprintable()


def authorization(
    challenge: Challenge,
    username: str,
    password: str,
    *,
    method: str = "GET",
    uri: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """Answer a Digest ``challenge``: the value of the ``Authorization`` header.

    ``uri`` is the request target; ``cnonce`` is random unless given (tests
    give the RFC's). Raise :class:`ValueError` for a challenge that
    :func:`choose_challenge` would not pick.
    """
    params = challenge.params
    if challenge.scheme != "digest" or "nonce" not in params:
        raise ValueError("not a Digest challenge with a nonce")
    algorithm = _algorithm_name(params.get("algorithm", "MD5"))
    if algorithm is None:
        raise ValueError(f"unsupported digest algorithm: {params.get('algorithm')}")
    qop: str | None = None
    if "qop" in params:
        if "auth" not in _qop_options(params["qop"]):
            raise ValueError(f"unsupported qop: {params['qop']}")
        qop = "auth"
    realm = params.get("realm", "")
    nonce = params["nonce"]
    if cnonce is None:
        cnonce = os.urandom(16).hex()
    count = f"{nc:08x}"
    response = expected_response(
        algorithm=algorithm,
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        nc=count,
        cnonce=cnonce,
        qop=qop,
    )
    fields: list[str] = []
    if params.get("userhash", "").lower() == "true":
        fields.append(f"username={_quote(_hash(algorithm)(f'{username}:{realm}'.encode()))}")
    elif _fits_quoted(username) and '"' not in username and "\\" not in username:
        fields.append(f"username={_quote(username)}")
    else:
        fields.append(f"username*=UTF-8''{urllib.parse.quote(username, safe='')}")
    fields += [
        f"realm={_quote(realm)}",
        f"uri={_quote(uri)}",
        f"algorithm={params.get('algorithm', 'MD5')}",
        f"nonce={_quote(nonce)}",
    ]
    if qop is not None:
        fields += [f"nc={count}", f"cnonce={_quote(cnonce)}", f"qop={qop}"]
    fields.append(f"response={_quote(response)}")
    if "opaque" in params:
        fields.append(f"opaque={_quote(params['opaque'])}")
    if "userhash" in params:
        fields.append(f"userhash={params['userhash'].lower()}")
    return "Digest " + ", ".join(fields)


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The parameters of an ``Authorization: Digest`` header, as a server reads them.

    ``username`` is decoded from ``username*`` when that form was sent.
    """

    username: str
    realm: str
    uri: str
    nonce: str
    response: str
    algorithm: str = "MD5"
    nc: str | None = None
    cnonce: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False


def parse_credentials(value: str, name: str = "Authorization") -> DigestCredentials:
    """Read an ``Authorization: Digest ...`` value.

    Raise :class:`~tether.exceptions.InvalidHeaderFormat` when it does not
    parse, is not Digest, or lacks a required parameter.
    """
    challenges = _parse_challenge_list(value, name)
    if len(challenges) != 1 or challenges[0].scheme != "digest":
        raise InvalidHeaderFormat(name, "expected one Digest credentials", value, 0)
    params = dict(challenges[0].params)
    username = params.get("username")
    if "username*" in params:
        encoded = params["username*"]
        charset, _, rest = encoded.partition("'")
        _, _, quoted = rest.partition("'")
        if username is not None or charset.upper() != "UTF-8":
            raise InvalidHeaderFormat(name, "invalid username*", value, 0)
        try:
            username = urllib.parse.unquote(quoted, errors="strict")
        except UnicodeDecodeError:
            raise InvalidHeaderFormat(name, "invalid username*", value, 0) from None
    missing = [key for key in ("realm", "uri", "nonce", "response") if key not in params]
    if username is None or missing:
        raise InvalidHeaderFormat(name, f"missing {', '.join(missing) or 'username'}", value, 0)
    qop = params.get("qop")
    if qop is not None and ("nc" not in params or "cnonce" not in params):
        raise InvalidHeaderFormat(name, "qop without nc and cnonce", value, 0)
    return DigestCredentials(
        username=username,
        realm=params["realm"],
        uri=params["uri"],
        nonce=params["nonce"],
        response=params["response"],
        algorithm=params.get("algorithm", "MD5"),
        nc=params.get("nc"),
        cnonce=params.get("cnonce"),
        qop=qop,
        opaque=params.get("opaque"),
        userhash=params.get("userhash", "").lower() == "true",
    )


def build_challenge(
    realm: str, nonce: str, algorithm: str, *, opaque: str | None = None, stale: bool = False
) -> str:
    """Build a ``WWW-Authenticate`` value offering Digest with ``qop="auth"``."""
    fields = [
        f"realm={_quote(realm)}",
        'qop="auth"',
        f"algorithm={algorithm}",
        f"nonce={_quote(nonce)}",
    ]
    if opaque is not None:
        fields.append(f"opaque={_quote(opaque)}")
    if stale:
        fields.append("stale=true")
    fields.append('charset="UTF-8"')
    return "Digest " + ", ".join(fields)
