"""Short Python scripts run in a fresh interpreter, for what a test's own process cannot show.

Whether the accelerator is used is decided once, at import: a script shows
the other choice. A read of freed memory may go unnoticed in the test's
process; under Python's debug allocator (``PYTHONMALLOC=debug``) the freed
memory is overwritten, so that such a read crashes the script.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ["script_output"]


def script_output(
    code: str, *, accelerated: bool = True, debug_allocator: bool = False
) -> list[str]:
    """Run ``code`` with ``python -c``; return the words it printed.

    ``accelerated`` false sets ``TETHER_NO_SPEEDUPS``, true removes it;
    ``debug_allocator`` runs it with ``PYTHONMALLOC=debug``. The test fails,
    with the script's standard error, unless it exits with 0 within a minute.
    """
    env = {**os.environ}
    env.pop("TETHER_NO_SPEEDUPS", None)
    if not accelerated:
        env["TETHER_NO_SPEEDUPS"] = "1"
    if debug_allocator:
        env["PYTHONMALLOC"] = "debug"
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()
