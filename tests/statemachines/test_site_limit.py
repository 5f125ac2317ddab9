"""The DER setpoint rules: validation, clamping to the DER, closed-loop site limits, ramp, deadband."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.der_model import ControlSettings
from statemachines.site_limit import (
    DerRating,
    InvalidLimit,
    LoopConfig,
    LoopState,
    rating_at_charge,
    step,
    validate_limits,
)

RATING = DerRating(max_discharge_w=5000, max_charge_w=4000, max_w=5000)
FAST = LoopConfig(deadband_w=0, rate_w_per_s=1e9, margin_w=0)


def once(
    limits: ControlSettings,
    *,
    site_w: float | None = None,
    der_w: float | None = 0.0,
    config: LoopConfig = FAST,
):
    return step(
        LoopState(), config, now=0.0, limits=limits, rating=RATING, site_w=site_w, der_w=der_w
    )[1]


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (ControlSettings(export_limit_w=math.nan), "export_limit_w"),
        (ControlSettings(target_w=math.inf), "target_w"),
        (ControlSettings(import_limit_w=-1.0), "import_limit_w"),
        (ControlSettings(max_limit_pct=100.5), "max_limit_pct"),
        (ControlSettings(fixed_w_pct=-101.0), "fixed_w_pct"),
        (ControlSettings(ramp_time_s=-5.0), "ramp_time_s"),
    ],
)
def test_nan_and_out_of_range_limits_are_refused_naming_the_mode(
    limits: ControlSettings, field: str
) -> None:
    with pytest.raises(InvalidLimit) as info:
        validate_limits(limits)
    assert info.value.mode == field
    with pytest.raises(InvalidLimit):
        once(limits)


def test_rating_refuses_nan() -> None:
    with pytest.raises(InvalidLimit, match="max_w"):
        DerRating(max_discharge_w=1, max_charge_w=1, max_w=math.nan)


def test_no_power_mode_releases_the_setpoint() -> None:
    decision = once(ControlSettings(connect=True))
    assert decision.setpoint_w is None


def test_target_beyond_nameplate_is_clamped_and_reported() -> None:
    decision = once(ControlSettings(target_w=9000))
    assert decision.setpoint_w == 5000
    (clamp,) = decision.clamps
    assert (clamp.mode, clamp.requested, clamp.applied, clamp.bound) == (
        "target_w",
        9000,
        5000,
        "max_discharge_w",
    )


def test_charge_target_is_clamped_to_the_charge_rate() -> None:
    assert once(ControlSettings(storage_target_w=-7000)).setpoint_w == -4000


def test_fixed_w_pct_uses_discharge_rate_when_positive_and_charge_rate_when_negative() -> None:
    assert once(ControlSettings(fixed_w_pct=50)).setpoint_w == 2500
    assert once(ControlSettings(fixed_w_pct=-50)).setpoint_w == -2000


def test_generation_load_and_max_limit_pct_bound_the_der() -> None:
    assert once(ControlSettings(target_w=4000, generation_limit_w=1500)).setpoint_w == 1500
    assert once(ControlSettings(target_w=-4000, load_limit_w=1000)).setpoint_w == -1000
    assert once(ControlSettings(target_w=4000, max_limit_pct=20)).setpoint_w == 1000


def test_export_limit_closes_the_loop_on_the_site_meter() -> None:
    # PV exceeds load by 3000 W with the DER idle: the DER must absorb 2000 W to export only 1000 W.
    decision = once(ControlSettings(export_limit_w=1000), site_w=3000, der_w=0)
    assert decision.setpoint_w == -2000
    assert decision.site_limit_met is True


def test_import_limit_makes_the_der_discharge() -> None:
    decision = once(ControlSettings(import_limit_w=500), site_w=-2500, der_w=-500)
    # rest of site = -2000 W; import ≤ 500 needs DER ≥ 1500 W
    assert decision.setpoint_w == 1500


def test_export_limit_overrides_a_discharge_target() -> None:
    decision = once(ControlSettings(target_w=3000, export_limit_w=0), site_w=1000, der_w=0)
    assert decision.setpoint_w == -1000
    assert decision.clamps[-1].bound == "export_limit_w"


def test_der_bounds_win_over_an_unreachable_site_limit() -> None:
    decision = once(ControlSettings(export_limit_w=0), site_w=8000, der_w=0)
    assert decision.setpoint_w == -4000  # the most it can absorb
    assert decision.site_limit_met is False


def test_margin_keeps_the_meter_below_the_limit() -> None:
    config = LoopConfig(deadband_w=0, rate_w_per_s=1e9, margin_w=100)
    assert (
        once(ControlSettings(export_limit_w=1000), site_w=3000, der_w=0, config=config).setpoint_w
        == -2100
    )


def test_rate_limit_slows_moves_that_no_bound_requires() -> None:
    config = LoopConfig(deadband_w=0, rate_w_per_s=100, margin_w=0)
    state = LoopState(setpoint_w=0.0, at_s=0.0)
    _, decision = step(
        state,
        config,
        now=2.0,
        limits=ControlSettings(target_w=3000),
        rating=RATING,
        site_w=None,
        der_w=0.0,
    )
    assert decision.setpoint_w == 200


def test_rate_limit_never_delays_compliance_with_a_limit() -> None:
    config = LoopConfig(deadband_w=0, rate_w_per_s=100, margin_w=0)
    state = LoopState(setpoint_w=3000.0, at_s=0.0)
    _, decision = step(
        state,
        config,
        now=1.0,
        limits=ControlSettings(target_w=3000, export_limit_w=0),
        rating=RATING,
        site_w=3000,
        der_w=3000,
    )
    assert decision.setpoint_w == 0  # straight to compliance, not 2900


def test_moves_inside_the_deadband_are_not_written() -> None:
    config = LoopConfig(deadband_w=50, rate_w_per_s=1e9, margin_w=0)
    state = LoopState(setpoint_w=1000.0, at_s=0.0)
    new_state, decision = step(
        state,
        config,
        now=5.0,
        limits=ControlSettings(target_w=1030),
        rating=RATING,
        site_w=None,
        der_w=1000,
    )
    assert (decision.setpoint_w, decision.write) == (1000.0, False)
    assert new_state == state


def test_deadband_does_not_hold_a_setpoint_that_breaks_a_limit() -> None:
    config = LoopConfig(deadband_w=500, rate_w_per_s=1e9, margin_w=0)
    state = LoopState(setpoint_w=0.0, at_s=0.0)
    _, decision = step(
        state,
        config,
        now=5.0,
        limits=ControlSettings(export_limit_w=1000),
        rating=RATING,
        site_w=1100,
        der_w=0,
    )
    assert (decision.setpoint_w, decision.write) == (-100, True)


def test_limit_without_target_leaves_a_compliant_der_to_its_own_logic() -> None:
    """CSIP-AUS envelopes are in force all day: while the DER keeps within them, no setpoint."""
    decision = once(ControlSettings(export_limit_w=5000), site_w=0, der_w=1200)
    assert (decision.setpoint_w, decision.write, decision.site_limit_met) == (None, False, True)


def test_limit_without_target_takes_over_at_the_nearest_compliant_output() -> None:
    decision = once(ControlSettings(export_limit_w=5000), site_w=6000, der_w=1200)
    assert (decision.setpoint_w, decision.write) == (200, True)


def test_end_of_a_target_under_a_standing_limit_releases_a_compliant_der() -> None:
    config = LoopConfig(deadband_w=50, rate_w_per_s=1e9, margin_w=0)
    state, _ = step(
        LoopState(),
        config,
        now=0.0,
        limits=ControlSettings(target_w=-1000, export_limit_w=5000),
        rating=RATING,
        site_w=0,
        der_w=0,
    )
    _, decision = step(
        state,
        config,
        now=5.0,
        limits=ControlSettings(export_limit_w=5000),
        rating=RATING,
        site_w=-1000,
        der_w=-1000,
    )
    assert (decision.setpoint_w, decision.write) == (None, True)


@settings(max_examples=150)
@given(
    # Small limits drawn often: export and import within two margins of each other is a case.
    export=st.one_of(st.none(), st.sampled_from([0.0, 30.0]), st.floats(0, 10_000)),
    import_=st.one_of(st.none(), st.sampled_from([0.0, 30.0]), st.floats(0, 10_000)),
    target=st.one_of(st.none(), st.floats(-20_000, 20_000)),
    gen=st.one_of(st.none(), st.floats(0, 10_000)),
    load=st.one_of(st.none(), st.floats(0, 10_000)),
    site=st.floats(-15_000, 15_000),
    der=st.floats(-4000, 5000),
    previous=st.one_of(st.none(), st.floats(-4000, 5000)),
)
def test_setpoint_always_respects_der_bounds_and_meets_feasible_site_limits(
    export,
    import_,
    target,
    gen,
    load,
    site,
    der,
    previous,  # type: ignore[no-untyped-def]
) -> None:
    limits = ControlSettings(
        export_limit_w=export,
        import_limit_w=import_,
        target_w=target,
        generation_limit_w=gen,
        load_limit_w=load,
    )
    state = LoopState(setpoint_w=previous, at_s=None if previous is None else 0.0)
    config = LoopConfig(deadband_w=50, rate_w_per_s=200, margin_w=50)
    _, decision = step(state, config, now=1.0, limits=limits, rating=RATING, site_w=site, der_w=der)
    p = decision.setpoint_w
    if not limits.modes():
        assert p is None
        return
    if p is None:  # released to the DER's own logic: only when that keeps within every bound
        assert target is None
        p = der
    high = min(5000, gen if gen is not None else math.inf)
    low = -min(4000, load if load is not None else math.inf)
    assert low - 1e-6 <= p <= high + 1e-6
    if decision.site_limit_met:
        metered = site - der + p
        if export is not None:
            assert metered <= export + 1e-6
        if import_ is not None:
            assert metered >= -import_ - 1e-6


def test_ramp_time_moves_in_a_straight_line_to_the_new_target() -> None:
    config = LoopConfig(deadband_w=10, rate_w_per_s=1e9, margin_w=0)
    limits = ControlSettings(target_w=3000, ramp_time_s=10)
    state = LoopState(setpoint_w=0.0, at_s=0.0)
    seen = []
    for now in (2.0, 5.0, 10.0, 12.0):
        state, decision = step(
            state, config, now=now, limits=limits, rating=RATING, site_w=None, der_w=None
        )
        seen.append(decision.setpoint_w)
    assert seen == [600, 1500, 3000, 3000]


def test_zero_ramp_time_is_immediate() -> None:
    config = LoopConfig(deadband_w=10, rate_w_per_s=1, margin_w=0)
    limits = ControlSettings(target_w=3000, ramp_time_s=0)
    _, decision = step(
        LoopState(setpoint_w=0.0, at_s=0.0),
        config,
        now=1.0,
        limits=limits,
        rating=RATING,
        site_w=None,
        der_w=None,
    )
    assert decision.setpoint_w == 3000


def test_margin_never_pushes_the_meter_across_the_opposite_limit() -> None:
    """Export and import limits closer together than two margins (here zero exchange with the
    grid): the margin shrinks to half the window so both limits hold, the meter at its centre."""
    config = LoopConfig(deadband_w=0, rate_w_per_s=1e9, margin_w=50)
    decision = once(
        ControlSettings(export_limit_w=0, import_limit_w=0), site_w=-800, der_w=0, config=config
    )
    assert decision.setpoint_w == 800  # rest of site -800 W: the DER covers it exactly
    assert decision.site_limit_met is True
    decision = once(
        ControlSettings(export_limit_w=60, import_limit_w=0), site_w=1000, der_w=0, config=config
    )
    assert decision.setpoint_w == -970  # the meter at +30 W, inside 0..60 W


def test_limit_without_target_relaxes_as_the_site_allows_not_ratchets() -> None:
    """With only a connection-point limit the loop holds what the DER did when it took over and
    moves off it only as far as the limit needs, in both directions: when the PV surplus shrinks
    the absorbing setpoint follows it back up instead of charging from the grid."""
    limits = ControlSettings(export_limit_w=1000)
    state, decision = step(
        LoopState(), FAST, now=0.0, limits=limits, rating=RATING, site_w=3000, der_w=0
    )
    assert decision.setpoint_w == -2000  # surplus 3000 W: absorb 2000 W
    # The surplus falls to 1500 W: with the DER at -2000 W the meter reads -500 W (import).
    state, decision = step(
        state, FAST, now=5.0, limits=limits, rating=RATING, site_w=-500, der_w=-2000
    )
    assert decision.setpoint_w == -500  # meter back at the 1000 W limit
    # The surplus is gone: what the DER did (0 W) is compliant again, so it gets its own logic
    # back, not a setpoint at full charge.
    _, decision = step(
        state, FAST, now=10.0, limits=limits, rating=RATING, site_w=-1000, der_w=-500
    )
    assert (decision.setpoint_w, decision.write) == (None, True)


def test_der_without_a_power_reading_is_held_not_released_and_retaken_every_period() -> None:
    """Without a DER reading nothing shows the DER's own logic complies: it is held at a compliant
    0 W, written once, instead of flapping between released and taken over."""
    config = LoopConfig(deadband_w=20, rate_w_per_s=1e9, margin_w=0)
    limits = ControlSettings(generation_limit_w=1000)
    state = LoopState()
    seen = []
    for now in (0.0, 5.0, 10.0, 15.0):
        state, decision = step(
            state, config, now=now, limits=limits, rating=RATING, site_w=None, der_w=None
        )
        seen.append((decision.setpoint_w, decision.write))
    assert seen == [(0.0, True), (0.0, False), (0.0, False), (0.0, False)]


@pytest.mark.parametrize("mode", ["energize", "connect"])
def test_a_der_told_to_cease_or_disconnect_cannot_meet_a_site_limit(mode: str) -> None:
    """The swarm found it: with opModEnergize false the loop still planned a discharge to keep
    import under 0 W and logged the site limit as met, while the DER (correctly) produced nothing
    and the site imported its load. The DER's range is then 0 W, and the log says so."""
    limits = ControlSettings(import_limit_w=0.0, **{mode: False})
    decision = once(limits, site_w=-600.0, der_w=0.0)
    assert decision.site_limit_met is False
    assert decision.setpoint_w in (None, 0.0)
    met = once(ControlSettings(import_limit_w=0.0, **{mode: True}), site_w=-600.0, der_w=0.0)
    assert met.site_limit_met is True and met.setpoint_w == 600.0


