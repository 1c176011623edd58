"""The test suite of the "testing your application" guide passes, as a user would run it."""

from __future__ import annotations

import pytest

from tests.docs.programs import EXAMPLES

GUIDE = EXAMPLES / "testing"


def test_the_guide_suite_passes(pytester: pytest.Pytester) -> None:
    for name in ("app.py", "conftest.py", "test_app.py", "test_protocol.py"):
        (pytester.path / name).write_text((GUIDE / name).read_text())
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio"
    )
    result.assert_outcomes(passed=6)
