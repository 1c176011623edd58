"""HTTP responses of the opening handshake under uvicorn: its default headers, and denials.

uvicorn keeps the headers every response gets (``server`` and ``date``,
unless turned off, and any ``--header``) in ``server_state.default_headers``,
refreshed every second. The engine's own ``Date`` gives way to them.
"""

from __future__ import annotations

import http
from collections.abc import Iterable

from tether.protocol.headers import Headers
from tether.protocol.http11 import Response

__all__ = ["Denial", "add_default_headers"]

RawHeaders = Iterable[tuple[bytes, bytes]]
"""Header fields as ASGI gives them: pairs of bytes."""


def _decoded(fields: RawHeaders) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in fields]


# uvicorn replaces its list of default headers once a second (for the date):
# the list last seen and its fields, decoded and checked once for all the
# connections of that second.
_last_defaults: tuple[object, list[tuple[str, str]]] = (None, [])


def _default_fields(default_headers: RawHeaders) -> list[tuple[str, str]]:
    global _last_defaults  # noqa: PLW0603
    seen, fields = _last_defaults
    if seen is not default_headers:
        fields = list(Headers(_decoded(default_headers)).raw_items())
        _last_defaults = (default_headers, fields)
    return fields


def add_default_headers(response: Response, default_headers: RawHeaders) -> Response:
    """Replace the engine's ``Date`` with uvicorn's default headers; return ``response``."""
    fields = [field for field in response.headers.raw_items() if field[0] != "Date"]
    response.headers = Headers._adopt(fields + _default_fields(default_headers))
    return response


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


class Denial:
    """A response the application sends instead of accepting: ASGI's denial response extension.

    ``websocket.http.response.start`` gives the status and headers,
    ``websocket.http.response.body`` the body, in as many messages as the
    application likes (``more_body``). The head goes out with the first body
    message, and each piece as it comes: a body in one message gets a
    ``Content-Length``, a longer one is sent chunked unless the application
    gave its length itself. ``Connection: close``, a plain-text
    ``Content-Type`` and uvicorn's default headers are added where the
    application set none. Raise :class:`ValueError` for a status outside
    100 to 599 or a header HTTP does not allow.
    """

    __slots__ = ("_chunked", "_head", "done")

    def __init__(self, status: int, headers: RawHeaders, default_headers: RawHeaders) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"invalid HTTP status code in the denial response: {status!r}")
        fields = Headers(_decoded(headers))
        for name, value in _decoded(default_headers):
            if name not in fields:
                fields[name] = value
        if "Connection" not in fields:
            fields["Connection"] = "close"
        if "Content-Type" not in fields:
            fields["Content-Type"] = "text/plain; charset=utf-8"
        self._head: Response | None = Response(status, _phrase(status), fields)
        self._chunked = False
        self.done = False
        """Whether the whole response went out: the last body message came."""

    def body(self, body: bytes, more_body: bool) -> bytes:
        """Return the bytes to write for one ``websocket.http.response.body`` message."""
        if self.done:
            raise RuntimeError("the denial response was already sent whole")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(
                f"the body of a denial response must be bytes, got {type(body).__name__}"
            )
        out = []
        head = self._head
        if head is not None:
            self._head = None
            fields = head.headers
            if "Content-Length" not in fields and "Transfer-Encoding" not in fields:
                if more_body:
                    fields["Transfer-Encoding"] = "chunked"
                    self._chunked = True
                else:
                    fields["Content-Length"] = str(len(body))
            out.append(head.serialize())
        if self._chunked:
            if body:
                out += [b"%X\r\n" % len(body), bytes(body), b"\r\n"]
            if not more_body:
                out.append(b"0\r\n\r\n")
        else:
            out.append(bytes(body))
        self.done = not more_body
        return b"".join(out)
