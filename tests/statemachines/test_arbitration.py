"""Arbitration (PROTOCOL.md §4 rules 7 and 10): table-driven cases and properties at random instants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.der_model import ControlSettings, DefaultControl, Mode, Program
from statemachines.arbitration import (
    Candidate,
    DefaultSupply,
    arbitrate,
    merge_defaults,
    rank,
    settings_items,
)

E, G = Mode.EXPORT_LIMIT_W, Mode.GENERATION_LIMIT_W


def cand(
    mrid: str,
    primacy: int,
    created: int,
    start: int,
    end: int,
    lost: frozenset[Mode] = frozenset(),
    **s: Any,
) -> Candidate:
    return Candidate(
        mrid, rank(primacy, created, mrid), start, end, settings_items(ControlSettings(**s)), lost
    )


@pytest.mark.parametrize(
    ("now", "expected_export", "expected_next"),
    [
        (0, ("default:P9", 5000.0), 10),  # before anything: default, next change at A's start
        (10, ("control:A", 1000.0), 20),  # A alone
        (25, ("control:B", 0.0), 30),  # B outranks A (lower primacy)
        (35, ("control:A", 1000.0), 50),  # B over (half-open at 30), A still in effect
        (50, ("default:P9", 5000.0), None),  # everything over
    ],
)
def test_rule7_rule10_winner_default_and_next_change(
    now: int, expected_export: tuple[str, float], expected_next: int | None
) -> None:
    candidates = [
        cand("A", 2, 0, 10, 50, export_limit_w=1000.0),
        cand("B", 1, 0, 20, 30, export_limit_w=0.0),
    ]
    defaults = {E: DefaultSupply(5000.0, "default:P9")}
    arb = arbitrate(candidates, defaults, now)
    assert (arb.sources[E], arb.values[E]) == expected_export
    assert arb.next_change_s == expected_next


def test_rule7_tie_on_primacy_goes_to_the_later_creation_time() -> None:
    arb = arbitrate(
        [cand("A", 1, 5, 0, 10, export_limit_w=1.0), cand("B", 1, 9, 0, 10, export_limit_w=2.0)],
        {},
        5,
    )
    assert arb.sources[E] == "control:B"


def test_rule7_a_lost_mode_is_not_supplied_by_its_loser() -> None:
    arb = arbitrate(
        [cand("A", 1, 0, 0, 10, lost=frozenset({E}), export_limit_w=1.0, generation_limit_w=2.0)],
        {E: DefaultSupply(9.0, "default:P")},
        5,
    )
    assert arb.sources == {E: "default:P", G: "control:A"}


def test_rule10_merge_defaults_per_mode_by_primacy() -> None:
    programs = [Program(program_id="P1", primacy=1), Program(program_id="P2", primacy=2)]
    defaults = {
        "P1": DefaultControl(program_id="P1", settings=ControlSettings(export_limit_w=1.0)),
        "P2": DefaultControl(
            program_id="P2", settings=ControlSettings(export_limit_w=2.0, import_limit_w=3.0)
        ),
    }
    merged = merge_defaults(programs, defaults)
    assert merged[E] == DefaultSupply(1.0, "default:P1")
    assert merged[Mode.IMPORT_LIMIT_W] == DefaultSupply(3.0, "default:P2")


def test_settings_round_trip_through_arbitration() -> None:
    arb = arbitrate([cand("A", 1, 0, 0, 10, export_limit_w=1.0, energize=False)], {}, 0)
    assert arb.settings() == ControlSettings(export_limit_w=1.0, energize=False)


_MODES = [E, G, Mode.ENERGIZE]


@st.composite
def _candidates(draw: st.DrawFn) -> list[Candidate]:
    out = []
    for i in range(draw(st.integers(0, 25))):
        start = draw(st.integers(0, 1000))
        end = start + draw(st.integers(1, 300))
        modes = draw(st.sets(st.sampled_from(_MODES), min_size=1))
        lost = draw(st.sets(st.sampled_from(sorted(modes))))
        s = {m.value: (True if m is Mode.ENERGIZE else float(i)) for m in modes}
        out.append(
            cand(
                f"C{i}",
                draw(st.integers(1, 3)),
                draw(st.integers(0, 5)),
                start,
                end,
                frozenset(lost),
                **s,
            )
        )
    return out


@settings(max_examples=150)
@given(candidates=_candidates(), now=st.integers(-10, 1400), with_default=st.booleans())
def test_property_arbitration_at_random_instants(
    candidates: list[Candidate], now: int, with_default: bool
) -> None:
    defaults = {E: DefaultSupply(-1.0, "default:D")} if with_default else {}
    arb = arbitrate(candidates, defaults, now)
    by_id = {c.mrid: c for c in candidates}
    for mode in _MODES:
        in_effect = [
            c
            for c in candidates
            if c.start_s <= now < c.end_s
            and mode not in c.lost
            and any(m is mode for m, _ in c.items)
        ]
        source = arb.sources.get(mode)
        if not in_effect:
            # Nothing outside its effective period is ever in force; only a default may fill the gap.
            assert source is None or source.startswith("default:")
            assert (source is not None) is (with_default and mode is E)
            continue
        # At most one winner per mode, and it maximises (-primacy, creationTime).
        assert source is not None and source.startswith("control:")
        winner = by_id[source.removeprefix("control:")]
        assert winner.rank == max(c.rank for c in in_effect)
        assert winner.start_s <= now < winner.end_s
    future = [t for c in candidates for t in (c.start_s, c.end_s) if t > now]
    assert arb.next_change_s == (min(future) if future else None)
