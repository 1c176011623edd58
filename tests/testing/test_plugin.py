"""tether.testing as a pytest plugin, seen from a user's test suite (pytester)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The user's suite runs without pytest-asyncio (the fixtures do not need it),
# and without the other plugins of tether's own environment, for speed.
BASE = ("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest", "-p", "no:anyio")

USER_TESTS = """
import tether
from tether.testing import assert_closes, assert_closes_sync, assert_receives, assert_receives_sync


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


def sync_echo(websocket):
    for message in websocket:
        websocket.send(message)


def test_asyncio_server_threading_client(tether_server, tether_client):
    server = tether_server(echo)
    websocket = tether_client(server)
    websocket.send("hello")
    assert_receives_sync(websocket, "hello")


def test_threading_server_asyncio_client(tether_sync_server):
    import asyncio

    server = tether_sync_server(sync_echo)

    async def main():
        async with server.connect("/", ping_interval=None) as websocket:
            await websocket.send(b"bytes")
            await assert_receives(websocket, b"bytes")
            await websocket.close(4000, "done")
        await assert_closes(websocket, 4000, "done")

    asyncio.run(main())


def test_engine_pair(tether_engine_pair):
    pair = tether_engine_pair
    pair.client.send_text("hi")
    client_events, server_events = pair.exchange()
    assert [event.data for event in server_events] == ["hi"]
"""


def test_fixtures_are_absent_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TESTS)
    result = pytester.runpytest(*BASE)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*fixture 'tether_server' not found*"])


@pytest.mark.parametrize("how", ["-p", "conftest", "ini", "option"])
def test_fixtures_when_asked(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile(USER_TESTS)
    args = list(BASE)
    if how == "-p":
        args += ["-p", "tether.testing"]
    elif how == "conftest":
        pytester.makeconftest('pytest_plugins = ["tether.testing"]')
    elif how == "ini":
        pytester.makeini("[pytest]\ntether_fixtures = true\n")
    else:
        args.append("--tether-fixtures")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=3)


def test_a_handler_that_raises_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from tether.testing import assert_closes_sync

        async def broken(websocket):
            raise ValueError("bug in the handler")

        def test_broken(tether_server, tether_client):
            websocket = tether_client(tether_server(broken))
            assert_closes_sync(websocket, 1011)
        """
    )
    result = pytester.runpytest("-p", "tether.testing", *BASE)
    result.assert_outcomes(passed=1, errors=1)
    assert "a connection handler raised 1 exception(s)" in result.stdout.str()
    assert "ValueError: bug in the handler" in result.stdout.str()


def test_assertion_messages_explain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from tether.testing import assert_closes_sync, assert_receives_sync

        def greet(websocket):
            websocket.send("hello")
            websocket.close(1008, "go away")

        def test_wrong_message(tether_sync_server, tether_client):
            websocket = tether_client(tether_sync_server(greet))
            assert_receives_sync(websocket, "goodbye")

        def test_wrong_code(tether_sync_server, tether_client):
            websocket = tether_client(tether_sync_server(greet))
            assert_closes_sync(websocket, 1000)

        def test_closed_before(tether_sync_server, tether_client):
            websocket = tether_client(tether_sync_server(greet))
            assert_receives_sync(websocket, "hello", "more")
        """
    )
    result = pytester.runpytest("-p", "tether.testing", *BASE)
    result.assert_outcomes(failed=3)
    output = result.stdout.str()
    assert "expected messages ['goodbye'], received ['hello']: they differ" in output
    assert (
        "expected close 1000, got 1008 'go away' (state CLOSED; "
        "close frame received: 1008 (policy violation) go away" in output
    )
    assert (
        "expected messages ['hello', 'more'], received ['hello']: the connection closed" in output
    )


def test_import_tether_imports_no_test_tools() -> None:
    code = (
        "import sys, tether, tether.sync\n"
        "print(sorted({'pytest', 'tether.testing'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == "[]\n"
