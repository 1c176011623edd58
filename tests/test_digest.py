"""tether.digest: RFC 7616's worked example, challenges and credentials."""

from __future__ import annotations

import pytest

from tether.digest import (
    Challenge,
    authorization,
    build_challenge,
    choose_challenge,
    expected_response,
    parse_challenges,
    parse_credentials,
)
from tether.exceptions import InvalidHeaderFormat

# RFC 7616 section 3.9.1: the same request answered with MD5 and SHA-256.
RFC_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)
RFC_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc_7616_example(algorithm: str) -> None:
    challenge = choose_challenge(parse_challenges([RFC_CHALLENGE.format(algorithm)]))
    assert challenge is not None
    value = authorization(
        challenge, "Mufasa", "Circle of Life", uri="/dir/index.html", cnonce=RFC_CNONCE
    )
    assert value == (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        f'nc=00000001, cnonce="{RFC_CNONCE}", qop=auth, '
        f'response="{RFC_RESPONSES[algorithm]}", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    # A server reads it back and finds the same response.
    credentials = parse_credentials(value)
    assert credentials.username == "Mufasa"
    assert credentials.response == RFC_RESPONSES[algorithm]
    recomputed = expected_response(
        algorithm=credentials.algorithm,
        username="Mufasa",
        realm=credentials.realm,
        password="Circle of Life",
        method="GET",
        uri=credentials.uri,
        nonce=credentials.nonce,
        nc=str(credentials.nc),
        cnonce=str(credentials.cnonce),
        qop=credentials.qop,
    )
    assert recomputed == RFC_RESPONSES[algorithm]


def test_several_challenges_in_one_header() -> None:
    challenges = parse_challenges(
        [
            'Basic realm="a, b", Digest realm="x", nonce=abc, algorithm=MD5, '
            "Negotiate YWJj==, Bearer",
            'Digest nonce="n2", algorithm=SHA-256, qop="auth"',
        ]
    )
    assert challenges == [
        Challenge("basic", {"realm": "a, b"}),
        Challenge("digest", {"realm": "x", "nonce": "abc", "algorithm": "MD5"}),
        Challenge("negotiate", {}, "YWJj=="),
        Challenge("bearer", {}),
        Challenge("digest", {"nonce": "n2", "algorithm": "SHA-256", "qop": "auth"}),
    ]
    # The strongest usable one is answered.
    assert choose_challenge(challenges) == challenges[4]


@pytest.mark.parametrize(
    "value",
    ['Digest realm="x', "Digest realm=x y=z", "Digest =x", 'Digest r="\x01"'],
)
def test_malformed_challenges(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat):
        parse_challenges([value])


@pytest.mark.parametrize(
    "value",
    [
        "Basic realm=x",
        "Digest realm=x",  # no nonce
        "Digest nonce=n, algorithm=SHA-1",
        'Digest nonce=n, qop="auth-int"',
    ],
)
def test_challenges_not_answered(value: str) -> None:
    challenges = parse_challenges([value])
    assert choose_challenge(challenges) is None
    with pytest.raises(ValueError, match=r"Digest|algorithm|qop"):
        authorization(challenges[0], "u", "p", uri="/")


def test_rfc_2069_sess_and_userhash() -> None:
    # No qop: the response of RFC 2069, without nc nor cnonce.
    plain = authorization(Challenge("digest", {"nonce": "n", "realm": "r"}), "u", "p", uri="/")
    assert "qop" not in plain
    assert "nc=" not in plain
    assert parse_credentials(plain).qop is None
    # -sess folds the nonces into HA1; userhash hides the username.
    challenge = Challenge(
        "digest",
        {
            "nonce": "n",
            "realm": "r",
            "algorithm": "SHA-256-sess",
            "qop": "auth",
            "userhash": "TRUE",
        },
    )
    value = authorization(challenge, "u", "p", uri="/", cnonce="c")
    credentials = parse_credentials(value)
    assert credentials.userhash
    assert credentials.username != "u"
    assert credentials.response == expected_response(
        algorithm="SHA-256-sess",
        username="u",
        realm="r",
        password="p",
        method="GET",
        uri="/",
        nonce="n",
        nc="00000001",
        cnonce="c",
        qop="auth",
    )


def test_usernames_that_need_encoding() -> None:
    challenge = Challenge("digest", {"nonce": "n", "qop": "auth"})
    for username in ("zoë", 'quo"te', "back\\slash"):
        value = authorization(challenge, username, "p", uri="/")
        assert "username*=UTF-8''" in value
        assert parse_credentials(value).username == username


@pytest.mark.parametrize(
    "value",
    [
        "Basic dXNlcjpwYXNz",
        'Digest realm="r", uri="/", nonce="n", response="x"',  # no username
        'Digest username="u", uri="/", nonce="n", response="x"',  # no realm
        'Digest username="u", realm="r", uri="/", nonce="n", response="x", qop=auth',
        "Digest username*=\"ISO-8859-1''x\", realm=r, uri=/, nonce=n, response=x",
        "Digest username*=\"UTF-8''%ff\", realm=r, uri=/, nonce=n, response=x",
        "Digest username=u, username*=\"UTF-8''u\", realm=r, uri=/, nonce=n, response=x",
        'Digest username="u", realm="r", uri="/", nonce="n", response="x", Digest x=y',
    ],
)
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat):
        parse_credentials(value)


def test_build_challenge() -> None:
    value = build_challenge('say "hi"', "nonce", "SHA-256", opaque="o", stale=True)
    (challenge,) = parse_challenges([value])
    assert challenge.params == {
        "realm": 'say "hi"',
        "qop": "auth",
        "algorithm": "SHA-256",
        "nonce": "nonce",
        "opaque": "o",
        "stale": "true",
        "charset": "UTF-8",
    }
