"""The workers example of the scaling guide, run for real: four processes and a redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import tether
from tests.docs.programs import EXAMPLE_PORT, EXAMPLES, WAIT, free_port, source, wait_listening
from tests.topics.servers import RedisServer


async def test_workers_example(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    # A file, not ``python -c``: each worker imports the program's module.
    program = tmp_path / "workers.py"
    program.write_text(source(EXAMPLES / "scaling" / "workers.py", {EXAMPLE_PORT: port}))
    process = subprocess.Popen(
        [sys.executable, str(program), redis_server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Its own process group: the workers go with it if the test fails.
        start_new_session=True,
    )
    try:
        await asyncio.to_thread(wait_listening, port, process)
        uri = f"ws://127.0.0.1:{port}/rooms/42"
        clients = [await tether.connect(uri, open_timeout=WAIT) for _ in range(8)]
        # Each worker with someone in the room subscribes to it in Redis
        # once: connect until all four are, so that none misses the message.
        async with asyncio.timeout(WAIT):
            for _ in range(100):
                if await asyncio.to_thread(redis_server.numsub, "tether:42") == 4:
                    break
                clients.append(await tether.connect(uri, open_timeout=WAIT))
                await asyncio.sleep(0.01)
        assert await asyncio.to_thread(redis_server.numsub, "tether:42") == 4
        await clients[0].send("to every worker")
        for client in clients:
            assert await client.recv(timeout=WAIT) == "to every worker"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, WAIT) == 0
        for client in clients:
            await asyncio.wait_for(client.wait_closed(), WAIT)
            assert client.close_code == 1001
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=WAIT)
