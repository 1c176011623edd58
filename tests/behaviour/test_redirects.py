"""The clients follow redirects as websockets 17 does, on every API."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

import pytest

from tests.backends import Backend, Face
from tether.exceptions import InvalidStatus, SecurityError
from tether.follow import MAX_REDIRECTS
from tether.protocol.http11 import Request, Response


def redirect(location: Callable[[Request], str], status: int = 302) -> Callable[..., Response]:
    """A process_request hook answering every request with ``status`` to ``location``."""

    def hook(connection: object, request: Request) -> Response:
        response: Response = connection.respond(status, "Moved.\n")  # type: ignore[attr-defined]
        response.headers["Location"] = location(request)
        return response

    return hook


async def tell_headers(ws: Face) -> None:
    """Send back the path and the credential headers the client sent."""
    headers = ws.native.request_headers
    path = ws.native.request.path
    await ws.send(f"{path}|{headers.get('Authorization')}|{headers.get('Cookie')}")


async def told(backend: Backend, uri: str, **options: object) -> str:
    ws = await backend.connect(uri, **options)
    message = await ws.recv()
    await ws.close()
    return str(message)


def test_redirect_statuses_are_followed(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(tell_headers) as target:

            def by_path(connection: object, request: Request) -> Response:
                # The status is the path.
                status = int(request.path[1:])
                return redirect(lambda _: f"ws://127.0.0.1:{target}/moved", status)(
                    connection, request
                )

            async with backend.serve(tell_headers, process_request=by_path) as source:
                for status in [300, 301, 302, 303, 307, 308]:
                    uri = f"ws://127.0.0.1:{source}/{status}"
                    assert await told(backend, uri) == "/moved|None|None"

    backend.run(body)


def test_relative_location_keeps_the_origin_and_its_credentials(backend: Backend) -> None:
    def hook(connection: object, request: Request) -> Response | None:
        if request.path == "/new":
            return None
        return redirect(lambda request: "new")(connection, request)

    async def body() -> None:
        async with backend.serve(tell_headers, process_request=hook) as port:
            uri = f"ws://alice:pw@127.0.0.1:{port}/dir"
            message = await told(backend, uri, additional_headers={"Cookie": "a=1"})
            path, authorization, cookie = message.split("|")
            assert path == "/new"
            assert authorization.startswith("Basic")
            assert cookie == "a=1"

    backend.run(body)


def test_cross_origin_drops_credentials(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(tell_headers) as target:
            # Another origin: localhost is not 127.0.0.1.
            hook = redirect(lambda request: f"ws://localhost:{target}/there")
            async with backend.serve(tell_headers, process_request=hook) as source:
                headers = {"Authorization": "Bearer secret", "Cookie": "session=1", "X-Kept": "y"}
                ws = await backend.connect(
                    f"ws://alice:pw@127.0.0.1:{source}/", additional_headers=headers
                )
                assert await ws.recv() == "/there|None|None"
                assert ws.native.request_headers["X-Kept"] == "y"
                await ws.close()

    backend.run(body)


def test_too_many_redirects(backend: Backend) -> None:
    hops: list[str] = []

    def hook(connection: object, request: Request) -> Response:
        hops.append(request.path)
        return redirect(lambda request: f"/hop{len(hops)}", 307)(connection, request)

    async def body() -> None:
        async with backend.serve(tell_headers, process_request=hook) as port:
            with pytest.raises(SecurityError, match=f"more than {MAX_REDIRECTS} redirects"):
                await backend.connect(f"ws://127.0.0.1:{port}/")
        assert len(hops) == MAX_REDIRECTS + 1

    backend.run(body)


def test_tls_downgrade_is_refused(
    backend: Backend, server_context: ssl.SSLContext, client_context: ssl.SSLContext
) -> None:
    async def body() -> None:
        async with backend.serve(tell_headers) as plain:
            hook = redirect(lambda request: f"ws://127.0.0.1:{plain}/", 301)
            async with backend.serve(
                tell_headers, process_request=hook, ssl=server_context
            ) as secure:
                with pytest.raises(SecurityError, match="non-secure") as caught:
                    await backend.connect(f"wss://127.0.0.1:{secure}/", ssl=client_context)
                assert isinstance(caught.value.__cause__, InvalidStatus)

    backend.run(body)


def test_what_cannot_follow_a_redirect(backend: Backend) -> None:
    async def body() -> None:
        async with backend.serve(tell_headers) as other:
            hook = redirect(lambda request: f"ws://127.0.0.1:{other}/")
            async with backend.serve(tell_headers, process_request=hook) as port:
                with pytest.raises(ValueError, match="explicit host or port"):
                    await backend.connect("ws://example.test/", host="127.0.0.1", port=port)
                if backend.api != "trio":  # tether.trio.connect takes no socket.
                    with (
                        socket.create_connection(("127.0.0.1", port)) as sock,
                        pytest.raises(ValueError, match="preexisting socket"),
                    ):
                        await backend.connect("ws://example.test/", sock=sock)

    backend.run(body)


def test_a_redirect_without_location_is_raised(backend: Backend) -> None:
    def hook(connection: object, request: Request) -> Response:
        response: Response = connection.respond(302, "")  # type: ignore[attr-defined]
        return response

    async def body() -> None:
        async with backend.serve(tell_headers, process_request=hook) as port:
            with pytest.raises(InvalidStatus, match="302"):
                await backend.connect(f"ws://127.0.0.1:{port}/")

    backend.run(body)
