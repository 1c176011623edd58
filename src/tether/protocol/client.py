"""The client's protocol engine: the opening handshake, then :class:`Connection`."""

from __future__ import annotations

from collections.abc import Sequence

from tether.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidHeaderValue,
    InvalidState,
    InvalidStatus,
    NegotiationError,
)
from tether.extensions.base import ClientExtensionFactory, Extension
from tether.protocol.connection import (
    _CLIENT,
    _CLOSED,
    _CONNECTING,
    _OPEN,
    DEFAULT_MAX_SIZE,
    Connection,
)
from tether.protocol.events import ResponseReceived
from tether.protocol.handshake import (
    USER_AGENT,
    accept_key,
    check_upgrade,
    generate_key,
    single_value,
)
from tether.protocol.header_values import (
    build_authorization_basic,
    build_extensions,
    build_subprotocols,
    parse_extensions,
    parse_subprotocols,
)
from tether.protocol.headers import Headers, HeadersLike, check_header
from tether.protocol.http11 import Limits, Request, Response, ResponseParser
from tether.protocol.uri import WebSocketURI, parse_uri

__all__ = ["ClientProtocol"]


class ClientProtocol(Connection):
    """The client side of a WebSocket connection, handshake included.

    Call :meth:`connect` for the handshake request, adjust it if you like, and
    pass it to :meth:`send_request`. The server's response comes back as a
    :class:`~tether.protocol.events.ResponseReceived` event; the connection
    is then OPEN, or closed with ``handshake_exc`` saying why.
    """

    __slots__ = (
        "_parser",
        "additional_headers",
        "available_extensions",
        "available_subprotocols",
        "handshake_exc",
        "key",
        "origin",
        "request",
        "response",
        "subprotocol",
        "uri",
        "user_agent_header",
    )

    def __init__(
        self,
        uri: WebSocketURI | str,
        *,
        origin: str | None = None,
        extensions: Sequence[ClientExtensionFactory] | None = None,
        subprotocols: Sequence[str] | None = None,
        additional_headers: HeadersLike | None = None,
        user_agent_header: str | None = USER_AGENT,
        max_size: int | tuple[int | None, int | None] | None = DEFAULT_MAX_SIZE,
        max_fragments: int | None = None,
        streaming: bool = False,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(
            _CLIENT,
            state=_CONNECTING,
            max_size=max_size,
            max_fragments=max_fragments,
            streaming=streaming,
        )
        self.uri = parse_uri(uri) if isinstance(uri, str) else uri
        self.origin = origin
        self.available_extensions = list(extensions or ())
        self.available_subprotocols = list(subprotocols or ())
        self.additional_headers = additional_headers
        self.user_agent_header = user_agent_header
        self.key = generate_key()
        self.request: Request | None = None
        self.response: Response | None = None
        self.subprotocol: str | None = None
        self.handshake_exc: InvalidHandshake | None = None
        self._parser = ResponseParser(limits)

    def connect(self) -> Request:
        """Build the handshake request (RFC 6455 section 4.1)."""
        # A WebSocketURI may be built by hand rather than parsed: check its host.
        host = self.uri.host_header
        check_header("Host", host)
        fields = [("Host", host)]
        if self.uri.user_info is not None:
            fields.append(("Authorization", build_authorization_basic(*self.uri.user_info)))
        fields += [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self.key),
            ("Sec-WebSocket-Version", "13"),
        ]
        # The key and the builders check what they make: only the options
        # given as plain strings are checked here.
        if self.origin is not None:
            check_header("Origin", self.origin)
            fields.append(("Origin", self.origin))
        if self.available_extensions:
            offers = [
                (factory.name, factory.get_request_params())
                for factory in self.available_extensions
            ]
            fields.append(("Sec-WebSocket-Extensions", build_extensions(offers)))
        if self.available_subprotocols:
            protocols = build_subprotocols(self.available_subprotocols)
            fields.append(("Sec-WebSocket-Protocol", protocols))
        user_agent = self.user_agent_header
        if self.additional_headers is None:
            if user_agent is not None:
                check_header("User-Agent", user_agent)
                fields.append(("User-Agent", user_agent))
            headers = Headers._adopt(fields)
        else:
            headers = Headers._adopt(fields)
            headers.update(self.additional_headers)
            if user_agent is not None and "User-Agent" not in headers:
                headers["User-Agent"] = user_agent
        return Request(self.uri.resource_name, headers)

    def send_request(self, request: Request) -> None:
        """Queue the handshake request for sending."""
        if self.request is not None:
            raise InvalidState("the handshake request was already sent")
        if self.state is not _CONNECTING:
            raise InvalidState(f"cannot send the handshake request while {self.state.name}")
        self.request = request
        self._queue_output(request.serialize())

    def _receive_handshake(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        try:
            self._parser.receive_data(bytes(data))
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self._after_parse()

    def receive_eof(self) -> None:
        """Tell the engine the server closed TCP."""
        if self.state is _CONNECTING and not self._input_done:
            try:
                self._parser.receive_eof()
            except InvalidHandshake as exc:
                self._handshake_failed(exc)
            else:
                self._after_parse()
        super().receive_eof()

    def _after_parse(self) -> None:
        response = self._parser.result
        if response is None:
            return
        self.response = response
        self._queue_event(ResponseReceived(response))
        try:
            self._process_response(response)
        except InvalidHandshake as exc:
            self._handshake_failed(exc)
            return
        self.state = _OPEN
        leftover = self._parser.leftover
        if leftover:
            self.receive_data(leftover)

    def _handshake_failed(self, exc: InvalidHandshake) -> None:
        self.handshake_exc = exc
        self._input_done = True
        self._close_transport = True
        self.state = _CLOSED

    def _process_response(self, response: Response) -> None:
        """Check the server's answer (RFC 6455 section 4.2.2 and 4.1, steps 1 to 6)."""
        if response.status_code != 101:
            raise InvalidStatus(response)
        # One pass over the fields, rather than a scan per header looked up.
        values = response.headers._grouped()
        check_upgrade(values.get("connection", []), values.get("upgrade", []))
        accept = single_value(values.get("sec-websocket-accept", []), "Sec-WebSocket-Accept")
        if accept != accept_key(self.key):
            raise InvalidHeaderValue("Sec-WebSocket-Accept", accept)
        self._set_extensions(self._negotiate_extensions(values.get("sec-websocket-extensions", [])))
        self.subprotocol = self._negotiate_subprotocol(values.get("sec-websocket-protocol", []))

    def _negotiate_extensions(self, values: list[str]) -> list[Extension]:
        accepted: list[Extension] = []
        for value in values:
            for name, params in parse_extensions(value):
                refusal: NegotiationError | None = None
                for factory in self.available_extensions:
                    if factory.name != name:
                        continue
                    try:
                        extension = factory.process_response_params(params, accepted)
                    except NegotiationError as exc:
                        refusal = exc
                        continue
                    accepted.append(extension)
                    break
                else:
                    # Chained so that a factory's reason for refusing isn't lost.
                    raise NegotiationError(
                        f"unsupported extension in response: {name}"
                    ) from refusal
        return accepted

    def _negotiate_subprotocol(self, values: list[str]) -> str | None:
        if not values:
            return None
        protocols = [protocol for value in values for protocol in parse_subprotocols(value)]
        if len(protocols) != 1:
            raise InvalidHeader("Sec-WebSocket-Protocol", ", ".join(protocols))
        protocol = protocols[0]
        if protocol not in self.available_subprotocols:
            raise NegotiationError(f"unsupported subprotocol: {protocol}")
        return protocol
