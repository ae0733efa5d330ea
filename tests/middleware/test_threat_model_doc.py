"""docs/threat-model.md stays true: in every row marked done, each module and test file it
names exists and at least one test file is named (an open row may name files still to come)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "threat-model.md"
_PATH = re.compile(r"`((?:gateway|tests|demo|config|policies)/[^`\s]*)`")


def attack_rows() -> list[tuple[str, str, str, str]]:
    """(attack, defence, test, status) of every table row with a status column."""
    out = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and (cells[3] == "done" or cells[3].startswith("**open**")):
            out.append((cells[0], cells[1], cells[2], cells[3]))
    return out


def test_the_doc_lists_the_attack_classes() -> None:
    assert len(attack_rows()) > 20


def test_every_done_row_names_files_that_exist() -> None:
    for attack, defence, test, status in attack_rows():
        if status != "done":
            continue
        for path in _PATH.findall(defence + " " + test):
            assert (ROOT / path).exists(), f"{attack}: {path} does not exist"
        assert any(p.startswith("tests/") for p in _PATH.findall(test)), f"{attack}: no test named"


def test_every_open_row_says_what_is_missing() -> None:
    for attack, _defence, _test, status in attack_rows():
        if status.startswith("**open**"):
            assert len(status) > len("**open**:"), f"{attack}: say what is missing"
