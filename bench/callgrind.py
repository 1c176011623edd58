"""Instructions per operation, counted by callgrind.

A bench module runs itself under ``valgrind --tool=callgrind`` at two sizes;
the difference of the two totals over the difference of the sizes is the
cost of one operation, without start-up and warm-up. Counts are exact and
unaffected by the machine's load.

Each process run under callgrind gets a fixed ``PYTHONHASHSEED``
(:func:`seeded`): with a random one, the layout of sets and dicts keyed by
strings changes from run to run, and the count per operation with it (by
about 200 instructions per echo in ``bench.echo_callgrind``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping

VALGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]

HASH_SEED = "0"
"""The ``PYTHONHASHSEED`` of the processes counted, unless their environment names one."""


def seeded(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (by default this process's environment) with a fixed hash seed.

    A ``PYTHONHASHSEED`` already in ``env`` is kept, to compare seeds on purpose.
    """
    return {"PYTHONHASHSEED": HASH_SEED, **(os.environ if env is None else env)}


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
    """Instructions per operation of ``python -m module *arguments --count N``.

    ``env`` is the environment of the counted processes (by default this
    process's), with a fixed hash seed (:func:`seeded`).
    """
    env = seeded(env)
    counts = []
    for size in sizes:
        command = [*VALGRIND, sys.executable, "-m", module, *arguments, "--count", str(size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        counts.append(collected(done.stderr))
    return (counts[1] - counts[0]) / (sizes[1] - sizes[0])
