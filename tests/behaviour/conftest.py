"""The ``backend`` fixture: each behaviour test runs on asyncio, on threads and on trio."""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS, Backend, make_backend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The API under test: :mod:`tether.asyncio`, :mod:`tether.sync` or :mod:`tether.trio`."""
    return make_backend(request.param)
