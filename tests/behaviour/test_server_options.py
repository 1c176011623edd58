"""Every API's server checks its options alike (tether.serving.make_engines), before listening."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends import Backend, Face


async def hold(ws: Face) -> None:
    await ws.wait_closed()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"proxy_protocol": True}, "proxy_protocol needs trusted_proxies"),
        ({"compression": "gzip"}, "compression"),
    ],
)
def test_bad_server_options_fail_before_listening(
    backend: Backend, options: dict[str, Any], error: str
) -> None:
    async def body() -> None:
        with pytest.raises(ValueError, match=error):
            async with backend.serve(hold, **options):
                pass

    backend.run(body)


def test_compression_option_reaches_the_engine(backend: Backend) -> None:
    async def body() -> None:
        for compression, header in [("deflate", "permessage-deflate"), (None, None)]:
            async with backend.pair(server={"compression": compression}) as (client, _):
                extensions = client.response_headers.get("Sec-WebSocket-Extensions")
                if header is None:
                    assert extensions is None
                else:
                    assert extensions is not None
                    assert extensions.startswith(header)

    backend.run(body)
