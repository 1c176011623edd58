from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tether.exceptions import InvalidHeader, InvalidHeaderFormat, InvalidHeaderValue
from tether.protocol import header_values
from tether.protocol.header_values import (
    ExtensionHeader,
    build_authorization_basic,
    build_extensions,
    build_subprotocols,
    parse_authorization_basic,
    parse_connection,
    parse_extensions,
    parse_subprotocols,
    parse_token_list,
    parse_upgrade,
)

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)


# Lists of tokens


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Upgrade", ["Upgrade"]),
        ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
        ("keep-alive,Upgrade", ["keep-alive", "Upgrade"]),
        (" \tUpgrade \t", ["Upgrade"]),
        (",Upgrade", ["Upgrade"]),
        ("Upgrade,", ["Upgrade"]),
        (", ,\t, Upgrade , , x ,, ", ["Upgrade", "x"]),
    ],
)
def test_parse_connection(value: str, expected: list[str]) -> None:
    assert parse_connection(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "pos"),
    [
        ("", "expected token", 0),
        (" , ,", "expected token", 4),
        ("Upgrade keep-alive", "expected comma", 8),
        ("Upgrade;x", "expected comma", 7),
        ("a, (b)", "expected token", 3),
        ("caf\xe9", "expected comma", 3),
    ],
)
def test_parse_connection_invalid(value: str, error: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_connection(value)
    exc = exc_info.value
    assert exc.name == "Connection"
    assert exc.error == error
    assert exc.pos == pos
    assert str(exc) == f"invalid Connection header: {error} at {pos} in {value}"


def test_parse_token_list_uses_name() -> None:
    assert parse_token_list("a, b", "X-List") == ["a", "b"]
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_token_list("", "X-List")
    assert exc_info.value.name == "X-List"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("websocket", ["websocket"]),
        ("WebSocket", ["WebSocket"]),
        ("HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11", ["HTTP/2.0", "SHTTP/1.3", "IRC/6.9", "RTA/x11"]),
        (" websocket/13 ,", ["websocket/13"]),
    ],
)
def test_parse_upgrade(value: str, expected: list[str]) -> None:
    assert parse_upgrade(value) == expected


