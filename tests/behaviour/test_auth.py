"""HTTP Basic authentication on the server (basic_auth), on every API."""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.backends import Backend, Face
from tether.exceptions import InvalidStatus
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.http11 import Request, Response


async def whoami(ws: Face) -> None:
    await ws.send(f"you are {ws.native.username}")


def authorization(user: str, password: str) -> dict[str, str]:
    return {"Authorization": build_authorization_basic(user, password)}


async def login(backend: Backend, uri: str, user: str | None, password: str = "") -> Any:
    """Connect with these credentials (none if ``user`` is None); return the greeting."""
    headers = {} if user is None else authorization(user, password)
    ws = await backend.connect(uri, additional_headers=headers)
    greeting = await ws.recv()
    await ws.close()
    return greeting


async def refused(backend: Backend, uri: str, headers: Any = None) -> Response:
    with pytest.raises(InvalidStatus) as caught:
        await backend.connect(uri, additional_headers=headers)
    return caught.value.response


def assert_401(response: Response, realm: str = "tether") -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}", charset="UTF-8"'


def basic_auth(backend: Backend, *args: Any, **kwargs: Any) -> Any:
    """The API's own basic_auth."""
    return backend.module("auth").basic_auth(*args, **kwargs)


def test_single_pair(backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tether.server")

    async def body() -> None:
        auth = basic_auth(backend, "tether", credentials=("alice", "s3cret"))
        async with backend.serve(whoami, process_request=auth) as port:
            uri = f"ws://127.0.0.1:{port}/"
            assert await login(backend, uri, "alice", "s3cret") == "you are alice"
            missing = await refused(backend, uri)
            assert_401(missing)
            assert missing.body == b"Missing credentials.\n"
            wrong = await refused(backend, uri, authorization("alice", "guess"))
            assert_401(wrong)
            assert wrong.body == b"Invalid credentials.\n"
            assert_401(await refused(backend, uri, authorization("mallory", "s3cret")))
            await backend.until(lambda: not backend.server.connections)

    backend.run(body)
    assert "invalid credentials for 'alice'" in caplog.text
    assert "s3cret" not in caplog.text
    assert "guess" not in caplog.text


def test_credentials_in_the_uri(backend: Backend) -> None:
    async def body() -> None:
        auth = basic_auth(backend, credentials=("bob", "pw"))
        async with backend.serve(whoami, process_request=auth) as port:
            uri = f"ws://bob:pw@127.0.0.1:{port}/"
            ws = await backend.connect(uri)
            assert await ws.recv() == "you are bob"
            await ws.close()
            assert_401(await refused(backend, uri.replace("bob:pw", "bob:no")), realm="")

    backend.run(body)


def test_several_pairs_and_non_ascii(backend: Backend) -> None:
    pairs = [("alice", "a"), ("bob", "b"), ("zoë", "mot de passe é")]

    async def body() -> None:
        for credentials in (pairs, iter(pairs)):
            auth = basic_auth(backend, "tether", credentials=credentials)
            async with backend.serve(whoami, process_request=auth) as port:
                uri = f"ws://127.0.0.1:{port}/"
                for user, password in pairs:
                    assert await login(backend, uri, user, password) == f"you are {user}"
                assert_401(await refused(backend, uri, authorization("alice", "b")))

    backend.run(body)


def test_empty_password(backend: Backend) -> None:
    async def body() -> None:
        auth = basic_auth(backend, credentials=("guest", ""))
        async with backend.serve(whoami, process_request=auth) as port:
            uri = f"ws://127.0.0.1:{port}/"
            assert await login(backend, uri, "guest") == "you are guest"
            assert_401(await refused(backend, uri), realm="")

    backend.run(body)


def test_check_credentials(backend: Backend) -> None:
    threads: list[threading.Thread] = []

    def check(username: str, password: str) -> bool:
        threads.append(threading.current_thread())
        return username == "carol" and hmac.compare_digest(password.encode(), b"pw")

    async def async_check(username: str, password: str) -> bool:
        await backend.sleep(0)
        return check(username, password)

    checks: list[Callable[[str, str], Any]] = [check]
    if backend.api != "sync":
        checks.append(async_check)

    async def body() -> None:
        for each in checks:
            auth = basic_auth(backend, "tether", check_credentials=each)
            async with backend.serve(whoami, process_request=auth) as port:
                uri = f"ws://127.0.0.1:{port}/"
                assert await login(backend, uri, "carol", "pw") == "you are carol"
                assert_401(await refused(backend, uri, authorization("carol", "nope")))
                assert_401(await refused(backend, uri))

    backend.run(body)
    # Called once per request that had readable credentials.
    assert len(threads) == 2 * len(checks)
    if backend.api == "sync":  # In the connection's thread.
        assert threading.main_thread() not in threads


@pytest.mark.parametrize(
    "value",
    ["Bearer abc", "Basic !!!notbase64", "Basic bm9jb2xvbg==", "Basic"],  # bm9... is "nocolon"
)
def test_unreadable_authorization_gets_401(backend: Backend, value: str) -> None:
    async def body() -> None:
        auth = basic_auth(backend, "tether", ("a", "b"))
        async with backend.serve(whoami, process_request=auth) as port:
            response = await refused(backend, f"ws://127.0.0.1:{port}/", {"Authorization": value})
            assert_401(response)
            assert response.body == b"Unsupported credentials.\n"

    backend.run(body)


def test_repeated_authorization_realm_and_no_auth(backend: Backend) -> None:
    async def body() -> None:
        good = build_authorization_basic("a", "b")
        async with backend.serve(
            whoami, process_request=basic_auth(backend, "tether", ("a", "b"))
        ) as port:
            repeated = [("Authorization", good), ("Authorization", good)]
            assert_401(await refused(backend, f"ws://127.0.0.1:{port}/", repeated))
        auth = basic_auth(backend, 'say "hi" \\o/', credentials=("a", "b"))
        async with backend.serve(whoami, process_request=auth) as port:
            response = await refused(backend, f"ws://127.0.0.1:{port}/")
            expected = 'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
            assert response.headers["WWW-Authenticate"] == expected
        # Without authentication, username stays None.
        async with backend.serve(whoami) as port:
            assert await login(backend, f"ws://127.0.0.1:{port}/", None) == "you are None"

    backend.run(body)


def test_composed_with_another_hook(backend: Backend) -> None:
    auth = basic_auth(backend, "tether", credentials=("alice", "s3cret"))

    def health(connection: Any, request: Request) -> Response | None:
        if request.path == "/healthz":
            response: Response = connection.respond(200, "OK")
            return response
        return None

    def plain(connection: Any, request: Request) -> Response | None:
        return health(connection, request) or auth(connection, request)

    async def coroutine(connection: Any, request: Request) -> Response | None:
        return health(connection, request) or await auth(connection, request)

    async def body() -> None:
        hook = plain if backend.api == "sync" else coroutine
        async with backend.serve(whoami, process_request=hook) as port:
            uri = f"ws://127.0.0.1:{port}"
            assert (await refused(backend, f"{uri}/healthz")).status_code == 200
            assert_401(await refused(backend, f"{uri}/chat"))
            assert await login(backend, f"{uri}/chat", "alice", "s3cret") == "you are alice"

    backend.run(body)


def test_unknown_user_costs_a_comparison_too(
    backend: Backend, compared_digests: list[tuple[bytes, bytes]]
) -> None:

    async def body() -> None:
        auth = basic_auth(backend, "t", ("alice", "pw"))
        async with backend.serve(whoami, process_request=auth) as port:
            for user in ["alice", "mallory"]:
                await refused(backend, f"ws://127.0.0.1:{port}/", authorization(user, "x"))

    backend.run(body)
    assert len(compared_digests) == 2
    # Both compare digests of one length: nothing tells a known user from an unknown one.
    assert {len(a) for pair in compared_digests for a in pair} == {32}


def test_arguments_are_checked_at_once(backend: Backend) -> None:
    with pytest.raises(ValueError, match="either"):
        basic_auth(backend)
    with pytest.raises(ValueError, match="either"):
        basic_auth(backend, credentials=("a", "b"), check_credentials=lambda user, password: True)
    for credentials in [[("a", "b", "c")], [("a", 1)], ["ab"], [("a", "b"), None]]:
        with pytest.raises(TypeError, match="pair"):
            basic_auth(backend, credentials=credentials)
    with pytest.raises(ValueError, match="value"):
        basic_auth(backend, "line\r\nbreak", credentials=("a", "b"))
