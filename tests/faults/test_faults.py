"""Faults of networks and peers: loss, latency, a frozen or killed peer, a restart, a blackhole.

Loss, latency and the blackhole happen on an emulated link between two
network namespaces the tests create (see :mod:`tests.faults.netem`); the
frozen, killed and restarted peers are processes of their own on loopback
(see :mod:`tests.faults.peer`). Every wait is bounded. Intervals are short
here; ``--soak`` adds long variants of the lossy link.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import tether
import tether.sync
from tether.asyncio.server import ServerConnection
from tether.exceptions import ConnectionClosed, ConnectionClosedError
from tether.reconnecting import process_exception as default_process_exception
from tether.sync.client import ClientConnection as SyncClientConnection
from tether.sync.server import ServerConnection as SyncServerConnection

from ..load.traffic import Ledger, message, pieces
from ..soak_results import record
from .netem import ADDRESS_B, Link, link, unavailable

pytestmark = pytest.mark.asyncio(loop_factories=["asyncio"])

PEER = Path(__file__).with_name("peer.py")

GRACE = 2.0
"""Time allowed beyond a bound for the event loop and the processes to get
there: the machine may be busy; a hang lasts far longer."""

PING_INTERVAL = 0.5
PING_TIMEOUT = 0.5
CLOSE_TIMEOUT = 0.5
FAST_KEEPALIVE: dict[str, Any] = {
    "ping_interval": PING_INTERVAL,
    "ping_timeout": PING_TIMEOUT,
    "close_timeout": CLOSE_TIMEOUT,
}
"""Keepalive of the side under test: a missing pong fails it within a second."""

DETECTION = PING_INTERVAL * (1 + 1 / 16) + PING_TIMEOUT
"""When keepalive must have failed a connection whose peer went silent: a ping
may be up to a sixteenth of the interval late (pings are grouped), and its
pong is then awaited ``ping_timeout``."""

NETNS = unavailable()


class Peer:
    """A peer process: what it prints, and signals to freeze, thaw and kill it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def expect(self, word: str, timeout: float = 20.0) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        assert line.decode().strip() == word, f"the peer said {line!r}, not {word!r}"

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        async with asyncio.timeout(20):
            await self.process.wait()


@asynccontextmanager
async def peer(*args: str) -> AsyncIterator[Peer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PEER), *args, stdout=asyncio.subprocess.PIPE
    )
    running = Peer(process)
    try:
        yield running
    finally:
        await running.kill()


class Handlers:
    """Server handlers that keep the connection and how it ended."""

    def __init__(self) -> None:
        self.connection: ServerConnection | SyncServerConnection | None = None
        self.received: list[object] = []
        self.opened = asyncio.Event()
        self.ended = asyncio.Event()
        self.error: BaseException | None = None
        self._loop = asyncio.get_running_loop()

    async def asyncio_handler(self, ws: ServerConnection) -> None:
        self.connection = ws
        self.opened.set()
        try:
            async for data in ws:
                self.received.append(data)
        except ConnectionClosed as exc:
            self.error = exc
        finally:
            self.ended.set()

    def sync_handler(self, ws: SyncServerConnection) -> None:
        self.connection = ws
        self._loop.call_soon_threadsafe(self.opened.set)
        try:
            for data in ws:
                self.received.append(data)
        except ConnectionClosed as exc:
            self.error = exc
        finally:
            self._loop.call_soon_threadsafe(self.ended.set)


@asynccontextmanager
async def server_of(kind: str, handlers: Handlers) -> AsyncIterator[str]:
    """Run an asyncio or threading server with fast keepalive; yield its URI."""
    if kind == "asyncio":
        async with tether.serve(
            handlers.asyncio_handler, "127.0.0.1", 0, compression=None, **FAST_KEEPALIVE
        ) as server:
            yield f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
        return
    sync_server = tether.sync.serve(
        handlers.sync_handler, "127.0.0.1", 0, compression=None, **FAST_KEEPALIVE
    )
    serving = threading.Thread(target=sync_server.serve_forever, daemon=True)
    serving.start()
    try:
        yield f"ws://127.0.0.1:{sync_server.socket.getsockname()[1]}/"
    finally:
        await asyncio.get_running_loop().run_in_executor(None, sync_server.shutdown)
        serving.join(10)