def test_a_battery_at_a_bound_of_its_charge_can_only_move_away_from_it() -> None:
    assert rating_at_charge(RATING, None) == RATING
    assert rating_at_charge(RATING, 50.0, soc_min_pct=5, soc_max_pct=95) == RATING
    full = rating_at_charge(RATING, 94.6, soc_min_pct=5, soc_max_pct=95)
    assert (full.max_charge_w, full.max_discharge_w) == (0.0, RATING.max_discharge_w)
    empty = rating_at_charge(RATING, 5.2, soc_min_pct=5, soc_max_pct=95)
    assert (empty.max_charge_w, empty.max_discharge_w) == (RATING.max_charge_w, 0.0)
    assert rating_at_charge(RATING, 100.0).max_charge_w == 0.0  # unreported bounds: 0 and 100 %
    # bounds no device can mean are read as unreported, not as "never charge again"
    assert rating_at_charge(RATING, 50.0, soc_min_pct=0, soc_max_pct=0) == RATING
    assert rating_at_charge(RATING, 50.0, soc_min_pct=60, soc_max_pct=40) == RATING
    # a full battery under a zero-export envelope with 3 kW of PV surplus: not met, no charge
    decision = step(
        LoopState(),
        FAST,
        now=0.0,
        limits=ControlSettings(export_limit_w=0.0),
        rating=full,
        site_w=3000.0,
        der_w=0.0,
    )[1]
    assert decision.site_limit_met is False
    assert decision.setpoint_w is None or decision.setpoint_w >= 0