@pytest.mark.parametrize(
    ("value", "pos"), [("websocket/", 10), ("/13", 0), ("a/b/c", 3), ("a /b", 2)]
)
def test_parse_upgrade_invalid(value: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_upgrade(value)
    assert exc_info.value.name == "Upgrade"
    assert exc_info.value.pos == pos


def test_parse_subprotocols() -> None:
    assert parse_subprotocols("chat, superchat") == ["chat", "superchat"]
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_subprotocols("chat superchat")
    assert exc_info.value.name == "Sec-WebSocket-Protocol"


def test_build_subprotocols() -> None:
    assert build_subprotocols(["chat"]) == "chat"
    assert build_subprotocols(("chat", "v2.json")) == "chat, v2.json"


@pytest.mark.parametrize(
    ("subprotocols", "message"),
    [
        ([], "no subprotocols"),
        ([""], "invalid subprotocol: ''"),
        (["a b"], "invalid subprotocol"),
        (["a,b"], "invalid subprotocol"),
        (["a\r\nX: y"], "invalid subprotocol"),
    ],
)
def test_build_subprotocols_invalid(subprotocols: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_subprotocols(subprotocols)


@given(st.lists(tokens, min_size=1))
def test_subprotocols_round_trip(subprotocols: list[str]) -> None:
    assert parse_subprotocols(build_subprotocols(subprotocols)) == subprotocols


# Extensions


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("permessage-deflate", [("permessage-deflate", [])]),
        (
            "permessage-deflate; client_max_window_bits",
            [("permessage-deflate", [("client_max_window_bits", None)])],
        ),
        (
            "permessage-deflate;server_max_window_bits=10;client_no_context_takeover",
            [
                (
                    "permessage-deflate",
                    [("server_max_window_bits", "10"), ("client_no_context_takeover", None)],
                )
            ],
        ),
        ('a; b="10"', [("a", [("b", "10")])]),
        ('a; b="1\\0"', [("a", [("b", "10")])]),
        ("a ; b = 10 ; c", [("a", [("b", "10"), ("c", None)])]),
        ("a\t;\tb\t=\t10\t", [("a", [("b", "10")])]),
        ("a; b=1; b=2", [("a", [("b", "1"), ("b", "2")])]),
        (
            "foo, bar; baz, foo; x=y",
            [("foo", []), ("bar", [("baz", None)]), ("foo", [("x", "y")])],
        ),
        (", a ,, b; c ,", [("a", []), ("b", [("c", None)])]),
    ],
)
def test_parse_extensions(value: str, expected: list[ExtensionHeader]) -> None:
    assert parse_extensions(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "pos"),
    [
        ("", "expected token", 0),
        (";a", "expected token", 0),
        ("a;", "expected token", 2),
        ("a; ", "expected token", 3),
        ("a;;b", "expected token", 2),
        ("a; b=", "expected token", 5),
        ("a; b=,", "expected token", 5),
        ("a; b=c d", "expected comma", 7),
        ("a b", "expected comma", 2),
        ('a; b="c', "unterminated quoted string", 7),
        ('a; b="', "unterminated quoted string", 6),
        ('a; b="c\\', "invalid escape in quoted string", 8),
        ('a; b="c\\\x00"', "invalid escape in quoted string", 8),
        ('a; b="c\x00"', "invalid character in quoted string", 7),
        ('a; b="c\u20ac"', "invalid character in quoted string", 7),
        ('a; b="c d"', "quoted value is not a token", 5),
        ('a; b=""', "quoted value is not a token", 5),
        ('a; b="c,d"', "quoted value is not a token", 5),
        ('a; b="c"d', "expected comma", 8),
        ('a; "b"=c', "expected token", 3),
    ],
)
def test_parse_extensions_invalid(value: str, error: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_extensions(value)
    exc = exc_info.value
    assert (exc.name, exc.error, exc.pos) == ("Sec-WebSocket-Extensions", error, pos)


def test_parse_extensions_name() -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_extensions("", name="X-Extensions")
    assert exc_info.value.name == "X-Extensions"


def test_build_extensions() -> None:
    assert build_extensions([("permessage-deflate", [])]) == "permessage-deflate"
    assert (
        build_extensions(
            [
                ("permessage-deflate", [("client_max_window_bits", None)]),
                ("permessage-deflate", [("server_max_window_bits", "10"), ("x", None)]),
            ]
        )
        == "permessage-deflate; client_max_window_bits, "
        "permessage-deflate; server_max_window_bits=10; x"
    )


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([], "no extensions"),
        ([("", [])], "invalid extension name: ''"),
        ([("a b", [])], "invalid extension name"),
        ([("a", [("b c", None)])], "invalid extension parameter name: 'b c'"),
        ([("a", [("b", "c d")])], "invalid extension parameter value: 'c d'"),
        ([("a", [("b", "")])], "invalid extension parameter value: ''"),
        ([("a", [("b", "\r\n")])], "invalid extension parameter value"),
    ],
)
def test_build_extensions_invalid(
    extensions: list[tuple[str, list[tuple[str, str | None]]]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_extensions(extensions)


extension_headers = st.lists(
    st.tuples(tokens, st.lists(st.tuples(tokens, st.none() | tokens), max_size=4)),
    min_size=1,
    max_size=4,
)


@given(extension_headers)
def test_extensions_round_trip(extensions: list[ExtensionHeader]) -> None:
    assert parse_extensions(build_extensions(extensions)) == extensions


def quote_everything(text: str) -> str:
    return '"' + "".join("\\" + char for char in text) + '"'


@given(extension_headers)
def test_extensions_quoted_values(extensions: list[ExtensionHeader]) -> None:
    # Quoting every value, and escaping every character, changes nothing.
    value = ", ".join(
        " ; ".join(
            [name]
            + [
                param if param_value is None else f"{param}={quote_everything(param_value)}"
                for param, param_value in params
            ]
        )
        for name, params in extensions
    )
    assert parse_extensions(value) == extensions


# Hostile values: each must finish quickly, whatever the outcome. A parser
# that backtracked or rescanned would hang here instead.

HOSTILE = [
    "a" + ";" * 100_000,
    "a=" + '"' + "\\" * 100_000,
    'a;b="' + "\\" * 100_000,
    'a;b="' + "\\a" * 50_000,
    'a;b="' + "a" * 100_000,
    ", " * 100_000,
    "a" + ", a" * 20_000,
    "a; b" * 20_000,
    "a" * 200_000,
    "\t" * 100_000 + "x",
    "a/" * 50_000,
    "Basic " + " " * 100_000,
    "Basic " + "A" * 100_000 + "=" * 100_000 + "!",
]


@pytest.mark.parametrize("value", HOSTILE, ids=lambda value: repr(value[:12]))
@pytest.mark.parametrize(
    "parse",
    [
        parse_connection,
        parse_upgrade,
        parse_subprotocols,
        parse_extensions,
        parse_authorization_basic,
    ],
)
def test_hostile_values(value: str, parse: Callable[[str], object]) -> None:
    with contextlib.suppress(InvalidHeader):
        parse(value)


def test_hostile_values_that_parse() -> None:
    assert len(parse_connection("a" + ", a" * 20_000)) == 20_001
    assert parse_extensions('a;b="' + "\\a" * 50_000 + '"') == [("a", [("b", "a" * 50_000)])]


# Basic authentication


def test_build_authorization_basic() -> None:
    # The example of RFC 7617 section 2.
    assert build_authorization_basic("Aladdin", "open sesame") == (
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    )
    assert build_authorization_basic("", "") == "Basic Og=="


def test_build_authorization_basic_colon_in_username() -> None:
    with pytest.raises(ValueError, match="username must not contain a colon"):
        build_authorization_basic("a:b", "c")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),
        ("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", ("Aladdin", "open sesame")),
        ("BASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ== \t", ("Aladdin", "open sesame")),
        ("Basic dXNlcjpwYTpzcw==", ("user", "pa:ss")),
        ("Basic Og==", ("", "")),
    ],
)
def test_parse_authorization_basic(value: str, expected: tuple[str, str]) -> None:
    assert parse_authorization_basic(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "pos"),
    [
        ("", "expected scheme", 0),
        (" Basic Og==", "expected scheme", 0),
        ("Basic", "expected space after scheme", 5),
        ("Basic\tOg==", "expected space after scheme", 5),
        ("Basic ", "expected credentials", 6),
        ("Basic !", "expected credentials", 6),
        ("Basic Og== x", "unexpected data after credentials", 11),
        ("Basic Og==x", "unexpected data after credentials", 10),
    ],
)
def test_parse_authorization_basic_invalid_format(value: str, error: str, pos: int) -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_authorization_basic(value)
    exc = exc_info.value
    assert (exc.name, exc.error, exc.pos) == ("Authorization", error, pos)
    assert str(exc) == f"invalid Authorization header: {error} at {pos} in [credentials hidden]"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Bearer abc", "unsupported scheme: Bearer"),
        ("Basic Og", "credentials aren't base64-encoded UTF-8"),
        ("Basic O-g=", "credentials aren't base64-encoded UTF-8"),
        ("Basic /w==", "credentials aren't base64-encoded UTF-8"),
        ("Basic dXNlcg==", "credentials have no colon"),
    ],
)
def test_parse_authorization_basic_invalid_value(value: str, message: str) -> None:
    with pytest.raises(InvalidHeaderValue) as exc_info:
        parse_authorization_basic(value)
    assert str(exc_info.value) == f"invalid Authorization header: {message}"


