"""The Django Channels side of the fan-out benchmark: one consumer in a group, on channels_redis.

uvicorn serves ``application``; ``BENCH_REDIS_URL`` names the Redis of the
channel layer. Each connection joins the group ``bench``, and each message
sent to the group with ``group_send`` goes to every connection.
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

# redis-py's pool refuses connections past its default bound under load:
# channels gets a pool as large as the Redis server allows.
HOST = {
    "address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1/0"),
    "max_connections": 10_000,
}

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [HOST]},
            }
        },
    )
    django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter  # noqa: E402

GROUP = "bench"


class FanoutConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Joins the group on connect; sends every group message to its client."""

    async def connect(self) -> None:
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def bench_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


application = ProtocolTypeRouter({"websocket": FanoutConsumer.as_asgi()})
