"""Two protocol engines wired together in memory, for tests without sockets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tether.extensions.permessage_deflate import (
    Compression,
    client_extensions,
    server_extensions,
)
from tether.protocol.client import ClientProtocol
from tether.protocol.connection import Connection, State
from tether.protocol.events import Event, RequestReceived, ResponseReceived
from tether.protocol.http11 import Response
from tether.protocol.server import ServerProtocol

__all__ = ["EnginePair"]

_MAX_ROUNDS = 1000


class EnginePair:
    """A :class:`~tether.protocol.client.ClientProtocol` and a
    :class:`~tether.protocol.server.ServerProtocol` that talk through memory.

    Nothing is sent until you ask: call the engines' ``send_*`` methods, then
    :meth:`exchange` to deliver every byte both ways and collect the events
    each side received. It runs in microseconds, needs no event loop, and
    exercises exactly the code the asyncio and threading APIs run, which
    makes it the place to unit-test protocol-level code: a message encoder, an
    extension, limits, close codes.

    ``client_options`` and ``server_options`` go to the engines' constructors
    (``subprotocols``, ``extensions``, ``max_size``...). ``compression``
    works as in :func:`~tether.asyncio.client.connect` and
    :func:`~tether.asyncio.server.serve`: by default both sides add
    permessage-deflate to their ``extensions``, as the APIs do. The opening
    handshake is performed at once unless ``handshake=False``;
    :attr:`response` then holds the server's answer.
    """

    def __init__(
        self,
        uri: str = "ws://tether.test/",
        *,
        client_options: Mapping[str, Any] | None = None,
        server_options: Mapping[str, Any] | None = None,
        compression: Compression = "deflate",
        handshake: bool = True,
    ) -> None:
        client = dict(client_options or {})
        client["extensions"] = client_extensions(compression, client.get("extensions"))
        server = dict(server_options or {})
        server["extensions"] = server_extensions(compression, server.get("extensions"))
        self.client = ClientProtocol(uri, **client)
        """The client's engine."""
        self.server = ServerProtocol(**server)
        """The server's engine."""
        self.response: Response | None = None
        """The handshake response the client received, once :meth:`handshake` ran."""
        if handshake:
            self.handshake()

    def handshake(self) -> Response:
        """Perform the opening handshake; return the response, whatever its status.

        A refused handshake leaves both engines closed; the response says why.
        """
        self.client.send_request(self.client.connect())
        _, server_events = self._deliver()
        request = next(e for e in server_events if isinstance(e, RequestReceived)).request
        self.server.send_response(self.server.accept(request))
        client_events, _ = self._deliver()
        response = next(e for e in client_events if isinstance(e, ResponseReceived)).response
        self.response = response
        return response

    @property
    def is_open(self) -> bool:
        """Whether both engines are open."""
        return self.client.state is State.OPEN and self.server.state is State.OPEN

    def exchange(self) -> tuple[list[Event], list[Event]]:
        """Deliver every pending byte both ways until both sides are quiet.

        Return the events the client received and those the server received.
        Answers the engines make on their own (pongs, the echo of a close) are
        delivered too; when an engine asks for TCP to be closed, its peer
        receives the end of the stream.
        """
        return self._deliver()

    def _deliver(self) -> tuple[list[Event], list[Event]]:
        client_events: list[Event] = []
        server_events: list[Event] = []
        for _ in range(_MAX_ROUNDS):
            moved = _move(self.client, self.server) | _move(self.server, self.client)
            client_events += self.client.events()
            server_events += self.server.events()
            if not moved:
                return client_events, server_events
        raise RuntimeError(f"the engines still talk after {_MAX_ROUNDS} rounds")


def _move(source: Connection, target: Connection) -> bool:
    """Give ``target`` what ``source`` wrote, and the end of the stream when it closes TCP."""
    moved = False
    for chunk in source.data_to_send():
        moved = True
        if not target.eof_received:
            target.receive_data(chunk)
    if source.close_transport and not target.eof_received:
        target.receive_eof()
        moved = True
    return moved
