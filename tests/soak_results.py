"""What the soak and the fault tests measured, written down for the table of the docs.

With ``--soak-report=FILE`` each test that measures something appends one
JSON object per line to ``FILE``: the section of the table it belongs to
(``load``, ``fault`` or ``hostile``), what was done, what held, what was
lost, and the test's node id, from which the command that reproduces the row
is made. ``make soak`` writes ``build/soak/results.jsonl``, and
``python -m tests.soak_table`` turns it into the table of the docs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

__all__ = ["append", "record"]


def record(
    request: pytest.FixtureRequest,
    section: str,
    what: str,
    held: str,
    lost: int,
    **numbers: float | int | str,
) -> None:
    """Append one result of the running test, if ``--soak-report`` was given."""
    row = {
        "section": section,
        "what": what,
        "held": held,
        "lost": lost,
        "test": request.node.nodeid,
        "numbers": numbers,
    }
    append(request.config, row)


def append(config: pytest.Config, row: dict[str, object]) -> None:
    """Append ``row`` to the ``--soak-report`` file, if any, noting whether ``--soak`` was on."""
    path = config.getoption("soak_report", None)
    if path is None:
        return
    row = {**row, "soak": bool(config.getoption("soak", False))}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(row, ensure_ascii=False) + "\n")
