"""The permessage-deflate extension (RFC 7692).

:class:`PerMessageDeflate` compresses and decompresses the payload of data
messages; :class:`ClientPerMessageDeflateFactory` and
:class:`ServerPerMessageDeflateFactory` negotiate it in the opening handshake.
:func:`enable_client_permessage_deflate` and
:func:`enable_server_permessage_deflate` add a factory with tuned defaults.

How the engine and :class:`PerMessageDeflate` share the work:

* Receiving. The engine lets RSV1 through only on the first frame of a data
  message (:attr:`PerMessageDeflate.rsv_mask`) and rejects it elsewhere, so
  the extension never needs to check it. :meth:`PerMessageDeflate.decode`
  may be given every frame: it decompresses the frames of a message whose
  first frame had RSV1, continuation frames included, and returns every
  other frame unchanged.
* Sending. The engine decides, message by message, whether to compress, and
  calls :meth:`PerMessageDeflate.encode` on *every* frame of a compressed
  message and on *no* frame of an uncompressed one. Sending a message
  uncompressed on a compressed connection is therefore simply not calling
  ``encode`` for its frames; the engine remembers the choice made for the
  first frame so that the continuation frames follow it. ``encode`` sets
  RSV1 on the first frame (opcode TEXT or BINARY) and leaves it clear on
  continuation frames.

Window bits of 8: RFC 7692 allows an LZ77 window of 256 bytes, but zlib
refuses ``wbits=8`` for raw deflate compression. The compressor then runs
with 9, which is safe: zlib never emits a match distance over the window
size minus 262 bytes, that is 250 bytes with 9, so its output fits the 256
bytes the peer asked for. The decompressor also uses at least 9: a larger
window decodes every stream a smaller one does, and this accepts peers that
compress with 9 when 8 was agreed.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Final, Literal, NamedTuple, Protocol

from tether.exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
    PayloadTooBig,
    ProtocolError,
)
from tether.extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParameter,
    ServerExtensionFactory,
)
from tether.protocol.frames import CONTROL_OPCODES, RSV1, Frame, Opcode, build_frame, new_frame
from tether.protocol.masking import apply_mask
from tether.protocol.speedups import speedups

__all__ = [
    "ClientPerMessageDeflateFactory",
    "Compressor",
    "Decompressor",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "deflate_frame",
    "deflate_frame_python",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
    "inflate_frame",
    "inflate_frame_python",
    "new_compressor",
    "new_decompressor",
]

_NAME: Final = "permessage-deflate"

# The empty stored block a sync flush ends with (RFC 7692 section 7.2.1).
_TAIL: Final = b"\x00\x00\xff\xff"

# RFC 7692 section 7.1.2 allows exactly the decimal integers 8 to 15 without
# leading zeros; a lookup table refuses "09", "+9", " 9" and the like at once.
_WINDOW_BITS: Final = {str(bits): bits for bits in range(8, 16)}

_SERVER_NO_CONTEXT_TAKEOVER: Final = "server_no_context_takeover"
_CLIENT_NO_CONTEXT_TAKEOVER: Final = "client_no_context_takeover"
_SERVER_MAX_WINDOW_BITS: Final = "server_max_window_bits"
_CLIENT_MAX_WINDOW_BITS: Final = "client_max_window_bits"
_PARAMETER_NAMES: Final = frozenset(
    {
        _SERVER_NO_CONTEXT_TAKEOVER,
        _CLIENT_NO_CONTEXT_TAKEOVER,
        _SERVER_MAX_WINDOW_BITS,
        _CLIENT_MAX_WINDOW_BITS,
    }
)

# A module name, not Opcode.CONT: on Python 3.11 an Enum class attribute is a
# slow lookup, and these are read on every compressed frame.
_CONT: Final = Opcode.CONT

_STRATEGIES: Final = frozenset(
    {zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED, zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED}
)

# Default memory settings of the enable_* helpers. A zlib compressor takes
# about 2 ** (wbits + 2) + 2 ** (memLevel + 9) bytes: 32 KiB with these
# values against 256 KiB with zlib's defaults (15 and 8), and a decompressor
# about 2 ** wbits + 7 KiB. Compression ratios on typical JSON or text
# messages drop only a little, which suits a server holding many connections.
_DEFAULT_WINDOW_BITS: Final = 12
_DEFAULT_MEM_LEVEL: Final = 5


def _end_message(output: bytes) -> bytes:
    """The compressed data of a message's last frame: the flush's tail removed.

    RFC 7692 section 7.2.1: data not ending with an empty stored block gets
    one, then loses its last 4 octets, leaving the single 0x00 of section
    7.2.3.6.
    """
    return output[:-4] if output.endswith(_TAIL) else output + b"\x00"


def _output_limit(room: int | None) -> int:
    """zlib's ``max_length`` for at most ``room`` bytes of output (``None``: no bound).

    One byte more than allowed tells "too big" apart from "exactly the
    limit" without inflating any further. 0 is no limit: for ``None``, and
    for a bound past ``sys.maxsize``, which zlib refuses and no output reaches.
    """
    return 0 if room is None or room >= sys.maxsize else room + 1


def deflate_frame_python(
    encoder: Compressor, first: int, data: bytes | bytearray | memoryview, key: bytes | None
) -> bytes:
    """Build the frame of a whole message compressed with ``encoder``.

    The data is compressed and sync-flushed, the flush's tail removed as
    RFC 7692 section 7.2.1 requires, behind a header whose first byte is
    ``first`` (RSV1 included), and masked with ``key`` unless it is
    ``None``. The pure-Python twin of the C accelerator's ``deflate_frame``.
    """
    if data:
        output = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
    else:
        # Right after a flush, zlib has nothing to emit, not even an empty
        # block: the message is the single 0x00.
        output = encoder.flush(zlib.Z_SYNC_FLUSH)
    return build_frame(first, _end_message(output), key)


def inflate_frame_python(
    decoder: Decompressor,
    data: bytes | bytearray | memoryview,
    key: bytes | None,
    tail: bool,
    max_length: int,
) -> bytes:
    """Decompress the payload of a compressed frame with ``decoder``.

    ``data`` is unmasked with ``key`` unless it is ``None``, followed by the
    4 octets the sender stripped when ``tail`` is true (RFC 7692 section
    7.2.2), and given to ``decoder.decompress(..., max_length)`` in one
    call. The pure-Python twin of the C accelerator's ``inflate_frame``.
    """
    payload = bytes(data) if key is None else apply_mask(data, key)
    if tail:
        payload += _TAIL
    return decoder.decompress(payload, max_length)


class Compressor(Protocol):
    """What permessage-deflate calls on a compressor: :func:`zlib.compressobj`'s object."""

    def compress(self, data: bytes | bytearray | memoryview, /) -> bytes:
        """Compress ``data``; return what is ready."""

    def flush(self, mode: int, /) -> bytes:
        """Flush what is pending with ``mode`` (here always ``zlib.Z_SYNC_FLUSH``)."""


