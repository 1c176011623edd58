"""HTTP Basic authentication on the threading server: tether.sync.basic_auth."""

from __future__ import annotations

import hmac
import logging
import threading

import pytest

from tether.exceptions import InvalidStatus
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.headers import HeadersLike
from tether.protocol.http11 import Request, Response
from tether.sync import ServerConnection, basic_auth, connect

from .conftest import TIMEOUT, ServerFactory, uri_of


def whoami(ws: ServerConnection) -> None:
    ws.send(f"you are {ws.username}")


def login(uri: str, user: str | None, password: str = "") -> str | bytes:
    headers = {} if user is None else {"Authorization": build_authorization_basic(user, password)}
    with connect(uri, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        return ws.recv(timeout=TIMEOUT)


def refused(uri: str, headers: HeadersLike | None = None) -> Response:
    with pytest.raises(InvalidStatus) as caught:
        connect(uri, additional_headers=headers, open_timeout=TIMEOUT)
    return caught.value.response


def assert_401(response: Response, realm: str = "tether") -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}", charset="UTF-8"'


def authorization(user: str, password: str) -> dict[str, str]:
    return {"Authorization": build_authorization_basic(user, password)}


def test_single_pair(start_server: ServerFactory) -> None:
    server = start_server(whoami, process_request=basic_auth("tether", ("alice", "s3cret")))
    assert login(uri_of(server), "alice", "s3cret") == "you are alice"
    assert_401(refused(uri_of(server), authorization("alice", "guess")))
    assert_401(refused(uri_of(server), authorization("mallory", "s3cret")))
    assert server.connections == set()


def test_missing_header(start_server: ServerFactory) -> None:
    server = start_server(whoami, process_request=basic_auth("tether", ("alice", "s3cret")))
    response = refused(uri_of(server))
    assert_401(response)
    assert response.body == b"Missing credentials.\n"


def test_wrong_password_is_logged(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_server(whoami, process_request=basic_auth("tether", ("alice", "s3cret")))
    with caplog.at_level(logging.INFO, logger="tether.server"):
        response = refused(uri_of(server), authorization("alice", "guess"))
    assert_401(response)
    assert response.body == b"Invalid credentials.\n"
    assert "invalid credentials for 'alice'" in caplog.text
    assert "s3cret" not in caplog.text
    assert "guess" not in caplog.text


def test_credentials_in_the_uri(start_server: ServerFactory) -> None:
    server = start_server(whoami, process_request=basic_auth(credentials=("bob", "pw")))
    uri = uri_of(server).replace("ws://", "ws://bob:pw@")
    with connect(uri, open_timeout=TIMEOUT) as ws:
        assert ws.recv(timeout=TIMEOUT) == "you are bob"
    assert_401(refused(uri.replace("bob:pw", "bob:no")), realm="")


def test_list_of_pairs_and_non_ascii(start_server: ServerFactory) -> None:
    pairs = [("alice", "a"), ("bob", "b"), ("zoë", "mot de passe é")]
    server = start_server(whoami, process_request=basic_auth("tether", credentials=pairs))
    for user, password in pairs:
        assert login(uri_of(server), user, password) == f"you are {user}"
    assert_401(refused(uri_of(server), authorization("alice", "b")))


def test_empty_password(start_server: ServerFactory) -> None:
    server = start_server(whoami, process_request=basic_auth(credentials=("guest", "")))
    assert login(uri_of(server), "guest") == "you are guest"
    assert_401(refused(uri_of(server)), realm="")


def test_check_credentials(start_server: ServerFactory) -> None:
    threads: list[str] = []

    def check(username: str, password: str) -> bool:
        threads.append(threading.current_thread().name)
        return username == "carol" and hmac.compare_digest(password.encode(), b"pw")

    server = start_server(whoami, process_request=basic_auth("tether", check_credentials=check))
    assert login(uri_of(server), "carol", "pw") == "you are carol"
    assert_401(refused(uri_of(server), authorization("carol", "nope")))
    assert_401(refused(uri_of(server)))
    # Called once per request that had readable credentials, off the test's thread.
    assert len(threads) == 2
    assert threading.current_thread().name not in threads


@pytest.mark.parametrize(
    "value",
    ["Bearer abc", "Basic !!!notbase64", "Basic bm9jb2xvbg==", "Basic"],  # bm9... is "nocolon"
)
def test_unreadable_authorization_gets_401(start_server: ServerFactory, value: str) -> None:
    server = start_server(whoami, process_request=basic_auth("tether", ("a", "b")))
    response = refused(uri_of(server), {"Authorization": value})
    assert_401(response)
    assert response.body == b"Unsupported credentials.\n"


def test_repeated_authorization_gets_401(start_server: ServerFactory) -> None:
    good = build_authorization_basic("a", "b")
    server = start_server(whoami, process_request=basic_auth("tether", ("a", "b")))
    assert_401(refused(uri_of(server), [("Authorization", good), ("Authorization", good)]))


def test_realm_is_quoted(start_server: ServerFactory) -> None:
    server = start_server(whoami, process_request=basic_auth('say "hi" \\o/', ("a", "b")))
    response = refused(uri_of(server))
    assert (
        response.headers["WWW-Authenticate"] == 'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'
    )


def test_composed_with_another_hook(start_server: ServerFactory) -> None:
    auth = basic_auth("tether", credentials=("alice", "s3cret"))

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(200, "OK")
        return auth(connection, request)

    server = start_server(whoami, process_request=process_request)
    assert refused(uri_of(server, "/healthz")).status_code == 200
    assert_401(refused(uri_of(server, "/chat")))
    assert login(uri_of(server, "/chat"), "alice", "s3cret") == "you are alice"


def test_username_stays_none_without_auth(start_server: ServerFactory) -> None:
    server = start_server(whoami)
    assert login(uri_of(server), None) == "you are None"


def test_arguments_are_checked_at_once() -> None:
    with pytest.raises(ValueError, match="either"):
        basic_auth()
    with pytest.raises(ValueError, match="either"):
        basic_auth(credentials=("a", "b"), check_credentials=lambda user, password: True)
    with pytest.raises(TypeError, match="pair"):
        basic_auth(credentials=[("a", "b", "c")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="value"):
        basic_auth("line\r\nbreak", credentials=("a", "b"))
