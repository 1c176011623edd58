"""The scope built from a request, without a server: header names and values as given."""

from __future__ import annotations

from tether.asgi.scope import build_scope
from tether.protocol.headers import Headers
from tether.protocol.http11 import Request


def test_headers_lower_case_bytes() -> None:
    fields = [
        ("Host", "example.com"),
        ("host", "example.org"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("SEC-WEBSOCKET-VERSION", "13"),
        ("Upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("X-Custom", "caf\xe9"),
        ("sec-websocket-protocol", "chat, superchat"),
        ("Sec-WebSocket-Protocol", "v2"),
    ]
    request = Request("/a%20b?x=1", Headers(fields))
    scope = build_scope(
        request,
        asgi_version="3.0",
        scheme="ws",
        server=("127.0.0.1", 8000),
        client=("127.0.0.1", 5000),
        root_path="/api",
        state={},
    )
    assert scope["headers"] == [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in fields
    ]
    assert scope["subprotocols"] == ["chat", "superchat", "v2"]
    assert scope["path"] == "/api/a b"
    assert scope["raw_path"] == b"/api/a%20b"
    assert scope["query_string"] == b"x=1"