class Decompressor(Protocol):
    """What permessage-deflate calls on a decompressor: :func:`zlib.decompressobj`'s object."""

    @property
    def eof(self) -> bool:
        """Whether the end of the compressed stream was reached."""

    @property
    def unused_data(self) -> bytes:
        """The bytes that came after the end of the stream."""

    def decompress(self, data: bytes | bytearray | memoryview, /, max_length: int = 0) -> bytes:
        """Decompress ``data`` into at most ``max_length`` bytes (0: no bound)."""


def _zlib_compressor(level: int, wbits: int, mem_level: int, strategy: int) -> Compressor:
    return zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy)


def _zlib_decompressor(wbits: int) -> Decompressor:
    return zlib.decompressobj(wbits)


# With the accelerator, zlib runs from C on objects of its own, which
# deflate_frame and inflate_frame drive without Python calls; they give the
# same bytes and raise the same zlib.error as zlib's objects.
new_compressor: Callable[[int, int, int, int], Compressor] = (
    _zlib_compressor if speedups is None else speedups.Deflater
)
"""Make a compressor: ``(level, wbits, memLevel, strategy)``, as :func:`zlib.compressobj`."""

new_decompressor: Callable[[int], Decompressor] = (
    _zlib_decompressor if speedups is None else speedups.Inflater
)
"""Make a decompressor for ``wbits``, as :func:`zlib.decompressobj`."""

