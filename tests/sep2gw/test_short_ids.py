"""Short ids are unique among the ids of their kind and say their kind (issue 20): 8-character
tails collided, e.g. every CSIP-AUS mRID of one utility ends in its PEN (PROTOCOL.md §1)."""

from __future__ import annotations

import pytest

from events.control_events import ControlReceived
from events.der_model import Control, ControlSettings
from events.envelope import Recorded
from sep2gw.forensics.model import Forensics
from sep2gw.forensics.render import BadInstant, find_mrid
from sep2gw.timeline import ShortIds, Timeline

#: Two controls of one utility (PEN 37244 in the last 8 hex digits) and their program.
FIRST = "A1B2C3D4E5F60718293A4B5C00037244"
SECOND = "0F1E2D3C4B5A69788796A5B400037244"
PROGRAM = "D1500000000000000000000000037244"


def test_a_tail_is_lengthened_until_no_other_id_of_its_kind_shares_it() -> None:
    ids = ShortIds([FIRST, SECOND])
    ids.add(PROGRAM, "program")
    assert (ids(FIRST), ids(SECOND)) == ("C00037244", "400037244")
    assert ids(PROGRAM) == "00037244"  # the only program: the word "program" tells it apart
    assert ids("DE0000000000000000000000000000A2") == "000000A2"  # not known: the plain tail


def test_a_prefix_is_shown_when_it_is_shorter_than_any_unique_tail() -> None:
    ids = ShortIds(["C0000000000000000000000000000001", "D0000000000000000000000000000001"])
    assert ids("C0000000000000000000000000000001") == "C0000000…"
    assert ids.matching("c0000000…") == ["C0000000000000000000000000000001"]


def _received(mrid: str, seq: int) -> Recorded:
    control = Control(
        mrid=mrid,
        program_id=PROGRAM,
        creation_time_s=0,
        start_s=100,
        duration_s=60,
        settings=ControlSettings(export_limit_w=1000.0),
    )
    return Recorded(seq, "controls", seq, 0.0, 0.0, ControlReceived(control=control, at_s=0.0), b"")


def test_the_live_timeline_tells_two_controls_of_one_utility_apart() -> None:
    timeline = Timeline()
    first, second = (timeline.line(_received(m, i)) for i, m in enumerate((FIRST, SECOND), 1))
    assert first is not None and second is not None
    assert "control 00037244 received" in first  # the only control known yet
    assert "control 400037244 received" in second
    assert "(program 00037244)" in second


def test_explain_takes_any_unique_prefix_or_tail_and_lists_the_candidates_otherwise() -> None:
    model = Forensics()
    model.stories = {FIRST: [], SECOND: []}
    model.ids.add(PROGRAM, "program")
    assert find_mrid(model, "c00037244") == FIRST
    assert find_mrid(model, "0f1e") == SECOND
    assert find_mrid(model, FIRST.lower()) == FIRST
    with pytest.raises(BadInstant) as info:
        find_mrid(model, "00037244")
    assert "'00037244' names 2 controls; give more of the mRID" in str(info.value)
    assert FIRST in str(info.value) and SECOND in str(info.value)
    with pytest.raises(BadInstant, match="names no control but the program " + PROGRAM):
        find_mrid(model, "D15")
