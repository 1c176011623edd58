"""A client engine and a server engine talking to each other in memory.

No sockets, no event loop: each side's outgoing bytes are handed to the other
side's ``receive_data``. This is what ``make run`` shows.
"""

from __future__ import annotations

from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from tether.protocol import (
    ClientProtocol,
    Connection,
    Message,
    Ping,
    RequestReceived,
    Role,
    ServerProtocol,
)
from tether.protocol.frames import RSV_BITS, parse_frame


def describe(chunk: bytes, *, masked: bool) -> str:
    """Describe bytes on the wire: an HTTP head, or the frames they hold."""
    if chunk.startswith((b"GET ", b"HTTP/")):
        head = chunk.decode("latin-1").split("\r\n\r\n")[0]
        return "\n".join(f"    {line}" for line in head.split("\r\n"))
    lines = []
    pos = 0
    while pos < len(chunk):
        parsed = parse_frame(chunk, pos, expect_mask=masked, allowed_rsv=RSV_BITS)
        assert parsed is not None
        frame, size = parsed
        flags = ("FIN " if frame.fin else "") + ("RSV1 " if frame.rsv1 else "")
        data = frame.data if len(frame.data) <= 40 else frame.data[:37] + b"..."
        note = " (masked on the wire; shown unmasked)" if masked else ""
        lines.append(f"    {frame.opcode.name:<6} {flags:<9} {size:3d} bytes {data!r}{note}")
        pos += size
    return "\n".join(lines)


def pump(sender: Connection, receiver: Connection, label: str) -> None:
    """Move the sender's pending bytes to the receiver and print them."""
    for chunk in sender.data_to_send():
        print(f"  {label}\n{describe(chunk, masked=sender.role is Role.CLIENT)}")
        receiver.receive_data(chunk)


def main() -> None:
    """Run the handshake, a few messages, a ping and the closing handshake."""
    client = ClientProtocol(
        "ws://example.test/chat",
        subprotocols=["chat.v2", "chat.v1"],
        extensions=[ClientPerMessageDeflateFactory()],
    )
    server = ServerProtocol(
        subprotocols=["chat.v1", "chat.v2"],
        extensions=[ServerPerMessageDeflateFactory()],
    )

    print("Opening handshake")
    client.send_request(client.connect())
    pump(client, server, "client ->")
    (event,) = server.events()
    assert isinstance(event, RequestReceived)
    server.send_response(server.accept(event.request))
    pump(server, client, "<- server")
    client.events()
    print(
        f"  state: {client.state.name}, subprotocol: {client.subprotocol}, "
        f"extensions: {[ext.name for ext in client.extensions]}"
    )

    print("\nMessages")
    client.send_text("Hello, server! " * 4)
    client.send_binary(b"\x00\x01\x02\x03", compress=False)
    client.send_text("frag", fin=False)
    client.send_ping(b"are you there?")
    client.send_continuation("mented", fin=True)
    pump(client, server, "client ->")
    for event in server.events():
        print(f"  server got {event}")
        if isinstance(event, Message):
            server.send_text(f"echo: {event.data!r}")
        elif isinstance(event, Ping):
            print("  (the server engine queued the pong by itself)")
    pump(server, client, "<- server")
    for event in client.events():
        print(f"  client got {event}")

    print("\nClosing handshake")
    client.send_close(1000, "goodbye")
    pump(client, server, "client ->")
    pump(server, client, "<- server")
    print(f"  server should close TCP now: {server.close_transport}")
    server.receive_eof()
    client.receive_eof()
    print(f"  client: sent {client.close_sent}, received {client.close_rcvd}")
    print(f"  server: sent {server.close_sent}, received {server.close_rcvd}")
    print(f"  client sees: {client.close_exc()!r}")


if __name__ == "__main__":
    main()
