"""TLS for the behaviour tests: contexts from a test CA, and whether a connection uses TLS."""

from __future__ import annotations

import ssl

import trio
import trustme

from tests.backends import Face

__all__ = ["client_context", "over_tls", "server_context"]


def server_context(server_ca: trustme.CA, name: str) -> ssl.SSLContext:
    """A server's context with a certificate for ``name`` from ``server_ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ca.issue_cert(name).configure_cert(context)
    return context


def client_context(server_ca: trustme.CA) -> ssl.SSLContext:
    """A client's context that trusts ``server_ca``."""
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    return context


def over_tls(ws: Face) -> bool:
    """Whether the connection runs over TLS, as each API tells it."""
    native = ws.native
    if native.__module__.startswith("tether.trio"):
        return isinstance(native.stream, trio.SSLStream)
    if native.__module__.startswith("tether.sync"):
        return isinstance(native.socket, ssl.SSLSocket)
    return native.transport.get_extra_info("ssl_object") is not None
