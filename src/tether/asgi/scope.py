"""The ASGI connection scope of a WebSocket (ASGI WebSocket specification 2.4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from tether.protocol.header_values import parse_subprotocols
from tether.protocol.http11 import Request

__all__ = ["SPEC_VERSION", "build_scope"]

SPEC_VERSION = "2.4"
"""The version of the ASGI WebSocket specification implemented."""

# The header names and values of most handshakes as the scope gives them
# (names in lower case, both as latin-1 bytes), encoded once rather than per
# connection. Names are spelt as uvicorn hands a request over (lower case)
# and as clients usually send them.
_NAME_BYTES = {
    spelling: spelling.lower().encode()
    for name in (
        "Host",
        "Upgrade",
        "Connection",
        "Origin",
        "User-Agent",
        "Cookie",
        "Pragma",
        "Cache-Control",
        "Accept-Encoding",
        "Accept-Language",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Extensions",
        "Sec-WebSocket-Protocol",
    )
    for spelling in (name, name.lower())
}
_VALUE_BYTES = {
    value: value.encode()
    for value in (
        "websocket",
        "Upgrade",
        "upgrade",
        "13",
        "no-cache",
        "permessage-deflate; client_max_window_bits",
    )
}


def build_scope(
    request: Request,
    *,
    asgi_version: str,
    scheme: str,
    server: tuple[str, int | None] | None,
    client: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any],
) -> dict[str, Any]:
    """Describe the connection that ``request`` opens, for the application.

    ``path`` is percent-decoded and prefixed with ``root_path``, and
    ``raw_path`` is prefixed with it too, as uvicorn does for HTTP requests.
    Header names are lowercased; values are bytes as they came (latin-1).
    ``subprotocols`` lists the offered subprotocols in order; the engine has
    checked their syntax before the scope is built.
    """
    raw_path, _, query = request.path.partition("?")
    headers = []
    subprotocols: list[str] = []
    names = _NAME_BYTES
    values = _VALUE_BYTES
    for name, value in request.headers.raw_items():
        key = names.get(name)
        if key is None:
            key = name.lower().encode("latin-1")
        raw = values.get(value)
        headers.append((key, value.encode("latin-1") if raw is None else raw))
        if key == b"sec-websocket-protocol":
            subprotocols += parse_subprotocols(value)
    return {
        "type": "websocket",
        "asgi": {"version": asgi_version, "spec_version": SPEC_VERSION},
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": client,
        "root_path": root_path,
        "path": root_path + unquote(raw_path),
        "raw_path": root_path.encode("ascii") + raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "headers": headers,
        "subprotocols": subprotocols,
        "state": state,
        "extensions": {"websocket.http.response": {}},
    }