if TYPE_CHECKING:
    DeflateFrame = Callable[[Compressor, int, bytes | bytearray | memoryview, bytes | None], bytes]
    InflateFrame = Callable[
        [Decompressor, bytes | bytearray | memoryview, bytes | None, bool, int], bytes
    ]

deflate_frame: DeflateFrame = deflate_frame_python if speedups is None else speedups.deflate_frame
""":func:`deflate_frame_python`, in C when the accelerator is built."""

inflate_frame: InflateFrame = inflate_frame_python if speedups is None else speedups.inflate_frame
""":func:`inflate_frame_python`, in C when the accelerator is built."""


def _check_window_bits(name: str, bits: int) -> None:
    if isinstance(bits, bool) or not 8 <= bits <= 15:
        raise ValueError(f"{name} must be an integer from 8 to 15, not {bits!r}")


def _check_compress_settings(settings: Mapping[str, int] | None) -> dict[str, int]:
    """Validate ``compress_settings`` up front, so that a mistake surfaces at configuration."""
    if settings is None:
        return {}
    checked = dict(settings)
    for key, value in checked.items():
        if key not in {"level", "memLevel", "strategy"}:
            # wbits is negotiated, never configured here; method and zdict
            # would produce data the peer cannot decompress.
            raise ValueError(f"compress_settings accepts level, memLevel and strategy, not {key!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            valid = False
        elif key == "level":
            valid = -1 <= value <= 9
        elif key == "memLevel":
            valid = 1 <= value <= 9
        else:
            valid = value in _STRATEGIES
        if not valid:
            raise ValueError(f"invalid compress_settings[{key!r}]: {value!r}")
    return checked


class PerMessageDeflate(Extension):
    """permessage-deflate as negotiated on one connection.

    *local* settings apply to what this endpoint compresses, *remote* ones to
    what it decompresses: a client's local settings are the ``client_*``
    parameters, a server's are the ``server_*`` ones.

    ``compress_settings`` may set zlib's ``level``, ``memLevel`` and
    ``strategy``; see :func:`zlib.compressobj`.
    """

    name: ClassVar[str] = _NAME
    rsv_mask: ClassVar[int | None] = RSV1
    whole_messages: ClassVar[bool] = True

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Mapping[str, int] | None = None,
    ) -> None:
        _check_window_bits("remote_max_window_bits", remote_max_window_bits)
        _check_window_bits("local_max_window_bits", local_max_window_bits)
        settings = _check_compress_settings(compress_settings)
        self.remote_no_context_takeover = remote_no_context_takeover
        """Reset the decompressor after each message."""
        self.local_no_context_takeover = local_no_context_takeover
        """Reset the compressor after each message."""
        self.remote_max_window_bits = remote_max_window_bits
        """The base-2 logarithm of the peer's LZ77 window."""
        self.local_max_window_bits = local_max_window_bits
        """The base-2 logarithm of this endpoint's LZ77 window."""
        self.compress_settings = settings
        """The zlib settings of the compressor."""
        self._level = settings.get("level", zlib.Z_DEFAULT_COMPRESSION)
        self._mem_level = settings.get("memLevel", zlib.DEF_MEM_LEVEL)
        self._strategy = settings.get("strategy", zlib.Z_DEFAULT_STRATEGY)
        # Negative wbits select raw deflate; see the module docstring for 9.
        self._encoder_wbits = -max(local_max_window_bits, 9)
        self._decoder_wbits = -max(remote_max_window_bits, 9)
        # Both are created when first needed: a connection that only receives
        # never pays for a compressor, and without context takeover the next
        # one is created only when the next message comes.
        self._encoder: Compressor | None = None
        self._decoder: Decompressor | None = None
        self._decoding = False
        self._message_empty = True

    @property
    def sharing_key(self) -> tuple[int, int, int, int] | None:
        """What decides the bytes of a message this endpoint compresses alone.

        Two connections with the same key compress a message to the same
        bytes, so that one compression serves both (see
        :mod:`tether.topics.fanout`). ``None`` with context takeover: then
        the output depends on the messages sent before.
        """
        if not self.local_no_context_takeover:
            return None
        # The compressor's real window: 8 bits run as 9, see the module docstring.
        return -self._encoder_wbits, self._level, self._mem_level, self._strategy

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        """Decompress a frame of a compressed message; return other frames unchanged.

        A message is compressed when its first frame, TEXT or BINARY, has
        RSV1; its continuation frames are decompressed with the same stream.
        ``max_size`` is the number of bytes the current message may still
        grow by, ``None`` for no limit. Decompression stops as soon as the
        output would exceed it, so that a small payload that inflates
        enormously never takes more than ``max_size`` bytes of memory, and
        raises :class:`~tether.exceptions.PayloadTooBig`.

        Corrupt compressed data raises :class:`~tether.exceptions.ProtocolError`
        with close code 1007 (invalid frame payload data): the frames are
        well formed and it is their payload that is invalid, which is what
        1007 means, while 1002 is about framing. RFC 7692 section 8 only
        requires failing the connection.

        The returned frame has RSV1 clear.
        """
        opcode = frame.opcode
        if opcode in CONTROL_OPCODES:
            # Control frames may sit between the fragments of a message and
            # leave its state alone.
            return frame
        if opcode != _CONT:
            self._decoding = frame.rsv1
            self._message_empty = True
        if not self._decoding:
            return frame
        data = self._decompress(frame.data, None, frame.fin, max_size)
        if frame.fin:
            self._decoding = False
            if self.remote_no_context_takeover:
                self._decoder = None
        return new_frame(opcode, data, frame.fin, False, frame.rsv2, frame.rsv3)

    def decode_message(
        self, data: bytes | bytearray | memoryview, key: bytes | None, max_size: int | None
    ) -> bytes:
        """Decompress the payload of a whole message that came compressed in one frame.

        ``data`` is the payload as it arrived, masked with ``key`` unless that
        is ``None``. What :meth:`decode` does for such a frame, without
        making frames; it raises the same errors.
        """
        self._message_empty = True
        output = self._decompress(data, key, True, max_size)
        if self.remote_no_context_takeover:
            self._decoder = None
        return output

    def _decompress(
        self,
        data: bytes | bytearray | memoryview,
        key: bytes | None,
        fin: bool,
        max_size: int | None,
    ) -> bytes:
        # RFC 7692 section 7.2.2: the message's data is followed by the 4
        # octets the sender stripped, given to zlib with the last frame's
        # data. They close the empty stored block whose header ends the data,
        # so they are left out when there is none: the message had no data at
        # all (section 7.2.3.6 asks for 0x00, but nothing is unambiguous), or
        # it ended with a block with BFINAL set and nothing after it (section
        # 7.2.3.4 without its trailing 0x00), which leaves no decompressor.
        # Fed anyway, they would open a bogus stored block and corrupt what
        # follows.
        if data:
            self._message_empty = False
            tail = fin
        elif fin and not self._message_empty and self._decoder is not None:
            tail = True
        else:
            return b""
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = self._new_decoder()
        try:
            output = inflate_frame(decoder, data, key, tail, _output_limit(max_size))
            if decoder.eof:
                output = self._restart(decoder, output, tail, max_size)
        except zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from exc
        if max_size is not None and len(output) > max_size:
            raise PayloadTooBig(None, max_size)
        return output

    def _restart(
        self, decoder: Decompressor, output: bytes, tail: bool, max_size: int | None
    ) -> bytes:
        """Go on with new decompressors after a block with BFINAL set ended zlib's stream.

        RFC 7692 section 7.2.1 lets more blocks follow such a block. A sender
        ends its stream only to start afresh, so a new decompressor takes over
        the rest. The 4 octets of ``tail``, alone after the end, are dropped.
        """
        outputs = [output]
        size = len(output)
        while decoder.eof:
            self._decoder = None
            rest = decoder.unused_data
            if not rest or (tail and rest == _TAIL):
                break
            if max_size is not None and size > max_size:
                break  # The caller raises PayloadTooBig.
            decoder = self._decoder = self._new_decoder()
            output = decoder.decompress(
                rest, _output_limit(None if max_size is None else max_size - size)
            )
            outputs.append(output)
            size += len(output)
        return b"".join(outputs)

    def encode_message(self, first: int, data: bytes, key: bytes | None) -> bytes:
        """Build the frame of a whole message sent compressed in one frame.

        ``first`` is the frame's first byte without RSV1, which this adds;
        ``key`` masks the frame unless it is ``None``. What :meth:`encode`
        and serializing its frame give, without making frames.
        """
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = self._new_encoder()
        frame = deflate_frame(encoder, first | RSV1, data, key)
        if self.local_no_context_takeover:
            self._encoder = None
        return frame

    def _new_encoder(self) -> Compressor:
        return new_compressor(self._level, self._encoder_wbits, self._mem_level, self._strategy)

    def _new_decoder(self) -> Decompressor:
        return new_decompressor(self._decoder_wbits)

    def encode(self, frame: Frame) -> Frame:
        """Compress a frame of a compressed message; return control frames unchanged.

        The engine calls this for every frame of a message it compresses and
        for no frame of a message it sends uncompressed. The first frame of
        the message gets RSV1. Every frame ends with a sync flush, so that
        the peer can decompress each fragment as it arrives; on the final
        frame the flush's trailing ``00 00 ff ff`` is removed as RFC 7692
        section 7.2.1 requires.
        """
        opcode = frame.opcode
        if opcode in CONTROL_OPCODES:
            return frame
        encoder = self._encoder
        if encoder is None:
            encoder = self._encoder = self._new_encoder()
        data = frame.data
        if data:
            output = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        else:
            # Right after a flush, zlib has nothing to emit, not even an
            # empty block, and an empty fragment stays empty.
            output = encoder.flush(zlib.Z_SYNC_FLUSH)
        if frame.fin:
            output = _end_message(output)
            if self.local_no_context_takeover:
                self._encoder = None
        return new_frame(opcode, output, frame.fin, opcode != _CONT, frame.rsv2, frame.rsv3)


