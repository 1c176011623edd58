"""The server's protocol engine: the opening handshake, then :class:`Connection`."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

from tether.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidMessage,
    InvalidMethod,
    InvalidOrigin,
    InvalidProtocol,
    InvalidState,
    InvalidUpgrade,
    NegotiationError,
    SecurityError,
)
from tether.extensions.base import Extension, ExtensionParameter, ServerExtensionFactory
from tether.protocol.connection import (
    _CLOSED,
    _CONNECTING,
    _OPEN,
    _SERVER,
    DEFAULT_MAX_SIZE,
    Connection,
)
from tether.protocol.events import RequestReceived
from tether.protocol.handshake import (
    USER_AGENT,
    accept_key,
    check_key,
    check_upgrade,
    date_field,
    error_response,
    single_value,
)
from tether.protocol.header_values import build_extensions, parse_extensions, parse_subprotocols
from tether.protocol.headers import Headers, _pack_fields, _PackedHeaders, check_header
from tether.protocol.http11 import Limits, Request, RequestParser, Response, _read_request

__all__ = ["Origin", "ServerProtocol", "SubprotocolSelector", "server_engines"]

Origin = str | re.Pattern[str] | None
"""An allowed ``Origin``: an exact value, a pattern matching it whole, or ``None`` for none."""

SubprotocolSelector = Callable[["ServerProtocol", Sequence[str]], str | None]
"""A hook that picks a subprotocol among those the client offered, or ``None``."""

# A client must wait for the response before sending more (RFC 6455 section
# 4.1). Bytes it sends early are kept for after a 101, but not without bound:
# the server may take its time to answer.
_MAX_EARLY_DATA = 1 << 16

_SERVER_FIELD = ("Server", USER_AGENT)


class ServerProtocol(Connection):
    """The server side of a WebSocket connection, handshake included.

    The client's request comes out as a
    :class:`~tether.protocol.events.RequestReceived` event. Answer it with
    :meth:`accept` (or :meth:`reject`), adjust the response if you like, and
    pass it to :meth:`send_response`. A request too malformed to read is
    answered by the engine itself with a 4xx response.
    """

    __slots__ = (
        "_handshake",
        "_limits",
        "_parser",
        "_pending_extensions",
        "_request",
        "_response",
        "available_extensions",
        "available_subprotocols",
        "handshake_exc",
        "origins",
        "select_subprotocol",
        "server_header",
        "subprotocol",
    )

    def __init__(
        self,
        *,
        origins: Sequence[Origin] | None = None,
        extensions: Sequence[ServerExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        select_subprotocol: SubprotocolSelector | None = None,
        server_header: str | None = USER_AGENT,
        max_size: int | tuple[int | None, int | None] | None = DEFAULT_MAX_SIZE,
        max_fragments: int | None = None,
        streaming: bool = False,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(
            _SERVER,
            state=_CONNECTING,
            max_size=max_size,
            max_fragments=max_fragments,
            streaming=streaming,
        )
        # Tuples: a server's engines share the ones server_engines made.
        self.origins = None if origins is None else tuple(origins)
        self.available_extensions = tuple(extensions or ())
        self.available_subprotocols = tuple(subprotocols or ())
        self.select_subprotocol = select_subprotocol
        self.server_header = server_header
        self._request: Request | None = None
        self._response: Response | None = None
        # An open connection's request and response, packed in one block
        # until either is read again (see _pack_handshake), or None.
        self._handshake: bytes | None = None
        self.subprotocol: str | None = None
        self.handshake_exc: InvalidHandshake | None = None
        self._limits = limits
        # Made only for a request that does not come whole in the first
        # read, and dropped once it is read.
        self._parser: RequestParser | None = None
        # The extensions accepted for the response, until it is sent.
        self._pending_extensions: Sequence[Extension] = ()

    # The handshake's request and response

    @property
    def request(self) -> Request | None:
        """The client's handshake request, once read; ``None`` until then."""
        if self._handshake is not None:
            self._unpack_handshake()
        return self._request

    @request.setter
    def request(self, request: Request | None) -> None:
        if self._handshake is not None:
            # The response set aside with it must read back as sent.
            self._unpack_handshake()
        self._request = request

    @property
    def response(self) -> Response | None:
        """The handshake response, once sent; ``None`` until then."""
        if self._handshake is not None:
            self._unpack_handshake()
        return self._response

    @response.setter
    def response(self, response: Response | None) -> None:
        if self._handshake is not None:
            self._unpack_handshake()
        self._response = response

    def _pack_handshake(self, response_block: bytes) -> None:
        """Keep the request and the 101 response as one block until either is read again.

        An open connection keeps both for its whole life and most never read
        them again: one block of bytes takes less than half the memory of
        the two objects, their headers and their fields. ``response_block``
        is the response's header block, which :meth:`send_response` has
        just built. The first read of :attr:`request` or :attr:`response`
        makes both again, with equal contents, and they stay: each is then
        the same object at every read (two threads reading the first time
        at once may each get its own, equal, copy). A request and response
        that would not read back the same (a reason phrase of the
        application's, a field with a line feed or past Latin-1, no fields)
        keep their objects, and only their headers are packed (see
        :meth:`Headers._pack`).
        """
        request, response = self._request, self._response
        assert response is not None
        if (
            request is not None
            and type(request.headers) is Headers
            and type(response.headers) is Headers
            and response.reason_phrase == "Switching Protocols"
            and not response.body
            and response.headers._fields
            and response_block.count(b"\n") == len(response.headers._fields) + 1
        ):
            request_block = _pack_fields(request.headers._fields)
            if request_block is not None:
                # The path last: whatever it holds, it ends the block.
                path = request.path.encode("utf-8", "surrogatepass")
                self._handshake = request_block + response_block + path
                self._request = self._response = None
                return
        response.headers._pack(response_block)
        if request is not None:
            request.headers._pack()

    def _unpack_handshake(self) -> None:
        """Make the request and the response again from the block of :meth:`_pack_handshake`."""
        block = self._handshake
        if block is None:  # pragma: no cover - another thread read it meanwhile
            return
        # The request's header block and the response's, each ending with its
        # only empty line, then the path.
        request_end = block.index(b"\r\n\r\n") + 4
        response_end = block.index(b"\r\n\r\n", request_end) + 4
        request = Request(
            block[response_end:].decode("utf-8", "surrogatepass"),
            _PackedHeaders._adopt(block[:request_end]),  # type: ignore[arg-type]
        )
        headers = _PackedHeaders._adopt(block[request_end:response_end])  # type: ignore[arg-type]
        self._request = request
        self._response = Response(101, "Switching Protocols", headers)
        self._handshake = None

    # Reading the request

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._request is not None:
            # Bytes after the request, before the response: keep them for later.
            self._keep_early_data(data)
            return
        parser = self._parser
        if parser is None:
            # The usual request comes whole in one read: read it in one call.
            head = _read_request(data, self._limits)
            if head is not None:
                request, end = head
                self._request_read(request, data[end:])
                return
            parser = self._parser = RequestParser(self._limits)
        try:
            parser.receive_data(bytes(data))
        except InvalidHandshake as exc:
            self._refuse_unreadable(exc)
            return
        if parser.result is not None:
            self._parser = None
            self._request_read(parser.result, parser.leftover)

    def _request_read(self, request: Request, leftover: bytes | bytearray | memoryview) -> None:
        self._request = request
        self._queue_event(RequestReceived(request))
        self._keep_early_data(leftover)

    def _keep_early_data(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        buffer = self._buffer
        if buffer:
            assert type(buffer) is bytearray
            buffer += data
        else:
            buffer = self._buffer = bytearray(data)
        if len(buffer) > _MAX_EARLY_DATA:
            # Give up on the client as if it had gone away: no response.
            self._buffer = b""
            self.handshake_exc = SecurityError(
                f"more than {_MAX_EARLY_DATA} bytes sent before the handshake response"
            )
            self._input_done = True
            self._close_transport = True
            self.state = _CLOSED

    def receive_eof(self) -> None:
        """Tell the engine the client closed TCP."""
        if self.state is _CONNECTING and self._request is None and not self._input_done:
            self.handshake_exc = InvalidMessage("connection closed during the handshake request")
        super().receive_eof()

    def _refuse_unreadable(self, exc: InvalidHandshake) -> None:
        if isinstance(exc, SecurityError):
            status = 431
        elif isinstance(exc, InvalidMethod):
            status = 405
        elif isinstance(exc, InvalidProtocol):
            status = 505
        else:
            status = 400
        extra = Headers({"Allow": "GET"}) if status == 405 else None
        text = f"Failed to open a WebSocket connection: {exc}.\n"
        response = error_response(status, text, headers=extra, server=self.server_header)
        self.handshake_exc = exc
        self.send_response(response)

    # Answering it

    def accept(
        self, request: Request, *, select_subprotocol: SubprotocolSelector | None = None
    ) -> Response:
        """Check ``request`` and build the response: 101, or an error.

        On an error the response explains it in plain text, and
        ``handshake_exc`` holds the exception. ``select_subprotocol``
        replaces the engine's own for this call (the servers pass one that
        calls the user's hook with their connection).
        """
        try:
            key, extensions_header, protocol = self._process_request(
                request, select_subprotocol or self.select_subprotocol
            )
        except InvalidOrigin as exc:
            return self._refuse(exc, 403, f"Failed to open a WebSocket connection: {exc}.")
        except InvalidUpgrade as exc:
            return self._refuse(
                exc,
                426,
                "Failed to open a WebSocket connection: "
                f"{exc}.\n\nYou cannot access a WebSocket server directly with a browser. "
                "You need a WebSocket client.",
                Headers([("Upgrade", "websocket"), ("Connection", "Upgrade")]),
            )
        except _UnsupportedVersion as exc:
            # RFC 9110 section 15.5.22: a 426 must say what to upgrade to.
            return self._refuse(
                exc,
                426,
                f"Failed to open a WebSocket connection: {exc}.",
                Headers(
                    [
                        ("Upgrade", "websocket"),
                        ("Connection", "Upgrade"),
                        ("Sec-WebSocket-Version", "13"),
                    ]
                ),
            )
        except InvalidHandshake as exc:
            return self._refuse(exc, 400, f"Failed to open a WebSocket connection: {exc}.")

        fields = [
            date_field(),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
        ]
        # The negotiated values come from parsed tokens and build_extensions,
        # which check them: only the server header is the user's to get wrong.
        if extensions_header is not None:
            fields.append(("Sec-WebSocket-Extensions", extensions_header))
        if protocol is not None:
            fields.append(("Sec-WebSocket-Protocol", protocol))
        server = self.server_header
        if server is not None:
            check_header("Server", server)
            # The default header: one field shared by every response.
            fields.append(_SERVER_FIELD if server == USER_AGENT else ("Server", server))
        headers = Headers._adopt(fields)
        self.subprotocol = protocol
        return Response(101, "Switching Protocols", headers)

    def reject(self, status: int, text: str) -> Response:
        """Build a response that refuses the connection with ``status`` and ``text`` as its body."""
        return error_response(status, text, server=self.server_header)

    def _refuse(
        self, exc: InvalidHandshake, status: int, text: str, headers: Headers | None = None
    ) -> Response:
        self.handshake_exc = exc
        return error_response(status, text + "\n", headers=headers, server=self.server_header)

    def send_response(self, response: Response) -> None:
        """Send the handshake response; a 101 opens the connection, anything else ends it."""
        if self._response is not None or self._handshake is not None:
            raise InvalidState("the handshake response was already sent")
        if self.state is not _CONNECTING:
            raise InvalidState(f"cannot send the handshake response while {self.state.name}")
        self._response = response
        # As response.serialize(), with the header block at hand.
        status_line = response._status_line()
        headers = response.headers
        block = headers.serialize()
        self._queue_output(status_line + block + response.body)
        if response.status_code == 101:
            self._pack_handshake(block)
            self._set_extensions(self._pending_extensions)
            # An open connection keeps only its own list of extensions.
            self._pending_extensions = ()
            self.state = _OPEN
            if self._buffer:
                # Frames that came with the request.
                buffered = bytes(self._buffer)
                self._buffer = b""
                self.receive_data(buffered)
        else:
            if self.handshake_exc is None:
                self.handshake_exc = InvalidHandshake(
                    f"connection refused with HTTP {response.status_code}"
                )
            self._input_done = True
            self._close_transport = True
            self.state = _CLOSED

    def _process_request(
        self, request: Request, select_subprotocol: SubprotocolSelector | None
    ) -> tuple[str, str | None, str | None]:
        """Check the request (RFC 6455 section 4.2.1); return the key and negotiated values."""
        # One pass over the fields, rather than a scan per header looked up.
        values = request.headers._grouped()
        single_value(values.get("host", []), "Host")
        check_upgrade(values.get("connection", []), values.get("upgrade", []))
        key = single_value(values.get("sec-websocket-key", []), "Sec-WebSocket-Key")
        check_key(key)
        version = single_value(values.get("sec-websocket-version", []), "Sec-WebSocket-Version")
        if version != "13":
            raise _UnsupportedVersion("Sec-WebSocket-Version", version)
        self._check_origin(values.get("origin", []))
        extensions_header = self._negotiate_extensions(values.get("sec-websocket-extensions", []))
        protocol = self._negotiate_subprotocol(
            values.get("sec-websocket-protocol", []), select_subprotocol
        )
        return key, extensions_header, protocol

    def _check_origin(self, values: list[str]) -> None:
        if self.origins is None:
            return
        if len(values) > 1:
            raise InvalidHeader("Origin", "multiple values")
        origin = values[0] if values else None
        for allowed in self.origins:
            if allowed is None or isinstance(allowed, str):
                if origin == allowed:
                    return
            elif origin is not None and allowed.fullmatch(origin):
                return
        raise InvalidOrigin(origin)

    def _negotiate_extensions(self, values: list[str]) -> str | None:
        if not values:
            self._pending_extensions = ()
            return None
        accepted: list[Extension] = []
        answer: list[tuple[str, list[ExtensionParameter]]] = []
        offers = [offer for value in values for offer in parse_extensions(value)]
        for name, params in offers:
            for factory in self.available_extensions:
                if factory.name != name:
                    continue
                try:
                    response_params, extension = factory.process_request_params(params, accepted)
                except NegotiationError:
                    continue
                accepted.append(extension)
                answer.append((name, response_params))
                break
        self._pending_extensions = accepted
        return build_extensions(answer) if answer else None

    def _negotiate_subprotocol(
        self, values: list[str], select_subprotocol: SubprotocolSelector | None
    ) -> str | None:
        if not values and select_subprotocol is None and not self.available_subprotocols:
            return None
        offered = [protocol for value in values for protocol in parse_subprotocols(value)]
        if select_subprotocol is not None:
            chosen = select_subprotocol(self, offered)
            if chosen is not None and chosen not in offered:
                raise NegotiationError(f"selected subprotocol {chosen} was not offered")
            return chosen
        available = self.available_subprotocols
        if not available:
            return None
        # As websockets: a server with subprotocols refuses a client that shares none.
        if not offered:
            raise NegotiationError("missing subprotocol")
        for protocol in available:
            if protocol in offered:
                return protocol
        raise NegotiationError("invalid subprotocol; expected one of " + ", ".join(available))


def server_engines(
    *,
    origins: Sequence[Origin] | None,
    extensions: Sequence[ServerExtensionFactory] | None,
    subprotocols: Sequence[str] | None,
    select_subprotocol: SubprotocolSelector | None,
    server_header: str | None,
    max_size: int | tuple[int | None, int | None] | None,
    limits: Limits | None = None,
) -> Callable[[], ServerProtocol]:
    """Return what makes a server's engine for each connection, from ``serve()``'s options.

    ``extensions`` are the factories the server offers, ``compression`` applied.

    One engine is made here and dropped, so that a bad option fails when the
    server is made rather than in every connection's handshake. Servers of
    both APIs stream fragmented messages, so the engine is made with
    ``streaming=True``.
    """
    make = functools.partial(
        ServerProtocol,
        # Made once, so that every engine shares them.
        origins=None if origins is None else tuple(origins),
        extensions=tuple(extensions or ()),
        subprotocols=tuple(subprotocols or ()),
        select_subprotocol=select_subprotocol,
        server_header=server_header,
        max_size=max_size,
        streaming=True,
        limits=limits,
    )
    # The derived bound too: an int past 256 made per engine is one per connection.
    return functools.partial(make, max_fragments=make().max_fragments)


class _UnsupportedVersion(InvalidHeaderValue):
    """The client asked for a WebSocket version other than 13."""
