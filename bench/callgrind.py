"""Instructions per operation, counted by callgrind.

A bench module runs itself under ``valgrind --tool=callgrind`` at two sizes;
the difference of the two totals over the difference of the sizes is the
cost of one operation, without start-up and warm-up. Counts are exact and
unaffected by the machine's load.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping

VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]


def collected(output: str) -> int:
    """The total that callgrind printed on ``output`` (its standard error)."""
    match = re.search(r"Collected : (\d+)", output)
    if match is None:
        raise RuntimeError(f"no instruction count from callgrind: {output[-500:]}")
    return int(match.group(1))


def per_operation(
    module: str,
    arguments: list[str],
    sizes: tuple[int, int],
    env: Mapping[str, str] | None = None,
) -> float:
    """Instructions per operation of ``python -m module *arguments --count N``."""
    counts = []
    for size in sizes:
        command = [*VALGRIND, sys.executable, "-m", module, *arguments, "--count", str(size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        counts.append(collected(done.stderr))
    return (counts[1] - counts[0]) / (sizes[1] - sizes[0])