# A peer frozen with SIGSTOP: its kernel still acknowledges TCP, but nothing
# answers a ping.


@pytest.mark.parametrize("kind", ["asyncio", "threading"])
async def test_frozen_client_closed_with_1011_by_keepalive(
    kind: str, request: pytest.FixtureRequest
) -> None:
    handlers = Handlers()
    async with server_of(kind, handlers) as uri, peer("client", uri) as client:
        await client.expect("open")
        async with asyncio.timeout(10):
            await handlers.opened.wait()
        client.signal(signal.SIGSTOP)
        frozen = time.monotonic()
        async with asyncio.timeout(DETECTION + CLOSE_TIMEOUT + GRACE):
            await handlers.ended.wait()
        detected = time.monotonic() - frozen
        ws = handlers.connection
        assert ws is not None
        assert ws.protocol.close_sent is not None
        assert ws.protocol.close_sent.code == 1011
        assert ws.protocol.close_sent.reason == "keepalive ping timeout"
        # The frozen peer never answered the close either.
        assert ws.close_code == 1006
        assert isinstance(handlers.error, ConnectionClosedError)
    record(
        request,
        "fault",
        f"client frozen with SIGSTOP ({kind} server)",
        f"closed with 1011 after {detected:.2f} s (ping_interval {PING_INTERVAL} s + "
        f"ping_timeout {PING_TIMEOUT} s, then close_timeout {CLOSE_TIMEOUT} s)",
        0,
        seconds=round(detected, 2),
    )


async def test_frozen_server_closed_with_1011_by_the_clients_keepalive(
    tmp_path: Path, unused_tcp_port: int, request: pytest.FixtureRequest
) -> None:
    port = unused_tcp_port
    async with peer("server", str(port), str(tmp_path / "log")) as server:
        await server.expect("listening")
        async with tether.connect(f"ws://127.0.0.1:{port}/", **FAST_KEEPALIVE) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            server.signal(signal.SIGSTOP)
            frozen = time.monotonic()
            with pytest.raises(ConnectionClosedError):
                async with asyncio.timeout(DETECTION + CLOSE_TIMEOUT + GRACE):
                    await ws.recv()
            detected = time.monotonic() - frozen
            assert ws.protocol.close_sent is not None
            assert ws.protocol.close_sent.code == 1011
            assert ws.close_code == 1006
    record(
        request,
        "fault",
        "server frozen with SIGSTOP (asyncio client)",
        f"closed with 1011 after {detected:.2f} s",
        0,
        seconds=round(detected, 2),
    )


# A peer killed in the middle of a message: no part of it is delivered.


@pytest.mark.parametrize("kind", ["asyncio", "threading"])
async def test_client_killed_mid_message(kind: str, request: pytest.FixtureRequest) -> None:
    handlers = Handlers()
    async with server_of(kind, handlers) as uri, peer("client-partial", uri) as client:
        await client.expect("open")
        await client.expect("partial")
        client.signal(signal.SIGKILL)
        async with asyncio.timeout(GRACE + CLOSE_TIMEOUT):
            await handlers.ended.wait()
        assert handlers.received == []
        assert isinstance(handlers.error, ConnectionClosedError)
        assert handlers.connection is not None
        assert handlers.connection.close_code == 1006
    record(
        request,
        "fault",
        f"client killed mid-message ({kind} server)",
        "the handler's recv raised ConnectionClosedError (1006); no part of the message delivered",
        0,
    )


async def test_server_killed_mid_message(
    unused_tcp_port: int, request: pytest.FixtureRequest
) -> None:
    port = unused_tcp_port
    async with peer("server-partial", str(port)) as server:
        await server.expect("listening")
        async with tether.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            await server.expect("partial")
            server.signal(signal.SIGKILL)
            with pytest.raises(ConnectionClosedError):
                async with asyncio.timeout(GRACE + CLOSE_TIMEOUT):
                    await ws.recv()
            assert ws.close_code == 1006
    record(
        request,
        "fault",
        "server killed mid-message (asyncio client)",
        "recv raised ConnectionClosedError (1006); no part of the message delivered",
        0,
    )


