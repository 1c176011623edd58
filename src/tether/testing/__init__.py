"""Helpers to test applications built on tether, and a pytest plugin.

- :class:`~tether.testing.servers.LocalServer`,
  :func:`~tether.testing.servers.start_server` and
  :func:`~tether.testing.servers.start_sync_server` run a handler on a free
  loopback port in a background thread;
- :class:`~tether.testing.engines.EnginePair` wires a client and a server
  engine together in memory, with no socket;
- :func:`~tether.testing.assertions.assert_receives`,
  :func:`~tether.testing.assertions.assert_closes` and their ``_sync``
  twins check what a connection received and how it closed.

As a pytest plugin (``-p tether.testing``, ``pytest_plugins =
["tether.testing"]``, or ``tether_fixtures = true`` in the configuration),
this module provides the fixtures ``tether_server``, ``tether_sync_server``,
``tether_client`` and ``tether_engine_pair``; see
:mod:`tether.testing.plugin`. Importing this module imports pytest;
``import tether`` never imports it.
"""

from tether.testing.assertions import (
    assert_closed,
    assert_closes,
    assert_closes_sync,
    assert_receives,
    assert_receives_sync,
)
from tether.testing.engines import EnginePair
from tether.testing.plugin import (
    tether_client,
    tether_engine_pair,
    tether_server,
    tether_sync_server,
)
from tether.testing.servers import LocalServer, start_server, start_sync_server

__all__ = [
    "EnginePair",
    "LocalServer",
    "assert_closed",
    "assert_closes",
    "assert_closes_sync",
    "assert_receives",
    "assert_receives_sync",
    "start_server",
    "start_sync_server",
    "tether_client",
    "tether_engine_pair",
    "tether_server",
    "tether_sync_server",
]
