"""The buffer that the connections of a thread read the network into, shared by the async APIs.

A read is handed to the engine before the next read starts, and the engine
copies whatever it keeps, so one buffer per thread serves every connection
of the event loop running there: an idle connection holds no read buffer.
"""

from __future__ import annotations

import threading

__all__ = ["READ_BUFFER_SIZE", "shared_read_buffer"]

READ_BUFFER_SIZE = 256 * 1024
"""The size of the buffer: as much as uvloop reads at once."""

_buffers = threading.local()


def shared_read_buffer() -> memoryview:
    """The buffer of this thread, made on first use."""
    try:
        buffer: memoryview = _buffers.view
    except AttributeError:
        buffer = _buffers.view = memoryview(bytearray(READ_BUFFER_SIZE))
    return buffer
