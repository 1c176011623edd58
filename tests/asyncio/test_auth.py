"""HTTP Basic authentication on the server: basic_auth."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

import pytest

import tether
from tether.asyncio.auth import basic_auth
from tether.asyncio.server import ServerConnection
from tether.exceptions import InvalidStatus
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, uri_of


async def whoami(ws: ServerConnection) -> None:
    await ws.send(f"you are {ws.username}")


async def login(uri: str, user: str | None, password: str = "") -> str | bytes:
    headers = {} if user is None else {"Authorization": build_authorization_basic(user, password)}
    async with tether.connect(uri, additional_headers=headers) as ws:
        return await ws.recv()


async def refused(uri: str, headers: dict[str, str] | None = None) -> Response:
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri, additional_headers=headers)
    return caught.value.response


def assert_401(response: Response, realm: str = "tether") -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}", charset="UTF-8"'


async def test_single_pair(start_server: ServerFactory) -> None:
    auth = basic_auth("tether", credentials=("alice", "s3cret"))
    server = await start_server(whoami, process_request=auth)
    assert await login(uri_of(server), "alice", "s3cret") == "you are alice"
    assert_401(await refused(uri_of(server)))
    wrong = {"Authorization": build_authorization_basic("alice", "guess")}
    assert_401(await refused(uri_of(server), wrong))
    unknown = {"Authorization": build_authorization_basic("mallory", "s3cret")}
    assert_401(await refused(uri_of(server), unknown))


async def test_credentials_in_the_uri(start_server: ServerFactory) -> None:
    server = await start_server(whoami, process_request=basic_auth(credentials=("bob", "pw")))
    uri = uri_of(server).replace("ws://", "ws://bob:pw@")
    async with tether.connect(uri) as ws:
        assert await ws.recv() == "you are bob"


async def test_several_pairs_and_non_ascii(start_server: ServerFactory) -> None:
    pairs = [("alice", "a"), ("bob", "b"), ("zoë", "mot de passe é")]
    server = await start_server(
        whoami, process_request=basic_auth("tether", credentials=iter(pairs))
    )
    for user, password in pairs:
        assert await login(uri_of(server), user, password) == f"you are {user}"
    crossed = {"Authorization": build_authorization_basic("alice", "b")}
    assert_401(await refused(uri_of(server), crossed))


async def test_empty_password(start_server: ServerFactory) -> None:
    server = await start_server(whoami, process_request=basic_auth(credentials=("guest", "")))
    assert await login(uri_of(server), "guest") == "you are guest"
    assert_401(await refused(uri_of(server)), realm="")


def sync_check(username: str, password: str) -> bool:
    return username == "carol" and hmac.compare_digest(password.encode(), b"pw")


async def async_check(username: str, password: str) -> bool:
    await asyncio.sleep(0)
    return sync_check(username, password)


@pytest.mark.parametrize("check", [sync_check, async_check], ids=["sync", "async"])
async def test_check_credentials(
    start_server: ServerFactory, check: Callable[[str, str], bool | Awaitable[bool]]
) -> None:
    auth = basic_auth("tether", check_credentials=check)
    server = await start_server(whoami, process_request=auth)
    assert await login(uri_of(server), "carol", "pw") == "you are carol"
    wrong = {"Authorization": build_authorization_basic("carol", "nope")}
    assert_401(await refused(uri_of(server), wrong))


@pytest.mark.parametrize(
    "value",
    [
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic " + "bm9jb2xvbg==",  # "nocolon"
        "Basic",
    ],
)
async def test_unreadable_authorization_gets_401(start_server: ServerFactory, value: str) -> None:
    server = await start_server(whoami, process_request=basic_auth("tether", ("a", "b")))
    assert_401(await refused(uri_of(server), {"Authorization": value}))


async def test_repeated_authorization_gets_401(start_server: ServerFactory) -> None:
    good = build_authorization_basic("a", "b")
    server = await start_server(whoami, process_request=basic_auth("tether", ("a", "b")))
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(
            uri_of(server), additional_headers=[("Authorization", good), ("Authorization", good)]
        )
    assert_401(caught.value.response)


async def test_realm_is_quoted(start_server: ServerFactory) -> None:
    auth = basic_auth('say "hi" \\o/', credentials=("a", "b"))
    server = await start_server(whoami, process_request=auth)
    response = await refused(uri_of(server))
    assert (
        response.headers["WWW-Authenticate"] == 'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
    )


async def test_composed_with_another_hook(start_server: ServerFactory) -> None:
    auth = basic_auth("tether", credentials=("alice", "s3cret"))

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "OK")
        return await auth(connection, request)

    server = await start_server(whoami, process_request=process_request)
    response = await refused(uri_of(server, "/healthz"))
    assert response.status_code == 200
    assert_401(await refused(uri_of(server, "/chat")))
    assert await login(uri_of(server, "/chat"), "alice", "s3cret") == "you are alice"


async def test_username_stays_none_without_auth(start_server: ServerFactory) -> None:
    server = await start_server(whoami)
    assert await login(uri_of(server), None) == "you are None"


async def test_unknown_user_costs_a_comparison_too(
    start_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    server = await start_server(whoami, process_request=basic_auth("t", ("alice", "pw")))
    for user in ["alice", "mallory"]:
        await refused(uri_of(server), {"Authorization": build_authorization_basic(user, "x")})
    assert len(compared) == 2
    # Both compare digests of one length: nothing tells a known user from an unknown one.
    assert {len(a) for pair in compared for a in pair} == {32}


def test_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="either"):
        basic_auth()
    with pytest.raises(ValueError, match="either"):
        basic_auth(credentials=("a", "b"), check_credentials=sync_check)


@pytest.mark.parametrize(
    "credentials",
    [[("a", "b", "c")], [("a", 1)], ["ab"], [("a", "b"), None]],
)
def test_malformed_credentials(credentials: object) -> None:
    with pytest.raises(TypeError, match="pair"):
        basic_auth(credentials=credentials)  # type: ignore[arg-type]


def test_realm_unfit_for_a_header() -> None:
    with pytest.raises(ValueError, match="value"):
        basic_auth("line\r\nbreak", credentials=("a", "b"))