def test_parse_authorization_basic_name() -> None:
    with pytest.raises(InvalidHeaderFormat) as exc_info:
        parse_authorization_basic("", name="Proxy-Authorization")
    assert exc_info.value.name == "Proxy-Authorization"


@given(st.text().filter(lambda text: ":" not in text), st.text())
def test_authorization_basic_round_trip(username: str, password: str) -> None:
    value = build_authorization_basic(username, password)
    assert parse_authorization_basic(value) == (username, password)


# Parsed lists are remembered per value; callers still own what they get.


def test_parsed_lists_are_fresh_copies() -> None:
    value = "permessage-deflate; client_max_window_bits, x-other"
    first = parse_extensions(value)
    first[0][1].append(("injected", None))
    first.append(("injected", []))
    assert parse_extensions(value) == [
        ("permessage-deflate", [("client_max_window_bits", None)]),
        ("x-other", []),
    ]
    tokens = parse_connection("keep-alive, Upgrade")
    tokens.clear()
    assert parse_connection("keep-alive, Upgrade") == ["keep-alive", "Upgrade"]


def test_errors_are_raised_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidHeaderFormat, match="expected token"):
            parse_upgrade("websocket, /1")


def _outcome(parse: Callable[..., object], *args: object) -> object:
    try:
        return parse(*args)
    except InvalidHeaderFormat as exc:
        return str(exc)


@given(values=st.lists(st.text(alphabet=TCHARS + ", ;=", max_size=30), max_size=600))
def test_remembered_results_match_a_fresh_parse(values: list[str]) -> None:
    # More distinct values than the memory holds, long ones included.
    name = "Sec-WebSocket-Extensions"
    for value in [*values, "x" * 300 + ", y"]:
        remembered = _outcome(parse_extensions, value)
        fresh = _outcome(header_values._scan_list, value, name, header_values._parse_extension)
        if isinstance(fresh, tuple):
            fresh = [(extension, list(params)) for extension, params in fresh]
        assert remembered == fresh
    assert len(header_values._parsed) <= header_values._CACHE_SIZE
