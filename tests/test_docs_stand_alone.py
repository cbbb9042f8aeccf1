"""Code, docs and tests cite the project's own docs (docs/api.md, docs/warehouses.md ...), an RFC
or a vendor's documentation, never a design file or tracker a user does not have."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Written in pieces so this file does not match itself.
CITATION = re.compile(
    "|".join(
        [
            r"contract\s+(section|§)",
            r"contract's\s+example",
            "shared/" + "(contract|design)",
            "testbed" + r"\.md",
            r"\bissue\s+\d",
        ]
    ),
    re.IGNORECASE,
)


def test_nothing_cites_an_outside_design_file() -> None:
    files = [ROOT / "README.md"]
    for folder in ("src/stead", "docs", "tests"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".json")]
    # Applied migrations are history: they are never edited, not even their docstrings.
    # node_modules: the test providers' npm packages are not the project's.
    files = [p for p in files if "versions" not in p.parts and "node_modules" not in p.parts]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if CITATION.search(line)
    ]
    assert len(files) > 150
    assert found == []
