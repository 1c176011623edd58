"""How ``open_timeout`` is shared between TCP, TLS and the HTTP handshake.

One rule for every I/O layer, servers and clients alike: ``open_timeout``
bounds the whole opening of a connection, from the moment it begins (the
server accepted TCP, the client started to connect) until the handshake
response is sent or received. TLS is part of it. A layer that hands the TLS
handshake to a library gives that library :func:`tls_handshake_timeout`:
what is left of ``open_timeout`` when TLS starts. The HTTP handshake then
gets what TLS left over, :meth:`OpeningDeadline.remaining`. A peer that
sends nothing, part of a TLS record, or one byte at a time is dropped once
``open_timeout`` has passed, whichever step it stalls in.

``open_timeout=None`` leaves the opening unbounded by tether; a TLS library
that needs a number then keeps its own default (asyncio's is 60 seconds).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MIN_TIMEOUT", "OpeningDeadline", "tls_handshake_timeout"]

MIN_TIMEOUT = 0.001
"""The smallest bound handed to a library: asyncio refuses 0 and negative numbers."""


class OpeningDeadline:
    """The time left of ``open_timeout`` for one connection's opening.

    Make it where the opening begins; ``clock`` is the clock of the layer
    (:func:`time.monotonic` by default, ``loop.time`` for asyncio).
    """

    __slots__ = ("clock", "timeout", "when")

    def __init__(self, timeout: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        """The ``open_timeout`` this deadline was made from."""
        self.clock = clock
        self.when = None if timeout is None else clock() + timeout
        """The clock's time at which the opening must be over; ``None`` for never."""

    def remaining(self) -> float | None:
        """Seconds left, never below 0; ``None`` when unbounded."""
        if self.when is None:
            return None
        return max(self.when - self.clock(), 0.0)

    def expired(self) -> bool:
        """Whether the opening has run out of time."""
        return self.when is not None and self.clock() >= self.when

    def tls_handshake_timeout(self) -> float | None:
        """The bound to give a TLS library for its handshake starting now."""
        return tls_handshake_timeout(self.remaining())


def tls_handshake_timeout(remaining: float | None) -> float | None:
    """The TLS handshake bound for ``remaining`` seconds left of ``open_timeout``.

    It is all that is left (the HTTP handshake then gets what TLS did not
    use), and at least :data:`MIN_TIMEOUT`, since libraries refuse 0.
    ``None`` stays ``None``: the library's default applies. A server whose
    TLS starts at accept passes ``open_timeout`` itself.
    """
    if remaining is None:
        return None
    return max(remaining, MIN_TIMEOUT)
