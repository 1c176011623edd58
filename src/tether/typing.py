"""The types of tether's public signatures, under websockets' names.

``from websockets.typing import Data`` becomes ``from tether.typing import
Data``. Nothing here is needed at run time except the :class:`~typing.NewType`
constructors, which return their argument unchanged.
"""

from __future__ import annotations

import http
from typing import NewType

from tether.extensions.base import ExtensionParameter
from tether.log import LoggerLike
from tether.sending import Data as DataLike

__all__ = [
    "BytesLike",
    "Data",
    "DataLike",
    "ExtensionName",
    "ExtensionParameter",
    "LoggerLike",
    "Origin",
    "StatusLike",
    "Subprotocol",
]

Data = str | bytes
"""A message as received: :class:`str` for a text message, :class:`bytes` for binary."""

BytesLike = bytes | bytearray | memoryview
"""What is accepted where :class:`bytes` is expected."""

StatusLike = http.HTTPStatus | int
"""What is accepted where an HTTP status is expected."""

Origin = NewType("Origin", str)
"""The value of an ``Origin`` header."""

Subprotocol = NewType("Subprotocol", str)
"""A subprotocol in a ``Sec-WebSocket-Protocol`` header."""

ExtensionName = NewType("ExtensionName", str)
"""The name of a WebSocket extension."""

# DataLike, LoggerLike and ExtensionParameter are the aliases tether's own
# modules define, re-exported here.
