"""Digest authentication (RFC 7616) end to end: tether's clients against digest_auth."""

from __future__ import annotations

import asyncio

import pytest

import tether
import tether.sync
from tether.asyncio.auth import digest_auth
from tether.asyncio.server import ServerConnection
from tether.digest import parse_challenges
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response

from .conftest import ServerFactory, uri_of

USERS = [("alice", "s3cret"), ("bob", "hunter2"), ("zoë", "pässword")]


async def whoami(ws: ServerConnection) -> None:
    await ws.send(f"{ws.username} {ws.request_headers['Authorization'].split()[0]}")


def with_user(uri: str, user: str, password: str) -> str:
    return uri.replace("ws://", f"ws://{user}:{password}@")


class Counting:
    """Wrap a hook: count the handshakes, keep the Authorization values seen."""

    def __init__(self, hook: object) -> None:
        self.hook = hook
        self.authorizations: list[str | None] = []

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        self.authorizations.append(request.headers.get("Authorization"))
        result: Response | None = await self.hook(connection, request)  # type: ignore[operator]
        return result


async def test_uri_credentials_answer_the_challenge(start_server: ServerFactory) -> None:
    hook = Counting(digest_auth("chat", credentials=USERS))
    server = await start_server(whoami, process_request=hook)
    async with tether.connect(with_user(uri_of(server), "alice", "s3cret")) as ws:
        assert await ws.recv() == "alice Digest"
    # Basic first, as websockets sends the URI's credentials; then one
    # answer, on a new connection, with SHA-256, the strongest offered.
    first, second = hook.authorizations
    assert first is not None
    assert first.startswith("Basic ")
    assert second is not None
    assert second.startswith("Digest ")
    assert "algorithm=SHA-256" in second
    assert "s3cret" not in second


async def test_auth_option_and_non_ascii_usernames(start_server: ServerFactory) -> None:
    hook = Counting(digest_auth("chat", credentials=USERS, algorithms=["MD5"]))
    server = await start_server(whoami, process_request=hook)
    async with tether.connect(uri_of(server), auth=("zoë", "pässword")) as ws:
        assert await ws.recv() == "zoë Digest"
    # auth= sends nothing until challenged.
    assert hook.authorizations[0] is None
    assert "username*=UTF-8''zo%C3%AB" in str(hook.authorizations[1])


async def test_wrong_password_is_refused_after_one_answer(start_server: ServerFactory) -> None:
    hook = Counting(digest_auth("chat", credentials=USERS))
    server = await start_server(whoami, process_request=hook)
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri_of(server), auth=("alice", "guess"))
    assert caught.value.response.status_code == 401
    assert len(hook.authorizations) == 2
    with pytest.raises(InvalidStatus, match="401"):
        await tether.connect(uri_of(server))
    with pytest.raises(InvalidStatus, match="401"):
        await tether.connect(uri_of(server), auth=("mallory", "s3cret"))


async def test_get_password_coroutine(start_server: ServerFactory) -> None:
    async def get_password(username: str) -> str | None:
        await asyncio.sleep(0)
        return "pw" if username == "carol" else None

    server = await start_server(whoami, process_request=digest_auth(get_password=get_password))
    async with tether.connect(uri_of(server), auth=("carol", "pw")) as ws:
        assert await ws.recv() == "carol Digest"


async def test_a_replayed_answer_is_refused(start_server: ServerFactory) -> None:
    hook = Counting(digest_auth("chat", credentials=USERS))
    server = await start_server(whoami, process_request=hook)
    async with tether.connect(uri_of(server), auth=("bob", "hunter2")) as ws:
        assert await ws.recv() == "bob Digest"
    captured = hook.authorizations[-1]
    assert captured is not None
    with pytest.raises(InvalidStatus, match="401") as caught:
        await tether.connect(uri_of(server), additional_headers={"Authorization": captured})
    assert caught.value.response.body.startswith(b"Replayed credentials.")


async def test_an_expired_nonce_is_stale(start_server: ServerFactory) -> None:
    auth = digest_auth("chat", credentials=USERS, nonce_lifetime=0)
    server = await start_server(whoami, process_request=auth)
    with pytest.raises(InvalidStatus) as caught:
        await tether.connect(uri_of(server), auth=("alice", "s3cret"))
    challenges = parse_challenges(caught.value.response.headers.get_all("WWW-Authenticate"))
    assert [c.params.get("stale") for c in challenges] == ["true", "true"]


async def test_sync_client_answers_too(start_server: ServerFactory) -> None:
    server = await start_server(whoami, process_request=digest_auth(credentials=USERS))

    def run() -> str | bytes:
        uri = with_user(uri_of(server), "bob", "hunter2")
        with tether.sync.connect(uri) as ws:
            return ws.recv(timeout=5)

    assert await asyncio.to_thread(run) == "bob Digest"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="either"):
        digest_auth()
    with pytest.raises(TypeError):
        digest_auth(credentials=[("alice", "s3cret"), "bob"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="algorithm"):
        digest_auth(credentials=USERS, algorithms=["SHA-1"])
    with pytest.raises(ValueError, match="algorithm"):
        digest_auth(credentials=USERS, algorithms=[])
    with pytest.raises(ValueError, match="not both"):
        tether.connect("ws://a:b@example.test/", auth=("a", "b"))
