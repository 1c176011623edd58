"""Turn the soak report into the table of the docs.

    python -m tests.soak_table build/soak/results.jsonl docs/topics/reliability.md

reads the JSON lines that ``make soak`` wrote (see :mod:`tests.soak_results`)
and replaces the table between the markers ``<!-- soak table begins -->``
and ``<!-- soak table ends -->`` of the page: one row per result, load
first, then faults, then hostile inputs, each with the command that
reproduces it. ``make soak`` runs it after the tests pass.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

BEGIN = "<!-- soak table begins -->"
END = "<!-- soak table ends -->"

SOAK_SIZED = ("tests/load/", "tests/faults/")
"""The tests whose size ``--soak`` changes."""

SECTIONS = {"load": "Load held", "fault": "Fault survived", "hostile": "Hostile input"}


def command(row: dict[str, object]) -> str:
    """The command that runs the test of ``row`` again, at the size it ran."""
    test = str(row["test"])
    words = [".venv/bin/python", "-m", "pytest", test]
    if row.get("soak") and test.startswith(SOAK_SIZED):
        words.append("--soak")
    return shlex.join(words)


def cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, object]]) -> str:
    """The Markdown table of ``rows``, sorted by section."""
    order = list(SECTIONS)
    rows = sorted(rows, key=lambda row: order.index(str(row["section"])))
    lines = [
        "| | What was done | What held | Lost | Reproduce |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {SECTIONS[str(row['section'])]} | {cell(row['what'])} | {cell(row['held'])} "
            f"| {cell(row['lost'])} | `{cell(command(row))}` |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    report, page = Path(argv[0]), Path(argv[1])
    rows = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines() if line]
    if not rows:
        raise SystemExit(f"{report}: no results")
    text = page.read_text(encoding="utf-8")
    before, found, rest = text.partition(BEGIN)
    _, found_end, after = rest.partition(END)
    if not found or not found_end:
        raise SystemExit(f"{page}: the markers {BEGIN} and {END} are missing")
    made = datetime.now(UTC).strftime("%Y-%m-%d")
    lost = sum(int(row["lost"]) for row in rows)
    body = (
        f"\n{table(rows)}\n\nMade by `make soak` on {made} from {len(rows)} results; "
        f"{lost} messages lost in all.\n"
    )
    page.write_text(before + BEGIN + body + END + after, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
