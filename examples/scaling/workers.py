"""A chat server in four processes on port 8766, its rooms shared through Redis.

Run it with a Redis URL: ``python workers.py redis://localhost:6379/0``.
"""

import sys
from typing import Any

import tether
from tether.topics import RedisBroker
from tether.workers import run_workers

REDIS_URL = sys.argv[1] if len(sys.argv) > 1 else "redis://localhost:6379/0"

# Made again in each worker, which imports this module.
topics = tether.Topics(broker=RedisBroker(REDIS_URL))


async def chat(websocket: tether.ServerConnection, room: str) -> None:
    topics.subscribe(websocket, room)
    async for message in websocket:
        await topics.publish(room, message)


def make_server(**kwargs: Any) -> Any:
    return tether.route({"/rooms/{room}": chat}, "127.0.0.1", 8766, **kwargs)


if __name__ == "__main__":
    sys.exit(run_workers(make_server, workers=4))
