"""Digest authentication (RFC 7616) end to end, on every API: its clients against digest_auth."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import Backend, Face
from tether.digest import parse_challenges
from tether.exceptions import InvalidStatus
from tether.protocol.http11 import Request, Response

USERS = [("alice", "s3cret"), ("bob", "hunter2"), ("zoë", "pässword")]


async def whoami(ws: Face) -> None:
    await ws.send(f"{ws.native.username} {ws.native.request_headers['Authorization'].split()[0]}")


def digest_auth(backend: Backend, *args: Any, **kwargs: Any) -> Any:
    """The API's own digest_auth."""
    return backend.module("auth").digest_auth(*args, **kwargs)


def counting(backend: Backend, hook: Any, seen: list[str | None]) -> Any:
    """``hook``, keeping the Authorization value of each handshake in ``seen``."""
    if backend.api == "sync":

        def plain(connection: Any, request: Request) -> Response | None:
            seen.append(request.headers.get("Authorization"))
            result: Response | None = hook(connection, request)
            return result

        return plain

    async def coroutine(connection: Any, request: Request) -> Response | None:
        seen.append(request.headers.get("Authorization"))
        result: Response | None = await hook(connection, request)
        return result

    return coroutine


async def greeting(backend: Backend, uri: str, **options: Any) -> Any:
    ws = await backend.connect(uri, **options)
    message = await ws.recv()
    await ws.close()
    return message


def test_uri_credentials_answer_the_challenge(backend: Backend) -> None:
    async def body() -> None:
        seen: list[str | None] = []
        hook = counting(backend, digest_auth(backend, "chat", credentials=USERS), seen)
        async with backend.serve(whoami, process_request=hook) as port:
            uri = f"ws://alice:s3cret@127.0.0.1:{port}/"
            assert await greeting(backend, uri) == "alice Digest"
        # Basic first, as websockets sends the URI's credentials; then one
        # answer, on a new connection, with SHA-256, the strongest offered.
        first, second = seen
        assert first is not None
        assert first.startswith("Basic ")
        assert second is not None
        assert second.startswith("Digest ")
        assert "algorithm=SHA-256" in second
        assert "s3cret" not in second

    backend.run(body)


def test_auth_option_and_non_ascii_usernames(backend: Backend) -> None:
    async def body() -> None:
        seen: list[str | None] = []
        auth = digest_auth(backend, "chat", credentials=USERS, algorithms=["MD5"])
        async with backend.serve(whoami, process_request=counting(backend, auth, seen)) as port:
            uri = f"ws://127.0.0.1:{port}/"
            assert await greeting(backend, uri, auth=("zoë", "pässword")) == "zoë Digest"
        # auth= sends nothing until challenged.
        assert seen[0] is None
        assert "username*=UTF-8''zo%C3%AB" in str(seen[1])

    backend.run(body)


def test_wrong_password_is_refused_after_one_answer(backend: Backend) -> None:
    async def body() -> None:
        seen: list[str | None] = []
        auth = digest_auth(backend, "chat", credentials=USERS)
        async with backend.serve(whoami, process_request=counting(backend, auth, seen)) as port:
            uri = f"ws://127.0.0.1:{port}/"
            with pytest.raises(InvalidStatus) as caught:
                await backend.connect(uri, auth=("alice", "guess"))
            assert caught.value.response.status_code == 401
            assert len(seen) == 2
            with pytest.raises(InvalidStatus, match="401"):
                await backend.connect(uri)
            with pytest.raises(InvalidStatus, match="401"):
                await backend.connect(uri, auth=("mallory", "s3cret"))

    backend.run(body)


def test_get_password(backend: Backend) -> None:
    def plain(username: str) -> str | None:
        return "pw" if username == "carol" else None

    async def coroutine(username: str) -> str | None:
        await backend.sleep(0)
        return plain(username)

    async def body() -> None:
        for get_password in [plain] if backend.api == "sync" else [plain, coroutine]:
            auth = digest_auth(backend, get_password=get_password)
            async with backend.serve(whoami, process_request=auth) as port:
                uri = f"ws://127.0.0.1:{port}/"
                assert await greeting(backend, uri, auth=("carol", "pw")) == "carol Digest"
                with pytest.raises(InvalidStatus, match="401"):
                    await backend.connect(uri, auth=("erin", "pw"))

    backend.run(body)


def test_a_replayed_answer_is_refused(backend: Backend) -> None:
    async def body() -> None:
        seen: list[str | None] = []
        auth = digest_auth(backend, "chat", credentials=USERS)
        async with backend.serve(whoami, process_request=counting(backend, auth, seen)) as port:
            uri = f"ws://127.0.0.1:{port}/"
            assert await greeting(backend, uri, auth=("bob", "hunter2")) == "bob Digest"
            captured = seen[-1]
            assert captured is not None
            with pytest.raises(InvalidStatus, match="401") as caught:
                await backend.connect(uri, additional_headers={"Authorization": captured})
            assert caught.value.response.body.startswith(b"Replayed credentials.")

    backend.run(body)


def test_an_expired_nonce_is_stale(backend: Backend) -> None:
    async def body() -> None:
        auth = digest_auth(backend, "chat", credentials=USERS, nonce_lifetime=0)
        async with backend.serve(whoami, process_request=auth) as port:
            with pytest.raises(InvalidStatus) as caught:
                await backend.connect(f"ws://127.0.0.1:{port}/", auth=("alice", "s3cret"))
        headers = caught.value.response.headers.get_all("WWW-Authenticate")
        assert [c.params.get("stale") for c in parse_challenges(headers)] == ["true", "true"]

    backend.run(body)


def test_options_are_checked(backend: Backend) -> None:
    with pytest.raises(ValueError, match="either"):
        digest_auth(backend)
    with pytest.raises(TypeError):
        digest_auth(backend, credentials=[("alice", "s3cret"), "bob"])
    with pytest.raises(ValueError, match="algorithm"):
        digest_auth(backend, credentials=USERS, algorithms=["SHA-1"])
    with pytest.raises(ValueError, match="algorithm"):
        digest_auth(backend, credentials=USERS, algorithms=[])
    # At once: connect reaches for no server.
    with pytest.raises(ValueError, match="not both"):
        backend.module("client").connect("ws://a:b@example.test/", auth=("a", "b"))
