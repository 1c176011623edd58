"""The interactive client on a pseudo-terminal, against a live ``tether serve``."""

from __future__ import annotations

from collections.abc import Callable

from tests.cli.conftest import DemoServer, PtyProcess, start_demo_server, stop_demo_server
from tether.sync import connect

CLEAR = b"\r\x1b[K"
READY = b"Ctrl-D closes."
CLOSED_OK = b"Connection closed: sent 1000 (OK); received 1000 (OK)."


def test_typed_line_is_sent_and_echo_shows(
    demo_server: DemoServer, spawn: Callable[..., PtyProcess]
) -> None:
    client = spawn(demo_server.uri("/echo"))
    client.expect(b"Connected to " + demo_server.uri("/echo").encode())
    client.expect(READY)
    client.write(b"hello, tether\r")
    # The line sent stays on screen, and the echo shows above a fresh prompt.
    client.expect(CLEAR + b"> hello, tether\r\n")
    client.expect(CLEAR + b"< hello, tether\r\n" + CLEAR + b"> ")
    client.write(b"\x04")
    client.expect(CLOSED_OK)
    assert client.wait() == 0


def test_message_arriving_while_typing_keeps_the_partial_line(
    demo_server: DemoServer, spawn: Callable[..., PtyProcess]
) -> None:
    client = spawn(demo_server.uri("/chat"))
    client.expect(READY)
    client.write(b"par")
    client.expect(CLEAR + b"> par")
    with connect(demo_server.uri("/chat"), open_timeout=10) as other:
        other.send("incoming")
        # Printed above the prompt; then the prompt and the partial line are redrawn.
        client.expect(CLEAR + b"< incoming\r\n" + CLEAR + b"> par")
        assert other.recv(timeout=10) == "incoming"
        # The cursor moved back into the line stays there across a message.
        client.write(b"\x1b[D\x1b[D")
        client.expect(CLEAR + b"> par\x1b[2D")
        other.send("second")
        client.expect(CLEAR + b"< second\r\n" + CLEAR + b"> par\x1b[2D")
        assert other.recv(timeout=10) == "second"
        # The line typed around the messages goes out whole.
        client.write(b"\x1b[Ftial\r")
        client.expect(CLEAR + b"> partial\r\n")
        assert other.recv(timeout=10) == "partial"
        client.expect(b"< partial")
    client.write(b"\x04")
    client.expect(CLOSED_OK)
    assert client.wait() == 0


def test_ctrl_d_closes_with_1000_and_shows_both_close_frames(
    demo_server: DemoServer, spawn: Callable[..., PtyProcess]
) -> None:
    client = spawn(demo_server.uri("/echo"))
    client.expect(READY)
    client.write(b"\x04")
    output = client.expect(CLOSED_OK)
    assert b"Traceback" not in output
    assert client.wait() == 0


def test_ctrl_d_on_a_partial_line_does_not_close(
    demo_server: DemoServer, spawn: Callable[..., PtyProcess]
) -> None:
    client = spawn(demo_server.uri("/echo"))
    client.expect(READY)
    # Ctrl-D deletes under the cursor, as in a shell: "ab", cursor on "b", Ctrl-D leaves "a".
    client.write(b"ab\x1b[D\x04\r")
    client.expect(b"< a\r\n")
    client.write(b"\x04")
    client.expect(CLOSED_OK)
    assert client.wait() == 0


def test_server_closing_ends_the_session(
    spawn: Callable[..., PtyProcess],
) -> None:
    server = start_demo_server()
    try:
        client = spawn(server.uri("/chat"))
        client.expect(READY)
        client.write(b"typing")
        client.expect(CLEAR + b"> typing")
        status, _ = stop_demo_server(server)
        assert status == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    client.expect(b"Connection closed: received 1001 (going away); sent 1001 (going away).")
    assert client.wait() == 0
