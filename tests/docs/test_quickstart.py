"""The programs of the Quick start: each client against each server, both APIs."""

from __future__ import annotations

import pytest

from tests.docs.programs import EXAMPLES, run_program, running_server

QUICKSTART = EXAMPLES / "quickstart"


@pytest.mark.parametrize("server", ["echo_server.py", "sync_echo_server.py"])
def test_clients_against_servers(server: str) -> None:
    with running_server(QUICKSTART / server) as port:
        assert run_program(QUICKSTART / "echo_client.py", port) == "Hello!\n"
        assert run_program(QUICKSTART / "sync_echo_client.py", port) == "Hello!\n"