# A reconnecting client across a server restart: what the server confirmed
# (by its echo, after writing the message down) is never lost.

RESTARTS = 2
MESSAGES_PER_LIFE = 20


@pytest.mark.parametrize("kind", ["asyncio", "threading"])
async def test_reconnecting_client_loses_no_confirmed_message_across_restarts(
    kind: str, tmp_path: Path, unused_tcp_port: int, request: pytest.FixtureRequest
) -> None:
    port = unused_tcp_port
    uri = f"ws://127.0.0.1:{port}/"
    log = tmp_path / "log"
    # What the server confirmed, in order; each client resends from the first
    # message not confirmed yet.
    confirmed: list[str] = []
    connections: list[int] = []
    servers: list[Peer] = []
    options: dict[str, Any] = {
        "backoff_initial_delay": 0.05,
        "backoff_max_delay": 0.5,
        **FAST_KEEPALIVE,
    }

    async def restart() -> None:
        """Kill the server without warning, and start it again."""
        if servers:
            await servers[-1].kill()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PEER),
            "server",
            str(port),
            str(log),
            stdout=asyncio.subprocess.PIPE,
        )
        servers.append(Peer(process))
        await servers[-1].expect("listening")

    # Once the last restart is done: how many had been confirmed then.
    last_restart: list[int] = []

    # Set when the test ends, however it ends: a threading client still
    # trying to reconnect gives up, rather than outlive the test.
    stopping = threading.Event()

    def finished() -> bool:
        """Whether the client may stop: MESSAGES_PER_LIFE confirmed after the last restart."""
        if stopping.is_set():
            return True
        return bool(last_restart) and len(confirmed) >= last_restart[0] + MESSAGES_PER_LIFE

    def retry_unless_stopping(exc: Exception) -> Exception | None:
        return exc if stopping.is_set() else default_process_exception(exc)

    async def restarts() -> None:
        """Restart the server each time the client had MESSAGES_PER_LIFE more confirmed.

        The client does not wait for it: a message may be on its way.
        """
        for _ in range(RESTARTS):
            target = len(confirmed) + MESSAGES_PER_LIFE
            while len(confirmed) < target:
                await asyncio.sleep(0.005)
            await restart()
        last_restart.append(len(confirmed))

    async def asyncio_client() -> None:
        async for ws in tether.connect(uri, **options):
            connections.append(1)
            try:
                while not finished():
                    data = f"message {len(confirmed)}"
                    await ws.send(data)
                    assert await ws.recv() == data
                    confirmed.append(data)
                return
            except ConnectionClosed:
                continue

    def threading_client() -> None:
        for ws in tether.sync.reconnect(uri, process_exception=retry_unless_stopping, **options):
            connections.append(1)
            try:
                while not finished():
                    data = f"message {len(confirmed)}"
                    ws.send(data)
                    assert ws.recv() == data
                    confirmed.append(data)
                return
            except ConnectionClosed:
                continue

    loop = asyncio.get_running_loop()
    try:
        await restart()
        async with asyncio.timeout(60), asyncio.TaskGroup() as group:
            group.create_task(restarts())
            if kind == "asyncio":
                group.create_task(asyncio_client())
            else:
                group.create_task(in_thread(loop, threading_client))
    finally:
        stopping.set()
        for server in servers:
            await server.kill()
    logged = log.read_text().splitlines()
    lost = [data for data in confirmed if data not in set(logged)]
    assert not lost, lost
    # At least once: a message may be written down and its echo lost with the server.
    assert sorted(set(logged), key=lambda d: int(d.split()[1])) == confirmed
    assert len(connections) == RESTARTS + 1
    record(
        request,
        "fault",
        f"server killed (SIGKILL) and restarted {RESTARTS} times under a reconnecting "
        f"{kind} client streaming",
        f"{len(confirmed)} messages confirmed, all written down by the server; "
        f"{len(logged) - len(set(logged))} written twice (resent after a kill); "
        f"{len(connections)} connections",
        len(lost),
        confirmed=len(confirmed),
        restarts=RESTARTS,
    )


async def in_thread(loop: asyncio.AbstractEventLoop, function: Callable[[], None]) -> None:
    """Run ``function`` in a thread of the loop's executor, as a coroutine."""
    await loop.run_in_executor(None, function)


