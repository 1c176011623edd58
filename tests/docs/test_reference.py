"""The API reference covers every public module: a new module without a page fails here."""

from __future__ import annotations

import re

from tests.docs.programs import DOCS, ROOT


def test_every_public_module_has_a_reference_entry() -> None:
    source = ROOT / "src"
    modules = set()
    for path in source.rglob("*.py"):
        parts = list(path.relative_to(source).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(part.startswith("_") for part in parts):
            modules.add(".".join(parts))
    pages = "".join(page.read_text() for page in (DOCS / "reference").glob("*.md"))
    documented = set(re.findall(r"\.\. automodule:: ([\w.]+)", pages))
    assert "tether.protocol" in documented
    assert sorted(modules - documented) == []