def test_a_storage_target_beside_a_target_of_the_whole_der_is_recorded_as_held_by_it() -> None:
    """CSIP-AUS v1.3 storage: opModTargetW (the whole DER) wins over opModStorageTargetW (its
    storage components), and the storage target is not silently dropped: a clamp names the mode
    that held it."""
    decision = once(ControlSettings(target_w=1000, storage_target_w=-3000))
    assert decision.setpoint_w == 1000
    (clamp,) = decision.clamps
    assert (clamp.mode, clamp.requested, clamp.applied, clamp.bound) == (
        "storage_target_w",
        -3000,
        1000,
        "target_w",
    )
    fixed = once(ControlSettings(fixed_w_pct=-50, storage_target_w=-2000))
    assert fixed.setpoint_w == -2000 and not fixed.clamps  # the same output: nothing held


def test_the_export_limit_binds_over_a_storage_target() -> None:
    """CSIP-AUS §2.3 + v1.3 storage: a 4 kW storage target at a site whose load and PV leave 500 W
    of export is held at what the 1.5 kW export limit allows, and the clamp names the limit."""
    decision = once(
        ControlSettings(storage_target_w=4000, export_limit_w=1500), site_w=500.0, der_w=0.0
    )
    assert decision.setpoint_w == 1000
    assert decision.site_limit_met is True
    (clamp,) = decision.clamps
    assert (clamp.mode, clamp.requested, clamp.applied, clamp.bound) == (
        "storage_target_w",
        4000,
        1000,
        "export_limit_w",
    )
