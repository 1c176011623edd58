"""Writing several chunks to an asyncio transport without losing its flow control.

Shared by :mod:`tether.asyncio.connection` and :mod:`tether.asgi`. CPython
3.12.0 to 3.12.8 and 3.13.0 to 3.13.1 give the selector transport a
``writelines`` of its own that never pauses the protocol (CPython gh-127655,
fixed in 3.12.9 and 3.13.2): a connection whose frames go out through it
(a message's header and payload, for instance) would buffer without bound
for a peer that does not read, and ``send()`` would never wait. On those
versions :func:`write_chunks` joins the chunks and calls ``write``, which
pauses as it should (3.11's ``writelines`` joins them too); elsewhere it
calls ``writelines``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

__all__ = ["WRITELINES_PAUSES", "write_chunks"]

_VERSION = sys.version_info[:3]

WRITELINES_PAUSES = not ((3, 12, 0) <= _VERSION < (3, 12, 9) or (3, 13, 0) <= _VERSION < (3, 13, 2))
"""Whether the transports' ``writelines`` pauses the protocol over the high-water mark."""


def write_chunks(transport: asyncio.WriteTransport, chunks: Sequence[bytes]) -> None:
    """Write ``chunks`` in order, pausing the protocol as ``write`` does."""
    if WRITELINES_PAUSES:
        transport.writelines(chunks)
    else:
        transport.write(b"".join(chunks))