if speedups is not None:
    # The engine's C fast path then decompresses a whole message of this
    # class itself (not of a subclass, which may change decode_message),
    # without calling decode_message, when its decompressor is an Inflater.
    speedups.register_deflate(PerMessageDeflate)


class _Params(NamedTuple):
    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int | None
    client_max_window_bits: int | bool | None
    """``True`` for the bare parameter, allowed in an offer only."""


def _parse_window_bits(name: str, value: str | None) -> int:
    bits = None if value is None else _WINDOW_BITS.get(value)
    if bits is None:
        raise InvalidParameterValue(name, value)
    return bits


def _parse_flag(name: str, value: str | None) -> bool:
    if value is not None:
        raise InvalidParameterValue(name, value)
    return True


def _parse_params(params: Sequence[ExtensionParameter], *, offer: bool) -> _Params:
    """Read the parameters of an offer (``offer``) or of a response (RFC 7692 section 7.1)."""
    server_no_context_takeover = False
    client_no_context_takeover = False
    server_max_window_bits: int | None = None
    client_max_window_bits: int | bool | None = None
    seen: set[str] = set()
    for name, value in params:
        if name not in _PARAMETER_NAMES:
            raise InvalidParameterName(name)
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name == _SERVER_NO_CONTEXT_TAKEOVER:
            server_no_context_takeover = _parse_flag(name, value)
        elif name == _CLIENT_NO_CONTEXT_TAKEOVER:
            client_no_context_takeover = _parse_flag(name, value)
        elif name == _SERVER_MAX_WINDOW_BITS:
            server_max_window_bits = _parse_window_bits(name, value)
        elif value is None and offer:
            client_max_window_bits = True
        else:
            client_max_window_bits = _parse_window_bits(name, value)
    return _Params(
        server_no_context_takeover,
        client_no_context_takeover,
        server_max_window_bits,
        client_max_window_bits,
    )


