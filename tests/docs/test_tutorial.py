"""The tutorial's chat servers, step by step, with its client and with a listener in the room."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys

import pytest

from tests.docs.programs import (
    EXAMPLE_PORT,
    EXAMPLES,
    WAIT,
    free_port,
    run_program,
    running_server,
    source,
    wait_listening,
)
from tether.exceptions import ConnectionClosedOK, InvalidStatus
from tether.sync import connect

TUTORIAL = EXAMPLES / "tutorial"
CLIENT = TUTORIAL / "chat_client.py"


def test_chat_1_broadcasts_to_everyone() -> None:
    with running_server(TUTORIAL / "chat_1.py") as port:
        uri = f"ws://127.0.0.1:{port}/"
        with connect(uri) as listener:
            out = run_program(CLIENT, None, uri, "hello everyone")
            assert out == "hello everyone\n"
            assert listener.recv(timeout=WAIT) == "hello everyone"


def test_chat_2_keeps_rooms_apart() -> None:
    with running_server(TUTORIAL / "chat_2.py") as port:
        base = f"ws://127.0.0.1:{port}/rooms"
        with connect(f"{base}/tea") as tea, connect(f"{base}/coffee") as coffee:
            assert run_program(CLIENT, None, f"{base}/coffee", "espresso") == "espresso\n"
            assert run_program(CLIENT, None, f"{base}/tea", "earl grey") == "earl grey\n"
            assert tea.recv(timeout=WAIT) == "earl grey"
            assert coffee.recv(timeout=WAIT) == "espresso"
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/elsewhere")
        assert refused.value.response.status_code == 404


@pytest.mark.parametrize("program", ["chat_3.py", "chat_4.py"])
def test_chat_3_and_4_require_a_login(program: str) -> None:
    with running_server(TUTORIAL / program) as port:
        room = f"127.0.0.1:{port}/rooms/lobby"
        with connect(f"ws://bob:builder@{room}") as bob:
            assert bob.recv(timeout=WAIT) == "bob joined lobby"
            out = run_program(CLIENT, None, f"ws://alice:wonderland@{room}", "hi bob")
            assert out.splitlines() == ["alice joined lobby", "alice: hi bob"]
            assert bob.recv(timeout=WAIT) == "alice joined lobby"
            assert bob.recv(timeout=WAIT) == "alice: hi bob"
            assert bob.recv(timeout=WAIT) == "alice left"
        for credentials in ("", "alice:wrong@"):
            with pytest.raises(InvalidStatus) as refused:
                connect(f"ws://{credentials}{room}")
            assert refused.value.response.status_code == 401


def test_chat_4_answers_health_checks_and_stops_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", source(TUTORIAL / "chat_4.py", {EXAMPLE_PORT: port})],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_listening(port, process)
        health = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        health.request("GET", "/healthz")
        response = health.getresponse()
        assert (response.status, response.read()) == (200, b"OK\n")
        health.close()
        with connect(f"ws://alice:wonderland@127.0.0.1:{port}/rooms/lobby") as alice:
            assert alice.recv(timeout=WAIT) == "alice joined lobby"
            process.send_signal(signal.SIGTERM)
            assert process.wait(WAIT) == 0
            with pytest.raises(ConnectionClosedOK):
                alice.recv(timeout=WAIT)
        assert alice.close_code == 1001
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)
