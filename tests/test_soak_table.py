"""The soak's tooling: the memory criterion, and the table made from the soak report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.load.clients import MIB
from tests.load.test_soak import stopped_growing
from tests.soak_table import BEGIN, END, main


def test_memory_that_levels_off_passes_and_memory_that_grows_fails() -> None:
    level = [300 * MIB, 310 * MIB, 305 * MIB, 312 * MIB]
    assert stopped_growing(level)
    # 5% and 4 MiB over the first half's largest is the most allowed.
    assert stopped_growing([100 * MIB, 105 * MIB + 4 * MIB])
    assert not stopped_growing([100 * MIB, 105 * MIB + 5 * MIB])
    # A steady leak fails however it started.
    assert not stopped_growing([300 * MIB + n * 5 * MIB for n in range(8)])


def test_criterion_needs_two_rounds() -> None:
    with pytest.raises(AssertionError):
        stopped_growing([100 * MIB])


def test_table_replaces_what_is_between_the_markers(tmp_path: Path) -> None:
    report = tmp_path / "results.jsonl"
    rows = [
        {
            "section": "hostile",
            "what": "a | pipe",
            "held": "held",
            "lost": 0,
            "test": "tests/conformance/test_attacks.py",
            "soak": True,
            "numbers": {},
        },
        {
            "section": "load",
            "what": "many",
            "held": "all",
            "lost": 0,
            "test": "tests/load/test_soak.py::test_x[uvloop]",
            "soak": True,
            "numbers": {},
        },
    ]
    report.write_text("".join(json.dumps(row) + "\n" for row in rows))
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\n{BEGIN}\nold table\n{END}\n\nAfter.\n")
    main([str(report), str(page)])
    text = page.read_text()
    assert "old table" not in text
    assert text.startswith("# Title\n\n" + BEGIN)
    assert text.endswith(END + "\n\nAfter.\n")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    # Load comes before hostile inputs; a pipe in a cell is escaped.
    assert lines[1].startswith("| Load held | many |")
    assert "a \\| pipe" in lines[2]
    # Only the tests whose size --soak changes are given --soak.
    assert "'tests/load/test_soak.py::test_x[uvloop]' --soak`" in lines[1]
    assert lines[2].endswith("-m pytest tests/conformance/test_attacks.py` |")
    assert "0 messages lost in all" in text


def test_table_needs_its_markers(tmp_path: Path) -> None:
    report = tmp_path / "results.jsonl"
    report.write_text(
        json.dumps(
            {"section": "load", "what": "w", "held": "h", "lost": 0, "test": "t", "numbers": {}}
        )
        + "\n"
    )
    page = tmp_path / "page.md"
    page.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        main([str(report), str(page)])