def _build_params(
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: int | None,
    client_max_window_bits: int | bool | None,
) -> list[ExtensionParameter]:
    params: list[ExtensionParameter] = []
    if server_no_context_takeover:
        params.append((_SERVER_NO_CONTEXT_TAKEOVER, None))
    if client_no_context_takeover:
        params.append((_CLIENT_NO_CONTEXT_TAKEOVER, None))
    if server_max_window_bits is not None:
        params.append((_SERVER_MAX_WINDOW_BITS, str(server_max_window_bits)))
    if client_max_window_bits is True:
        params.append((_CLIENT_MAX_WINDOW_BITS, None))
    elif client_max_window_bits is not None:
        params.append((_CLIENT_MAX_WINDOW_BITS, str(client_max_window_bits)))
    return params


def _refuse_second(accepted_extensions: Sequence[Extension]) -> None:
    if any(extension.name == _NAME for extension in accepted_extensions):
        raise NegotiationError(f"{_NAME} is already accepted")


class ClientPerMessageDeflateFactory(ClientExtensionFactory):
    """Offers permessage-deflate in a client's request and checks the server's answer.

    ``server_no_context_takeover`` and ``client_no_context_takeover`` offer
    those parameters. ``server_max_window_bits`` (8 to 15) asks the server
    for a smaller window. ``client_max_window_bits`` is ``True`` to offer
    the bare parameter ("the server may limit my window"), an integer from 8
    to 15 to state the window this client will use at most, or ``None`` (or
    ``False``) to leave it out. ``compress_settings`` is passed on to
    :class:`PerMessageDeflate`.

    Raise :class:`ValueError` for an invalid setting.
    """

    name: ClassVar[str] = _NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | bool | None = True,
        compress_settings: Mapping[str, int] | None = None,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is False:
            client_max_window_bits = None
        elif client_max_window_bits is not None and client_max_window_bits is not True:
            _check_window_bits("client_max_window_bits", client_max_window_bits)
        self.server_no_context_takeover = server_no_context_takeover
        """Ask the server not to take over context."""
        self.client_no_context_takeover = client_no_context_takeover
        """Announce that this client won't take over context."""
        self.server_max_window_bits = server_max_window_bits
        """The largest window the server may use, or ``None`` for no limit."""
        self.client_max_window_bits: int | bool | None = client_max_window_bits
        """``True`` to offer the bare parameter, the window to use, or ``None``."""
        self.compress_settings = _check_compress_settings(compress_settings)
        """The zlib settings of the compressor."""

    def get_request_params(self) -> list[ExtensionParameter]:
        """Return the parameters of the offer."""
        return _build_params(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            self.client_max_window_bits,
        )

    def process_response_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> PerMessageDeflate:
        """Check the server's answer against the offer and build the extension.

        Raise :class:`~tether.exceptions.NegotiationError` when the answer
        breaks RFC 7692 section 7.1: a parameter unknown, repeated or with a
        bad value; ``server_no_context_takeover`` or ``server_max_window_bits``
        missing although offered; a window larger than offered;
        ``client_max_window_bits`` not offered, or without a value. Also
        raise it when permessage-deflate is already accepted.
        """
        _refuse_second(accepted_extensions)
        answer = _parse_params(params, offer=False)

        # The server may add server_no_context_takeover, but it accepts the
        # offer of it only by echoing it (section 7.1.1.1).
        if self.server_no_context_takeover and not answer.server_no_context_takeover:
            raise NegotiationError("expected server_no_context_takeover")

        # The server may add client_no_context_takeover at will; if this
        # client offered it, it keeps its word even when not echoed.
        client_no_context_takeover = (
            self.client_no_context_takeover or answer.client_no_context_takeover
        )

        # Offered: the server must answer with the same value or a smaller
        # one. Not offered: the server may still limit its own window.
        server_max_window_bits = answer.server_max_window_bits
        if self.server_max_window_bits is not None:
            if server_max_window_bits is None:
                raise NegotiationError("expected server_max_window_bits")
            if server_max_window_bits > self.server_max_window_bits:
                raise NegotiationError(
                    f"server_max_window_bits={server_max_window_bits} is more than offered"
                )

        # Section 7.1.2.2: the server must not send client_max_window_bits
        # unless offered, and with a value no larger than the offered one.
        # The answer's parser already refused the bare parameter.
        client_max_window_bits = answer.client_max_window_bits
        if self.client_max_window_bits is None:
            if client_max_window_bits is not None:
                raise NegotiationError("unexpected client_max_window_bits")
        elif self.client_max_window_bits is not True:
            if client_max_window_bits is None:
                client_max_window_bits = self.client_max_window_bits
            elif client_max_window_bits > self.client_max_window_bits:
                raise NegotiationError(
                    f"client_max_window_bits={client_max_window_bits} is more than offered"
                )

        return PerMessageDeflate(
            remote_no_context_takeover=answer.server_no_context_takeover,
            local_no_context_takeover=client_no_context_takeover,
            remote_max_window_bits=server_max_window_bits or 15,
            local_max_window_bits=client_max_window_bits or 15,
            compress_settings=self.compress_settings,
        )