# The network: loss, latency and a blackhole, on the emulated link.

needs_netns = pytest.mark.skipif(NETNS is not None, reason=f"{NETNS}")


async def connect_over(
    net: Link, port: int, client: int, **options: Any
) -> tether.ClientConnection:
    """Connect from namespace ``a`` to the server in namespace ``b``, as client ``client``."""
    sock = net.socket_in("a")
    sock.setblocking(False)
    async with asyncio.timeout(20):
        await asyncio.get_running_loop().sock_connect(sock, (ADDRESS_B, port))
    return await tether.connect(f"ws://{ADDRESS_B}:{port}/{client}", sock=sock, **options)


async def stream(ws: tether.ClientConnection, client: int, seconds: float) -> int:
    """Send mixed messages for ``seconds``, four in flight; check each echo. Return the count."""
    window = asyncio.Semaphore(4)
    sent = 0
    stop = time.monotonic() + seconds

    async def receive() -> None:
        seq = 0
        while seq < sent or time.monotonic() < stop:
            echo = await ws.recv()
            assert echo == message(client, seq), f"echo {seq} is not the message sent"
            seq += 1
            window.release()

    async with asyncio.TaskGroup() as group:
        receiving = group.create_task(receive())
        while time.monotonic() < stop:
            await window.acquire()
            await ws.send(pieces(client, sent))
            sent += 1
        await receiving
    return sent


@needs_netns
async def test_lossy_slow_link_loses_nothing_and_keepalive_holds(
    impairment: tuple[float, float, float], request: pytest.FixtureRequest
) -> None:
    loss, delay, seconds = impairment
    # Pings every half second; the pong may take what a real network may need.
    keepalive: dict[str, Any] = {"ping_interval": PING_INTERVAL, "ping_timeout": 20.0}
    ledger = Ledger()
    loop = asyncio.get_running_loop()
    with link(delay=delay, loss=loss) as net:
        listener = net.listener()
        async with tether.serve(ledger.echo, sock=listener, **keepalive) as server:
            port = listener.getsockname()[1]
            ws = await connect_over(net, port, 1, **keepalive)
            (server_side,) = server.connections
            # A threading client streams beside the asyncio one, over the same link.
            threaded = loop.run_in_executor(None, sync_stream, net, port, 2, seconds, keepalive)
            try:
                count = await stream(ws, 1, seconds)
                latency = ws.latency
            finally:
                await ws.close()
                sync_count, sync_latency, sync_code = await threaded
            async with asyncio.timeout(20):
                await server_side.wait_closed()
            # Keepalive ran, and never failed a connection on either side.
            assert latency > 0
            assert sync_latency > 0
            assert ws.close_code == 1000
            assert sync_code == 1000
            assert server_side.close_code == 1000
            assert not ledger.errors, ledger.errors[:3]
            assert ledger.delivered[1] == count
            assert ledger.delivered[2] == sync_count
        dropped, forwarded = net.dropped, net.forwarded
    record(
        request,
        "fault",
        f"{loss:.0%} packet loss and {delay * 1000:.0f} ms latency each way, {seconds:.0f} s "
        "of streaming from an asyncio and a threading client",
        f"{count} + {sync_count} messages, each once and in order; keepalive every "
        f"{PING_INTERVAL} s never failed (last round trips {latency * 1000:.0f} and "
        f"{sync_latency * 1000:.0f} ms); {dropped} of {dropped + forwarded} packets dropped",
        0,
        messages=count + sync_count,
        packets_dropped=dropped,
    )


def sync_stream(
    net: Link, port: int, client: int, seconds: float, keepalive: dict[str, Any]
) -> tuple[int, float, int | None]:
    """A threading client: send and check mixed messages one at a time for ``seconds``.

    Return how many it exchanged, its last keepalive round trip, and its close code.
    """
    sock = net.socket_in("a")
    sock.settimeout(20)
    sock.connect((ADDRESS_B, port))
    uri = f"ws://{ADDRESS_B}:{port}/{client}"
    with tether.sync.connect(uri, sock=sock, **keepalive) as ws:
        stop = time.monotonic() + seconds
        seq = 0
        while time.monotonic() < stop:
            ws.send(pieces(client, seq))
            assert ws.recv() == message(client, seq), f"echo {seq} is not the message sent"
            seq += 1
        latency = ws.latency
    return seq, latency, ws.close_code


