"""The committed state diagrams in ARCHITECTURE.md are exactly the rendering of the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from statemachines.diagrams import BEGIN_MARKER, END_MARKER, MACHINES, replace_section

ARCHITECTURE = Path(__file__).resolve().parents[2] / "ARCHITECTURE.md"


def test_committed_state_diagrams_match_the_transition_tables() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert replace_section(text) == text, "run: python3 scripts/gen_state_diagrams.py"


def test_every_row_of_every_table_is_an_edge_in_architecture_md() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    for table, _ in MACHINES:
        for row in table.rows:
            assert f"    {row.source} --> {row.dest} : {row.trigger}" in text


def test_missing_markers_are_refused() -> None:
    with pytest.raises(ValueError, match="marker"):
        replace_section(f"{BEGIN_MARKER}\n{BEGIN_MARKER}\n{END_MARKER}")
