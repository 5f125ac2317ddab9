"""Server actions the scenario library needs: content changed under an mRID (§4 rule 1), an event
that vanishes without a cancel (rule 4), and mirrors the server loses (§2 step 8)."""

from __future__ import annotations

import pytest

from sep2gw.simserver import (
    ChangeControl,
    DeleteControl,
    LoseMirrors,
    Modes,
    ScenarioError,
    UtilityState,
    parse_scenario,
)
from transport.sep2 import decode, encode
from transport.sep2 import resources as r

from .helpers import LFDI, START, registered
from .test_state import get, ok

ONE = """
[[programs]]
id = "ret"
primacy = 5

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "ret"
start_s = 100
duration_s = 100
modes = { opModExpLimW = 1000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A2"
program = "ret"
start_s = 300
duration_s = 60
modes = { opModImpLimW = 100 }
"""


def controls(state: UtilityState, now: float = START) -> list[r.DERControl]:
    listed = decode(ok(get(state, "/derp/1/derc", now)), r.DERControlList)
    return list(listed.DERControl)


def test_change_control_rewrites_the_content_under_the_same_mrid() -> None:
    state = registered(ONE)
    state.apply(ChangeControl(at_s=10, mrid="A1", modes=Modes(opModExpLimW=300)), START + 10)
    first = controls(state)[0]
    assert int(first.mRID) == 0xA1
    assert first.DERControlBase.opModExpLimW == r.ActivePower(value=300, multiplier=0)


def test_a_deleted_control_leaves_the_lists_without_a_cancel() -> None:
    state = registered(ONE)
    state.apply(DeleteControl(at_s=150, mrid="A1"), START + 150)
    assert [int(c.mRID) for c in controls(state, START + 150)] == [0xA2]
    active = decode(ok(get(state, "/derp/1/actderc", START + 150)), r.DERControlList)
    assert active.DERControl == ()
    assert get(state, "/derp/1/derc/1", START + 150).status == 404
    known = state.control("A1")  # the server still knows it, and issued no cancel
    assert known is not None and known.cancelled_at is None


def test_lose_mirrors_forgets_every_mirror_usage_point() -> None:
    state = registered(ONE)
    mup = r.MirrorUsagePoint(
        mRID=r.HexBinary128(0x1234),
        roleFlags=r.HexBinary16(0x49),
        serviceCategoryKind=0,
        status=0,
        deviceLFDI=r.HexBinary160(int(LFDI, 16)),
    )
    assert state.handle("POST", "/mup", encode(mup), LFDI, START).status == 201
    state.apply(LoseMirrors(at_s=60), START + 60)
    assert get(state, "/mup/1", START + 60).status == 404


def test_the_new_actions_are_checked_like_the_others() -> None:
    text = ONE + (
        '[[actions]]\nat_s = 5\nkind = "change_control"\nmrid = "B7"\nmodes = {}\n'
        '[[actions]]\nat_s = 5\nkind = "delete_control"\nmrid = "XYZ"\n'
    )
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="t")
    assert caught.value.problems == [
        "actions[2].modes: a control sets at least one mode",
        "actions[2].mrid: no create_control action creates B7",
        "actions[3].mrid: 'XYZ' is not an mRID (1 to 32 hex digits)",
    ]
