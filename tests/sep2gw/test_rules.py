"""Explanations cite the public rule, not the team's internal digest (issue 20)."""

from __future__ import annotations

import pytest

from sep2gw.rules import PUBLIC_RULES, rule
from tests.sep2gw.forensics.golden import GOLDEN_DIR


def test_every_rule_of_the_digest_has_a_public_citation() -> None:
    assert set(PUBLIC_RULES) == {"preamble", *range(1, 17)}
    assert all(
        text.startswith(("IEEE 2030.5-2018: ", "CSIP-AUS")) for text in PUBLIC_RULES.values()
    )


def test_several_rules_name_the_standard_once() -> None:
    assert rule(7, 10) == (
        "IEEE 2030.5-2018: event rules, overlapping events (DERProgram primacy, creationTime); "
        "Response status 7; DefaultDERControl, DERProgram primacy"
    )
    with pytest.raises(KeyError, match="no public citation for rule 17"):
        rule(17)


def test_no_explanation_shown_to_a_user_cites_the_internal_digest() -> None:
    """``explain`` cited "PROTOCOL.md §4 rule 7", a document a site's analyst does not have."""
    outputs = sorted(GOLDEN_DIR.glob("*.txt"))
    assert outputs
    for path in outputs:
        text = path.read_text(encoding="utf-8")
        assert "PROTOCOL.md" not in text and "§4" not in text, path.name
    assert any("IEEE 2030.5-2018: " in p.read_text(encoding="utf-8") for p in outputs)
