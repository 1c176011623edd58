"""Topics for threading connections: what only tether.sync's Topics has.

What every API's topics share (fan-out, publishing from threads, leaving on
close, slow subscribers) is tested once in tests/behaviour/test_topics.py.
"""

from __future__ import annotations

import pytest

from tether.sync import Topics


def test_bad_write_limit() -> None:
    with pytest.raises(ValueError, match="write_limit"):
        Topics(write_limit=-1)
