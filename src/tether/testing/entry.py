"""tether's ``pytest11`` entry point: it only adds a switch for the fixtures.

pytest loads this module in every project where tether is installed, so it
does nothing unless asked: with ``--tether-fixtures`` or
``tether_fixtures = true`` in the configuration, it registers
:mod:`tether.testing` and its fixtures. ``-p tether.testing`` does the same
without this module.
"""

from __future__ import annotations

import importlib

import pytest

__all__ = ["pytest_addoption", "pytest_configure"]

PLUGIN = "tether.testing"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``--tether-fixtures`` option and the ``tether_fixtures`` setting."""
    parser.addini(
        "tether_fixtures",
        type="bool",
        default=False,
        help="make tether's test fixtures available (tether.testing)",
    )
    parser.getgroup("tether").addoption(
        "--tether-fixtures",
        action="store_true",
        default=False,
        help="make tether's test fixtures available (tether.testing)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register the fixtures when asked, unless ``-p tether.testing`` already did."""
    wanted = config.getoption("tether_fixtures") or config.getini("tether_fixtures")
    if wanted and not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.register(importlib.import_module(PLUGIN), PLUGIN)
