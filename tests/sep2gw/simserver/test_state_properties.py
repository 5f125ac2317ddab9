"""Properties of the state model over generated timelines (modest example counts)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sep2gw.simserver import (
    CancelControl,
    CreateControl,
    Modes,
    ProgramSpec,
    Quirks,
    Scenario,
    UtilityState,
)
from transport.sep2 import decode, encode
from transport.sep2 import resources as r

from .helpers import LFDI, START, end_device

controls = st.lists(
    st.tuples(st.integers(0, 500), st.integers(1, 300), st.integers(0, 100)),
    min_size=1,
    max_size=12,
)


def _state(specs: list[tuple[int, int, int]], quirks: Quirks | None = None) -> UtilityState:
    actions = [
        CreateControl(
            at_s=created,
            program="p",
            start_s=start,
            duration_s=duration,
            mrid=f"{i + 1:X}",
            modes=Modes(opModExpLimW=1000),
        )
        for i, (start, duration, created) in enumerate(specs)
    ]
    scenario = Scenario(
        quirks=quirks or Quirks(), programs=[ProgramSpec(id="p", primacy=1)], actions=list(actions)
    )
    state = UtilityState(scenario, start=START)
    for _, action in scenario.timeline():
        state.apply(action, START + action.at_s)
    assert state.handle("POST", "/edev", encode(end_device()), LFDI, START).status == 201
    return state


@settings(max_examples=30)
@given(specs=controls, limit=st.integers(1, 5))
def test_pages_of_any_size_cover_the_list_exactly_once(
    specs: list[tuple[int, int, int]], limit: int
) -> None:
    state = _state(specs)
    whole = decode(state.handle("GET", "/derp/1/derc", b"", LFDI, START).body, r.DERControlList)
    paged: list[int] = []
    for offset in range(0, len(specs) + limit, limit):
        target = f"/derp/1/derc?s={offset}&l={limit}"
        page = decode(state.handle("GET", target, b"", LFDI, START).body, r.DERControlList)
        assert page.all == len(specs) and page.results == len(page.DERControl) <= limit
        paged.extend(int(c.mRID) for c in page.DERControl)
    assert paged == [int(c.mRID) for c in whole.DERControl]
    starts = [c.interval.start for c in whole.DERControl]
    assert starts == sorted(starts)


@settings(max_examples=30)
@given(specs=controls, cancel_at=st.integers(0, 900), completed=st.booleans())
def test_event_status_only_moves_forward_in_time(
    specs: list[tuple[int, int, int]], cancel_at: int, completed: bool
) -> None:
    state = _state(specs, Quirks(status_completed=completed))
    state.apply(CancelControl(at_s=cancel_at, mrid="1"), START + cancel_at)
    # order of the statuses' lifecycles: scheduled → active → completed, or → cancelled
    rank = {0: 0, 1: 1, 5: 2, 2: 3}
    seen: dict[int, int] = {}
    for now in range(START, START + 1000, 25):
        listed = decode(state.handle("GET", "/derp/1/derc", b"", LFDI, now).body, r.DERControlList)
        for control in listed.DERControl:
            status = control.EventStatus.currentStatus
            assert status in rank
            mrid = int(control.mRID)
            assert rank[status] >= rank[seen.get(mrid, status)], (mrid, now)
            seen[mrid] = status
            if mrid == 1 and now >= START + cancel_at:
                assert status == 2