class ServerPerMessageDeflateFactory(ServerExtensionFactory):
    """Answers a client's offer of permessage-deflate.

    The server honours what the client asks and adds its own limits:

    * ``server_no_context_takeover``: reset the compressor after each
      message, whether or not the client asked.
    * ``client_no_context_takeover``: require the client to reset its
      compressor after each message.
    * ``server_max_window_bits`` (8 to 15): the largest window this server
      compresses with; a smaller one offered by the client wins.
    * ``client_max_window_bits`` (8 to 15): the largest window the client may
      compress with. It can only be imposed on a client that offered
      ``client_max_window_bits``; with ``require_client_max_window_bits``
      offers without it are declined, otherwise they are accepted with a
      full window.
    * ``compress_settings``: passed on to :class:`PerMessageDeflate`.

    Raise :class:`ValueError` for an invalid setting.
    """

    name: ClassVar[str] = _NAME

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: int | None = None,
        client_max_window_bits: int | None = None,
        compress_settings: Mapping[str, int] | None = None,
        require_client_max_window_bits: bool = False,
    ) -> None:
        if server_max_window_bits is not None:
            _check_window_bits("server_max_window_bits", server_max_window_bits)
        if client_max_window_bits is not None:
            _check_window_bits("client_max_window_bits", client_max_window_bits)
        elif require_client_max_window_bits:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.server_no_context_takeover = server_no_context_takeover
        """Never take over context when compressing."""
        self.client_no_context_takeover = client_no_context_takeover
        """Require the client not to take over context."""
        self.server_max_window_bits = server_max_window_bits
        """The largest window this server compresses with, or ``None`` for 15."""
        self.client_max_window_bits = client_max_window_bits
        """The largest window the client may compress with, or ``None`` for no limit."""
        self.compress_settings = _check_compress_settings(compress_settings)
        """The zlib settings of the compressor."""
        self.require_client_max_window_bits = require_client_max_window_bits
        """Decline offers that don't let this server limit the client's window."""

    def process_request_params(
        self,
        params: Sequence[ExtensionParameter],
        accepted_extensions: Sequence[Extension],
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        """Answer one offer (RFC 7692 section 7.1): the response parameters and the extension.

        Raise :class:`~tether.exceptions.NegotiationError` to decline the
        offer: a parameter unknown, repeated or with a bad value,
        ``client_max_window_bits`` missing while required, or
        permessage-deflate already accepted.
        """
        _refuse_second(accepted_extensions)
        offer = _parse_params(params, offer=True)

        # Accepting an offer of server_no_context_takeover means echoing it.
        server_no_context_takeover = (
            offer.server_no_context_takeover or self.server_no_context_takeover
        )
        # Echoing the client's client_no_context_takeover lets this server
        # drop its decompressor between messages.
        client_no_context_takeover = (
            offer.client_no_context_takeover or self.client_no_context_takeover
        )

        # Offered: answer with the same value or a smaller one. Not offered:
        # the server may still announce its own limit.
        server_max_window_bits = offer.server_max_window_bits
        if server_max_window_bits is None:
            server_max_window_bits = self.server_max_window_bits
        elif self.server_max_window_bits is not None:
            server_max_window_bits = min(server_max_window_bits, self.server_max_window_bits)

        # Not offered: must not be sent. Bare: the server's limit, if any.
        # With a value: echoed (or lowered) so that the client's announced
        # window is binding and the decompressor can be sized to it.
        client_max_window_bits = offer.client_max_window_bits
        if client_max_window_bits is None:
            if self.require_client_max_window_bits:
                raise NegotiationError("required client_max_window_bits")
        elif client_max_window_bits is True:
            client_max_window_bits = self.client_max_window_bits
        elif self.client_max_window_bits is not None:
            client_max_window_bits = min(client_max_window_bits, self.client_max_window_bits)

        response = _build_params(
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        )
        extension = PerMessageDeflate(
            remote_no_context_takeover=client_no_context_takeover,
            local_no_context_takeover=server_no_context_takeover,
            remote_max_window_bits=client_max_window_bits or 15,
            local_max_window_bits=server_max_window_bits or 15,
            compress_settings=self.compress_settings,
        )
        return response, extension


def enable_client_permessage_deflate(
    extensions: Sequence[ClientExtensionFactory] | None,
) -> list[ClientExtensionFactory]:
    """Return ``extensions`` with a permessage-deflate factory appended unless one is there.

    The default offers the bare ``client_max_window_bits`` (the server may
    shrink the client's window) and compresses with ``memLevel=5``.
    """
    factories = list(extensions or ())
    if not any(factory.name == _NAME for factory in factories):
        factories.append(
            ClientPerMessageDeflateFactory(compress_settings={"memLevel": _DEFAULT_MEM_LEVEL})
        )
    return factories


def enable_server_permessage_deflate(
    extensions: Sequence[ServerExtensionFactory] | None,
) -> list[ServerExtensionFactory]:
    """Return ``extensions`` with a permessage-deflate factory appended unless one is there.

    The default limits both windows to 4 KiB (12 bits) and compresses with
    ``memLevel=5``: about 32 KiB per compressor and 11 KiB per decompressor
    instead of 256 KiB and 39 KiB, for a small loss of ratio. Clients that
    don't offer ``client_max_window_bits`` are still accepted, with a full
    window.
    """
    factories = list(extensions or ())
    if not any(factory.name == _NAME for factory in factories):
        factories.append(
            ServerPerMessageDeflateFactory(
                server_max_window_bits=_DEFAULT_WINDOW_BITS,
                client_max_window_bits=_DEFAULT_WINDOW_BITS,
                compress_settings={"memLevel": _DEFAULT_MEM_LEVEL},
            )
        )
    return factories


Compression = Literal["deflate"] | None
"""The ``compression`` option of clients and servers."""


def _check_compression(compression: object) -> bool:
    if compression == "deflate":
        return True
    if compression is None:
        return False
    raise ValueError(f"unsupported compression: {compression!r}")


def client_extensions(
    compression: Compression, extensions: Sequence[ClientExtensionFactory] | None
) -> list[ClientExtensionFactory]:
    """Apply a client's ``compression`` option: ``"deflate"`` adds permessage-deflate."""
    if _check_compression(compression):
        return enable_client_permessage_deflate(extensions)
    return list(extensions or ())


def server_extensions(
    compression: Compression, extensions: Sequence[ServerExtensionFactory] | None
) -> list[ServerExtensionFactory]:
    """Apply a server's ``compression`` option: ``"deflate"`` adds permessage-deflate."""
    if _check_compression(compression):
        return enable_server_permessage_deflate(extensions)
    return list(extensions or ())
