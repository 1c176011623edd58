"""The fixtures of the behaviour tests.

``backend``: each test runs on asyncio, uvloop, threads and trio. ``side``:
a test of what both ends share runs with the end under test on each side.
"""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS, SIDES, Backend, Side, make_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The API under test: :mod:`tether.asyncio` (on asyncio or uvloop), :mod:`tether.sync` or
    :mod:`tether.trio`."""
    return make_backend(request.param)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> Side:
    """The end under test: the client or the server side of the connection."""
    return request.param  # type: ignore[no-any-return]
