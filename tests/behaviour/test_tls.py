"""Every API's client over TLS: ``wss://`` against a server with a trustme certificate."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trustme

from tests.backends import Backend, Face, echo_until_closed
from tests.behaviour.tls import client_context, over_tls


@pytest.fixture(scope="module")
def names_context(server_ca: trustme.CA) -> ssl.SSLContext:
    """A server's context for localhost and tls.tether.test, not 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert("localhost", "tls.tether.test").configure_cert(context)
    return context


async def echoed(backend: Backend, uri: str, message: str, **options: Any) -> Face:
    ws = await backend.connect(uri, **options)
    await ws.send(message)
    assert await ws.recv() == message
    await ws.close()
    return ws


def test_wss_and_what_tls_checks(
    backend: Backend, server_ca: trustme.CA, names_context: ssl.SSLContext
) -> None:
    trusting = client_context(server_ca)

    async def body() -> None:
        async with backend.serve(echo_until_closed, ssl=names_context) as port:
            ws = await echoed(backend, f"wss://localhost:{port}/secure", "encrypted", ssl=trusting)
            assert over_tls(ws)
            assert ws.native.request_headers["Host"] == f"localhost:{port}"
            assert ws.close_code == 1000
            # The default context (None or True) refuses an unknown CA.
            for option in (None, True):
                with pytest.raises(ssl.SSLCertVerificationError) as caught:
                    await backend.connect(f"wss://localhost:{port}/", ssl=option)
                assert caught.value.verify_message
            # The certificate names localhost, not 127.0.0.1: the URI's host is checked.
            with pytest.raises(ssl.SSLCertVerificationError, match=r"127\.0\.0\.1"):
                await backend.connect(f"wss://127.0.0.1:{port}/", ssl=trusting)
            # server_hostname changes what TLS checks, not the Host header.
            uri = f"wss://127.0.0.1:{port}/"
            name = {"ssl": trusting, "server_hostname": "tls.tether.test"}
            ws = await echoed(backend, uri, "by server_hostname", **name)
            assert ws.native.request_headers["Host"] == f"127.0.0.1:{port}"
            with pytest.raises(ssl.SSLCertVerificationError):
                await backend.connect(uri, ssl=trusting, server_hostname="other.tether.test")
            # A forced address keeps the URI's name for TLS and the Host header.
            uri = f"wss://tls.tether.test:{port}/"
            ws = await echoed(backend, uri, "forced", ssl=trusting, host="127.0.0.1")
            assert ws.native.request_headers["Host"] == f"tls.tether.test:{port}"

    backend.run(body)


def test_wss_to_a_plain_server(backend: Backend, server_ca: trustme.CA) -> None:
    async def body() -> None:
        async with backend.serve(echo_until_closed) as port:
            with pytest.raises(ssl.SSLError):
                await backend.connect(f"wss://localhost:{port}/", ssl=client_context(server_ca))

    backend.run(body)


def test_verification_failure_is_not_retried(
    backend: Backend, names_context: ssl.SSLContext
) -> None:
    attempts = 0

    async def body() -> None:
        async with backend.serve(echo_until_closed, ssl=names_context) as port:
            # SSLCertVerificationError is an OSError, yet trying again cannot heal it.
            loop = backend.reconnect(f"wss://localhost:{port}/", backoff_initial_delay=0.01)

            async def go_round() -> None:
                nonlocal attempts
                async for _ in loop:
                    attempts += 1

            try:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await go_round()
            finally:
                await loop.aclose()
        assert attempts == 0

    backend.run(body)
