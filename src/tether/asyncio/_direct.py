"""One frame written straight to the sockets of many asyncio connections.

A broadcast or a topic's message goes to thousands of server connections as
the same bytes. For each connection whose transport is plain TCP (or a Unix
socket) of asyncio's selector loop or uvloop, has nothing buffered, and
whose engine takes a shared frame and has nothing pending, the C accelerator
writes the frame with one ``send()`` on the transport's socket: what
``transport.write()`` would do first, without a Python call per connection.
The order of each connection's bytes is kept: its buffers are empty, and the
write happens on the event loop's thread before :func:`write_direct`
returns. Every other connection (TLS, other transports, buffered data,
engines with an extension claiming frames, frame logging at DEBUG) is left
to the caller, who writes it through its engine and transport as usual;
without the accelerator (``TETHER_NO_SPEEDUPS=1``) that is every connection.
"""

from __future__ import annotations

import asyncio.selector_events
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from tether.extensions.permessage_deflate import PerMessageDeflate
from tether.protocol.connection import _OPEN
from tether.protocol.server import ServerProtocol
from tether.protocol.speedups import speedups

__all__ = ["DIRECT", "write_direct"]

C = TypeVar("C")

_write_shared: Callable[..., tuple[int, list[Any], bytes | None]] | None = getattr(
    speedups, "write_shared", None
)

DIRECT = _write_shared is not None
"""Whether :func:`write_direct` writes anything itself (the C accelerator is in use)."""
_PROTOCOLS = (ServerProtocol,)
_transports: tuple[type[Any], ...] = (asyncio.selector_events._SelectorSocketTransport,)  # type: ignore[attr-defined]
_with_uvloop = False


def _transport_types() -> tuple[type[Any], ...]:
    """The plain transports of asyncio and, once it is imported, uvloop."""
    global _transports, _with_uvloop  # noqa: PLW0603
    if not _with_uvloop:
        uvloop = sys.modules.get("uvloop.loop")
        if uvloop is not None:
            _with_uvloop = True
            _transports = (*_transports, uvloop.TCPTransport, uvloop.UnixTransport)
    return _transports


def write_direct(
    connections: Iterable[C], make_frame: Callable[[], bytes], *, plain_only: bool
) -> tuple[int, Iterable[C], bytes | None]:
    """Write a shared frame to the connections that allow a direct write.

    Return how many they were, the other connections, and the frame, or
    ``None`` if no connection allowed it: ``make_frame()`` builds the frame
    then, and only then. ``plain_only`` leaves to the caller every engine
    that would not take the plain frame from a topic: those with an
    extension, except permessage-deflate keeping its context (which gets
    the plain frame, uncompressed, as RFC 7692 allows; topics compress once
    for the others). Connections that are not open, or whose transport is
    closing, are in neither part: they are skipped, as the callers skip
    them. The rest keeps the connections' order.
    """
    if _write_shared is None:
        return 0, connections, None
    return _write_shared(
        connections,
        make_frame,
        _OPEN,
        _PROTOCOLS,
        _transport_types(),
        PerMessageDeflate if plain_only else None,
    )