async def send_until_closed(ws: tether.ClientConnection, bound: float) -> None:
    """Send messages until the connection closes; fail if it is still open after ``bound``."""
    async with asyncio.timeout(bound):
        seq = 0
        while True:
            await ws.send(message(2, seq))
            seq += 1


@needs_netns
async def test_blackholed_route_detected_not_hung(request: pytest.FixtureRequest) -> None:
    handlers = Handlers()
    with link() as net:
        listener = net.listener()
        async with tether.serve(
            handlers.asyncio_handler, sock=listener, **FAST_KEEPALIVE
        ) as server:
            port = listener.getsockname()[1]
            ws = await connect_over(net, port, 2, **FAST_KEEPALIVE)
            await ws.send("before")
            async with asyncio.timeout(10):
                await handlers.opened.wait()
            (server_side,) = server.connections
            net.blackhole()
            cut = time.monotonic()
            # The application keeps sending: its sends stop being drained.
            with pytest.raises(ConnectionClosedError):
                await send_until_closed(ws, DETECTION + CLOSE_TIMEOUT + GRACE)
            detected = time.monotonic() - cut
            async with asyncio.timeout(DETECTION + CLOSE_TIMEOUT + GRACE):
                await server_side.wait_closed()
            for side in (ws, server_side):
                assert side.protocol.close_sent is not None
                assert side.protocol.close_sent.code == 1011
                assert side.close_code == 1006
    record(
        request,
        "fault",
        "route blackholed under a sending client (half-open connection)",
        f"both sides closed with 1011 by keepalive, the client after {detected:.2f} s; "
        "the blocked send raised ConnectionClosedError",
        0,
        seconds=round(detected, 2),
    )


def sync_send_until_closed(ws: SyncClientConnection, bound: float) -> str:
    """The threading twin of :func:`send_until_closed`: tell how the sending ended."""
    deadline = time.monotonic() + bound
    seq = 0
    try:
        while time.monotonic() < deadline:
            ws.send(message(3, seq))
            seq += 1
    except ConnectionClosedError:
        return "closed"
    return "still open"


@needs_netns
async def test_blackholed_route_detected_not_hung_threading(
    request: pytest.FixtureRequest,
) -> None:
    handlers = Handlers()
    loop = asyncio.get_running_loop()
    bound = DETECTION + CLOSE_TIMEOUT + GRACE
    with link() as net:
        listener = net.listener()
        port = listener.getsockname()[1]
        server = tether.sync.serve(handlers.sync_handler, sock=listener, **FAST_KEEPALIVE)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            sock = net.socket_in("a")
            sock.settimeout(20)
            await loop.run_in_executor(None, sock.connect, (ADDRESS_B, port))
            ws = await loop.run_in_executor(
                None,
                partial(
                    tether.sync.connect, f"ws://{ADDRESS_B}:{port}/", sock=sock, **FAST_KEEPALIVE
                ),
            )
            async with asyncio.timeout(10):
                await handlers.opened.wait()
            net.blackhole()
            cut = time.monotonic()
            # The application keeps sending from its thread: its sends stop being drained.
            outcome = await loop.run_in_executor(None, sync_send_until_closed, ws, bound)
            detected = time.monotonic() - cut
            assert outcome == "closed"
            async with asyncio.timeout(bound):
                await handlers.ended.wait()
            server_side = handlers.connection
            assert server_side is not None
            for side in (ws, server_side):
                assert side.protocol.close_sent is not None
                assert side.protocol.close_sent.code == 1011
                assert side.close_code == 1006
        finally:
            await loop.run_in_executor(None, server.shutdown)
            serving.join(10)
    record(
        request,
        "fault",
        "route blackholed under a sending threading client, threading server (half-open)",
        f"both sides closed with 1011 by keepalive, the client after {detected:.2f} s; "
        "the blocked send raised ConnectionClosedError",
        0,
        seconds=round(detected, 2),
    )
