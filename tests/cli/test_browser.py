"""The demo's chat page in a real browser: headless Chromium, driven over DevTools with tether.

Two pages open the demo server's ``/``; one types a message and clicks Send;
the other's message list must show it. The DevTools protocol itself runs
over a WebSocket, which tether's client speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.cli.conftest import WAIT, DemoServer, start_demo_server, stop_demo_server
from tests.topics.servers import RedisServer
from tether.asyncio.client import ClientConnection

CHROMIUM = "/usr/bin/chromium"
STARTUP = 60.0  # The first start of a fresh profile can be slow on a loaded machine.
POLLS = 150  # Bounded polling of the page: at most POLLS * POLL seconds.
POLL = 0.1


class DevTools:
    """A minimal client of the Chrome DevTools Protocol, in flat session mode."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                data = json.loads(message)
                future = self._pending.pop(data.get("id", -1), None)
                if future is None or future.done():
                    continue  # An event: none is needed here.
                if "error" in data:
                    future.set_exception(RuntimeError(f"DevTools error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
        finally:
            # Nothing will answer the commands still waiting.
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(RuntimeError("DevTools connection closed"))

    async def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its result."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send(json.dumps(command))
        return await asyncio.wait_for(future, WAIT)

    async def evaluate(self, session: str, expression: str) -> Any:
        """Evaluate JavaScript in a page and return its value."""
        result = await self.call(
            "Runtime.evaluate", session, expression=expression, returnByValue=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open_page(self, url: str) -> str:
        """Open ``url`` in a new tab; return the session attached to it."""
        target = await self.call("Target.createTarget", url=url)
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        session: str = attached["sessionId"]
        return session

    async def wait_for(self, session: str, expression: str, what: str) -> None:
        """Poll ``expression`` in a page until it is true."""
        for _ in range(POLLS):
            if await self.evaluate(session, expression):
                return
            await asyncio.sleep(POLL)
        raise AssertionError(f"the page never got {what}")


async def _devtools_url(stderr: asyncio.StreamReader, seen: list[str]) -> str:
    while True:
        line = (await stderr.readline()).decode(errors="replace")
        if not line:
            raise AssertionError("chromium exited before DevTools started:\n" + "".join(seen))
        seen.append(line)
        if line.startswith("DevTools listening on "):
            return line.removeprefix("DevTools listening on ").strip()


async def _drain(stderr: asyncio.StreamReader) -> None:
    # Chromium logs on stderr; a full pipe would block it.
    while await stderr.read(65536):
        pass


@pytest.fixture
async def devtools(tmp_path: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fresh profile, and a DevTools connection to it."""
    assert shutil.which("chromium") == CHROMIUM, (
        "Debian's chromium package is missing: `make test` installs it (apt-get install chromium)"
    )
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    seen: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        url = await asyncio.wait_for(_devtools_url(process.stderr, seen), STARTUP)
        drain = asyncio.create_task(_drain(process.stderr))
        # DevTools messages (page snapshots, for one) can exceed the default 1 MiB.
        async with tether.connect(url, max_size=None, open_timeout=WAIT) as ws:
            tools = DevTools(ws)
            yield tools
            with contextlib.suppress(tether.ConnectionClosed, RuntimeError, TimeoutError):
                await tools.call("Browser.close")
    finally:
        if process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), WAIT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if drain is not None:
            await drain


async def test_two_pages_chat_through_the_demo_server(
    demo_server: DemoServer, devtools: DevTools
) -> None:
    alice = await devtools.open_page(demo_server.url("/"))
    bob = await devtools.open_page(demo_server.url("/"))
    joined = "document.getElementById('status')?.dataset.state === 'open'"
    await devtools.wait_for(alice, joined, "its WebSocket open")
    await devtools.wait_for(bob, joined, "its WebSocket open")

    message = "Hello from Alice's browser"
    await devtools.evaluate(
        alice,
        f"document.getElementById('input').value = {json.dumps(message)};"
        "document.getElementById('send').click();",
    )
    shows = f"document.getElementById('messages').textContent.includes({json.dumps(message)})"
    await devtools.wait_for(bob, shows, "the message")
    await devtools.wait_for(alice, shows, "its own message back")
    assert await devtools.evaluate(alice, "document.getElementById('input').value") == ""

    # A terminal client in the same room reaches the browsers too.
    async with tether.connect(demo_server.uri("/chat"), open_timeout=WAIT) as terminal:
        await terminal.send("Hello from a terminal")
        assert await terminal.recv(timeout=WAIT) == "Hello from a terminal"
    shows = "document.getElementById('messages').textContent.includes('Hello from a terminal')"
    await devtools.wait_for(bob, shows, "the terminal's message")


async def test_two_pages_on_different_workers_chat_through_redis(
    devtools: DevTools, redis_server: RedisServer
) -> None:
    server = start_demo_server("--workers", "2", "--redis", redis_server.url)
    try:
        joined = "document.getElementById('status')?.dataset.state === 'open'"
        pages = []
        # The kernel picks a worker for each connection: open pages until
        # both workers have one in the room (each subscribes to it in Redis).
        for _ in range(20):
            page = await devtools.open_page(server.url("/"))
            await devtools.wait_for(page, joined, "its WebSocket open")
            pages.append(page)
            if await asyncio.to_thread(redis_server.numsub, "tether:chat:") == 2:
                break
        assert await asyncio.to_thread(redis_server.numsub, "tether:chat:") == 2
        message = "Hello across workers"
        await devtools.evaluate(
            pages[0],
            f"document.getElementById('input').value = {json.dumps(message)};"
            "document.getElementById('send').click();",
        )
        shows = f"document.getElementById('messages').textContent.includes({json.dumps(message)})"
        for page in pages:
            await devtools.wait_for(page, shows, "the message from the other worker")
        status, _ = await asyncio.to_thread(stop_demo_server, server)
        assert status == 0
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(WAIT)
