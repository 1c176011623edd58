"""The fixtures of the behaviour tests.

``backend``: each test runs on asyncio, uvloop, threads and trio, or on the
APIs its ``apis`` mark names (for what only some APIs have, such as
websockets' legacy spellings). ``side``: a test of what both ends share runs
with the end under test on each side.
"""

from __future__ import annotations

import pytest

from tests.backends import BACKENDS, SIDES, Backend, Side, make_backend


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "apis(*names): run only on these APIs ('asyncio', 'sync', 'trio')"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        mark = metafunc.definition.get_closest_marker("apis")
        kinds = [kind for kind in BACKENDS if mark is None or make_backend(kind).api in mark.args]
        metafunc.parametrize("backend", kinds, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The API under test: :mod:`tether.asyncio` (on asyncio or uvloop), :mod:`tether.sync` or
    :mod:`tether.trio`."""
    return make_backend(request.param)


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> Side:
    """The end under test: the client or the server side of the connection."""
    return request.param  # type: ignore[no-any-return]
