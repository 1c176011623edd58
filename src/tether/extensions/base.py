"""The base classes of WebSocket extensions (RFC 6455 section 9).

An extension transforms frames on their way in and out. It is negotiated in
the opening handshake by a factory: a client factory offers parameters and
checks the server's answer; a server factory reads the client's offer and
answers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    # Only for annotations: tether.protocol imports this module at start-up.
    from tether.protocol.frames import Frame

__all__ = ["ClientExtensionFactory", "Extension", "ExtensionParameter", "ServerExtensionFactory"]

ExtensionParameter = tuple[str, str | None]
"""One extension parameter: its name and its value, or ``None`` when it has none."""


class Extension:
    """A negotiated extension, active on one connection."""

    name: ClassVar[str]
    """The extension's registered name, as in ``Sec-WebSocket-Extensions``."""

    rsv_mask: ClassVar[int | None] = None
    """The RSV bits (``0x40``, ``0x20``, ``0x10``) marking the messages this extension changes.

    ``None`` says the extension may change any frame. A per-message extension
    sets its bit here: the engine then lets that bit through only on the first
    frame of a data message, and hands messages without it straight through.
    """

    whole_messages: ClassVar[bool] = False
    """Whether the extension implements :meth:`encode_message` and :meth:`decode_message`.

    When it does, and it is the only extension of a connection, the engine
    calls them for the messages sent or received whole in one frame with the
    extension's RSV bit, instead of making :class:`Frame` objects for
    :meth:`encode` and :meth:`decode`. Both ways must give the same bytes.
    """

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Transform an incoming frame; the result's data stays within ``max_size`` bytes.

        Raise :class:`~tether.exceptions.ProtocolError` for invalid input and
        :class:`~tether.exceptions.PayloadTooBig` past ``max_size``.
        """
        raise NotImplementedError

    def encode(self, frame: Frame) -> Frame:
        """Transform an outgoing frame."""
        raise NotImplementedError

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        """Build the frame of a whole message, transformed, sent in one frame.

        ``first`` is the frame's first byte (FIN and the opcode) without the
        extension's RSV bit, which this adds; ``key`` is the masking key, or
        ``None`` for an unmasked frame. See :attr:`whole_messages`.
        """
        raise NotImplementedError

    def decode_message(
        self, data: bytes | bytearray | memoryview, key: bytes | None, max_size: int | None
    ) -> bytes:
        """Transform back the payload of a whole message that came in one frame with the RSV bit.

        ``data`` is the payload as it arrived, masked with ``key`` unless that
        is ``None``. Raise as :meth:`decode` does, :class:`~tether.exceptions.PayloadTooBig`
        past ``max_size`` bytes. See :attr:`whole_messages`.
        """
        raise NotImplementedError


class ClientExtensionFactory:
    """Offers an extension in a client's request and builds it from the server's answer."""

    name: ClassVar[str]
    """The extension's registered name."""

    def get_request_params(self) -> list[ExtensionParameter]:
        """Return the parameters to offer in ``Sec-WebSocket-Extensions``."""
        raise NotImplementedError

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> Extension:
        """Build the extension from the parameters the server accepted.

        ``accepted_extensions`` are those already accepted before this one.
        Raise :class:`~tether.exceptions.NegotiationError` to refuse.
        """
        raise NotImplementedError


class ServerExtensionFactory:
    """Reads a client's offer of an extension and answers it."""

    name: ClassVar[str]
    """The extension's registered name."""

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], Extension]:
        """Answer one offer: the parameters to send back, and the extension.

        ``accepted_extensions`` are those already accepted before this one.
        Raise :class:`~tether.exceptions.NegotiationError` to decline this
        offer; the server then tries the client's next offer, if any.
        """
        raise NotImplementedError
