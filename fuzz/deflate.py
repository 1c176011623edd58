"""Fuzz permessage-deflate: negotiation and decompression.

The input's first byte picks the part. Negotiation parses the rest as a
``Sec-WebSocket-Extensions`` value and lets a server factory, configured
from the input, answer each permessage-deflate offer: only
:class:`~tether.exceptions.InvalidHeader` or
:class:`~tether.exceptions.NegotiationError` may escape, and an answer must
be a valid header that the client side accepts. Decompression feeds the
rest as one compressed message, whole and then cut into fragments, with a
size bound: only :class:`~tether.exceptions.ProtocolError` may escape, both
ways must agree, and so must the engine's path for a message in one frame
(:meth:`~tether.extensions.permessage_deflate.PerMessageDeflate.decode_message`),
masked or not, and the output never exceeds the bound.
"""

from __future__ import annotations

from fuzz._common import Input, run
from tether.exceptions import InvalidHeader, NegotiationError, PayloadTooBig, ProtocolError
from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from tether.protocol.frames import Frame, Opcode, parse_header
from tether.protocol.header_values import build_extensions, parse_extensions
from tether.protocol.masking import apply_mask

__all__ = ["TestOneInput"]


def _window_bits(value: int) -> int | None:
    """8 to 15, or ``None`` for a quarter of the values."""
    return None if value & 0x08 == 0 and value & 0x10 else 8 + (value & 7)


def _negotiate(source: Input) -> None:
    flags = source.byte()
    server_bits = _window_bits(source.byte())
    client_bits = _window_bits(source.byte())
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=bool(flags & 1),
        client_no_context_takeover=bool(flags & 2),
        server_max_window_bits=server_bits,
        client_max_window_bits=client_bits,
        require_client_max_window_bits=bool(flags & 4) and client_bits is not None,
    )
    value = source.rest().decode("latin-1")
    try:
        offers = parse_extensions(value)
    except InvalidHeader:
        return
    for name, params in offers:
        if name != "permessage-deflate":
            continue
        try:
            response, extension = factory.process_request_params(params, [])
        except NegotiationError:
            continue
        assert 8 <= extension.remote_max_window_bits <= 15
        assert 8 <= extension.local_max_window_bits <= 15
        header = build_extensions([(name, response)])
        assert parse_extensions(header) == [(name, response)]
        # The client that made this offer accepts the answer.
        offered = dict(params)
        client_offer: int | bool | None = None
        if "client_max_window_bits" in offered:
            bits = offered["client_max_window_bits"]
            client_offer = True if bits is None else int(bits)
        # The offer was accepted, so server_max_window_bits, if there, has a value.
        server_offer = offered.get("server_max_window_bits")
        client = ClientPerMessageDeflateFactory(
            server_no_context_takeover="server_no_context_takeover" in offered,
            client_no_context_takeover="client_no_context_takeover" in offered,
            server_max_window_bits=None if server_offer is None else int(server_offer),
            client_max_window_bits=client_offer,
        )
        client.process_response_params(response, [])
        # A second acceptance in the same handshake is refused.
        try:
            factory.process_request_params(params, [extension])
        except NegotiationError:
            pass
        else:
            raise AssertionError("permessage-deflate accepted twice")


def _decode(
    extension: PerMessageDeflate, pieces: list[bytes], max_size: int | None
) -> tuple[object, ...]:
    """Decompress one message sent as ``pieces``, tracking the room left as the engine does."""
    output = b""
    try:
        for i, piece in enumerate(pieces):
            room = None if max_size is None else max_size - len(output)
            frame = Frame(
                Opcode.BINARY if i == 0 else Opcode.CONT,
                piece,
                fin=i == len(pieces) - 1,
                rsv1=i == 0,
            )
            decoded = extension.decode(frame, max_size=room)
            assert not decoded.rsv1
            if room is not None:
                assert len(decoded.data) <= room
            output += decoded.data
    except PayloadTooBig:
        return ("too big",)
    except ProtocolError as exc:
        return ("invalid", exc.code)
    return ("ok", output)


def _decode_message(
    extension: PerMessageDeflate, payload: bytes, key: bytes | None, max_size: int | None
) -> tuple[object, ...]:
    """Decompress one message in one frame as the engine does, masked with ``key`` if any."""
    wire = payload if key is None else apply_mask(payload, key)
    try:
        output = extension.decode_message(memoryview(wire), key, max_size)
    except PayloadTooBig:
        return ("too big",)
    except ProtocolError as exc:
        return ("invalid", exc.code)
    return ("ok", output)


def _decompress(source: Input) -> None:
    flags = source.byte()
    size = source.uint16()
    max_size = None if flags & 1 else size
    cut = source.byte() % 32 + 1
    payload = source.rest()

    def make() -> PerMessageDeflate:
        return PerMessageDeflate(bool(flags & 2), False, 8 + (flags >> 2 & 7), 15)

    whole = _decode(make(), [payload], max_size)
    # Corrupt data is invalid payload data (1007), not a framing error.
    assert whole[0] != "invalid" or whole[1] == 1007
    # The engine's path for a message in one frame decodes it alike, masked or not.
    assert _decode_message(make(), payload, None, max_size) == whole
    assert _decode_message(make(), payload, b"\x37\xfa\x21\x3d", max_size) == whole
    if whole[0] == "ok":
        assert max_size is None or len(whole[1]) <= max_size  # type: ignore[arg-type]
    pieces = [payload[i : i + cut] for i in range(0, len(payload), cut)] or [b""]
    split = _decode(make(), pieces, max_size)
    if (whole[0] == "ok" or split[0] == "ok") and split != whole:
        # zlib checks a back-reference against the window only across calls:
        # within one call it accepts any distance into what that call wrote.
        # A sender that reaches past the window it negotiated may thus pass
        # whole and fail (1007) in pieces. Anything else must match.
        wide = PerMessageDeflate(bool(flags & 2), False, 15, 15)
        assert _decode(wide, pieces, max_size) == whole
        assert split == ("invalid", 1007)
    # Otherwise both failed, but not always alike: on corrupt data, zlib may
    # stop at the error or at the size limit first depending on the cuts.

    # What the extension compresses, it decompresses, the first message and the next.
    extension = make()
    sender = PerMessageDeflate(False, bool(flags & 2), 15, 8 + (flags >> 2 & 7))
    for message in (payload, payload[::-1]):
        frame = sender.encode(Frame(Opcode.BINARY, message))
        assert extension.decode(frame).data == message
    # And what it compresses as a whole message too, in the same stream.
    for message in (payload, payload[::-1]):
        wire = sender.encode_message(0x82, message, None)
        header = parse_header(wire, expect_mask=False, allowed_rsv=0x40)
        assert header is not None
        assert header.rsv == 0x40
        assert extension.decode_message(wire[header.size :], None, None) == message


def TestOneInput(data: bytes) -> None:
    """Check one input; raise on a bug."""
    source = Input(data)
    if source.byte() & 1:
        _negotiate(source)
    else:
        _decompress(source)


if __name__ == "__main__":
    run(TestOneInput)
