"""The I/O-free part of HTTP Basic authentication, shared by both APIs: tether.auth."""

from __future__ import annotations

import logging

import pytest

from tether.auth import BasicAuth, credentials_checker
from tether.log import connection_logger
from tether.protocol.header_values import build_authorization_basic
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request, Response
from tether.protocol.server import ServerProtocol


class FakeConnection:
    """Just what BasicAuth uses of a server connection."""

    def __init__(self) -> None:
        self.username: str | None = None
        self.logger = connection_logger("tether.test.auth", "tether", "fake", self)
        self.protocol = ServerProtocol(server_header="test")

    def respond(self, status: int, text: str) -> Response:
        return self.protocol.reject(status, text)


def request(*authorization: str) -> Request:
    return Request("/", Headers([("Authorization", value) for value in authorization]))


def basic(username: str, password: str) -> str:
    return build_authorization_basic(username, password)


def assert_401(response: object, text: str, realm: str = "r") -> None:
    assert isinstance(response, Response)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Basic realm="{realm}", charset="UTF-8"'
    assert response.headers["Server"] == "test"
    assert response.body == f"{text}\n".encode()


# credentials_checker


def test_checker_single_pair() -> None:
    check = credentials_checker(("alice", "s3cret"))
    assert check("alice", "s3cret")
    assert not check("alice", "s3cre")
    assert not check("alice", "")
    assert not check("bob", "s3cret")


def test_checker_several_pairs_from_an_iterator() -> None:
    check = credentials_checker(iter([("a", "1"), ("b", "2"), ("zoë", "é")]))
    assert check("a", "1")
    assert check("b", "2")
    assert check("zoë", "é")
    assert not check("a", "2")
    assert not check("c", "1")


def test_checker_empty_iterable_lets_nobody_in() -> None:
    check = credentials_checker([])
    assert not check("", "")


def test_checker_does_not_keep_passwords() -> None:
    check = credentials_checker(("alice", "s3cret"))
    assert check.__closure__ is not None
    kept = [cell.cell_contents for cell in check.__closure__]
    assert "s3cret" not in repr(kept)


@pytest.mark.parametrize(
    "credentials",
    [[("a", "b", "c")], [("a", 1)], ["ab"], [("a", "b"), None], [["a", "b"]]],
)
def test_checker_refuses_non_pairs(credentials: object) -> None:
    with pytest.raises(TypeError, match="pair"):
        credentials_checker(credentials)  # type: ignore[arg-type]


def test_checker_compares_digests_of_one_length(
    compared_digests: list[tuple[bytes, bytes]],
) -> None:
    check = credentials_checker(("alice", "pw"))
    assert not check("alice", "a much longer password than the real one")
    assert not check("mallory", "pw")
    assert check("alice", "pw")
    assert len(compared_digests) == 3
    assert {len(a) for pair in compared_digests for a in pair} == {32}


# BasicAuth


def test_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="either"):
        BasicAuth("r", None, None)
    with pytest.raises(ValueError, match="either"):
        BasicAuth("r", ("a", "b"), lambda username, password: True)


def test_fixed_credentials_check() -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    assert auth.check("a", "b") is True
    assert auth.check("a", "c") is False


def test_check_function_is_used_as_is() -> None:
    def check(username: str, password: str) -> str:
        return f"{username}:{password}"

    auth = BasicAuth("r", None, check)
    assert auth.check is check


def test_challenge_quotes_the_realm() -> None:
    auth: BasicAuth[bool] = BasicAuth('say "hi" \\o/', ("a", "b"), None)
    assert auth.challenge == 'Basic realm="say \\"hi\\" \\\\o/", charset="UTF-8"'


def test_realm_unfit_for_a_header() -> None:
    with pytest.raises(ValueError, match="value"):
        BasicAuth("line\r\nbreak", ("a", "b"), None)


def test_read_credentials() -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    connection = FakeConnection()
    assert auth.read(connection, request(basic("zoë", "p:w d"))) == ("zoë", "p:w d")
    assert connection.username is None


def test_read_missing_credentials() -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    assert_401(auth.read(FakeConnection(), request()), "Missing credentials.")


@pytest.mark.parametrize(
    "values",
    [
        ["Bearer abc"],
        ["Basic !!!notbase64"],
        ["Basic bm9jb2xvbg=="],  # "nocolon"
        ["Basic"],
        [basic("a", "b"), basic("a", "b")],
    ],
)
def test_read_unsupported_credentials(values: list[str]) -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    assert_401(auth.read(FakeConnection(), request(*values)), "Unsupported credentials.")


def test_conclude_valid_sets_username() -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    connection = FakeConnection()
    assert auth.conclude(connection, "a", True) is None
    assert connection.username == "a"


def test_conclude_invalid_refuses_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    auth: BasicAuth[bool] = BasicAuth("r", ("a", "b"), None)
    connection = FakeConnection()
    with caplog.at_level(logging.INFO, logger="tether.test.auth"):
        response = auth.conclude(connection, "mallory", False)
    assert_401(response, "Invalid credentials.")
    assert connection.username is None
    assert "invalid credentials for 'mallory'" in caplog.text


def test_whole_exchange_as_a_hook_does() -> None:
    auth: BasicAuth[bool] = BasicAuth("", [("a", "1"), ("b", "2")], None)

    def hook(connection: FakeConnection, req: Request) -> Response | None:
        found = auth.read(connection, req)
        if isinstance(found, Response):
            return found
        username, password = found
        return auth.conclude(connection, username, auth.check(username, password))

    connection = FakeConnection()
    assert hook(connection, request(basic("b", "2"))) is None
    assert connection.username == "b"
    assert_401(hook(FakeConnection(), request(basic("b", "1"))), "Invalid credentials.", "")
