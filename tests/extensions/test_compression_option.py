"""The ``compression`` option of clients and servers, shared by both APIs."""

from __future__ import annotations

import pytest

from tether.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
    client_extensions,
    server_extensions,
)


def test_deflate_adds_a_default_factory() -> None:
    (client,) = client_extensions("deflate", None)
    (server,) = server_extensions("deflate", None)
    assert isinstance(client, ClientPerMessageDeflateFactory)
    assert isinstance(server, ServerPerMessageDeflateFactory)


def test_deflate_keeps_a_factory_given_by_the_user() -> None:
    mine = ClientPerMessageDeflateFactory(client_max_window_bits=10)
    assert client_extensions("deflate", [mine]) == [mine]


def test_none_adds_nothing() -> None:
    theirs = ServerPerMessageDeflateFactory()
    assert client_extensions(None, None) == []
    assert server_extensions(None, [theirs]) == [theirs]


@pytest.mark.parametrize("compression", ["gzip", "", "Deflate"])
def test_other_values_are_refused(compression: str) -> None:
    with pytest.raises(ValueError, match="unsupported compression"):
        client_extensions(compression, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported compression"):
        server_extensions(compression, None)  # type: ignore[arg-type]
