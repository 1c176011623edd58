"""The test suite of the "testing your application" guide passes, as a user would run it."""

from __future__ import annotations

import re

import pytest

from tests.docs.programs import EXAMPLES

GUIDE = EXAMPLES / "testing"

# Without the plugins of tether's own environment that a user may not have.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio")


def test_the_guide_suite_passes(pytester: pytest.Pytester) -> None:
    for name in ("app.py", "conftest.py", "test_app.py", "test_protocol.py"):
        (pytester.path / name).write_text((GUIDE / name).read_text())
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=6)


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    (block,) = [
        code
        for code in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "tether_server" in code
    ]
    pytester.makeconftest('pytest_plugins = ["tether.testing"]')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_readme=block)
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1)
