"""Ramps (PROTOCOL.md §4 rule 11): setGradW and rampTms trajectories with deadlines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.der_model import Mode
from statemachines.ramps import (
    Ramp,
    RampError,
    measured_for,
    plan_ramp,
    ramp_rate_per_s,
    start_from,
)


def test_rule11_set_grad_w_is_hundredths_of_a_percent_of_set_max_w_per_second() -> None:
    assert ramp_rate_per_s(Mode.EXPORT_LIMIT_W, 100, 5000.0) == 50.0  # 1 %/s
    assert ramp_rate_per_s(Mode.EXPORT_LIMIT_W, 1, 10000.0) == 1.0  # 0.01 %/s
    assert ramp_rate_per_s(Mode.MAX_LIMIT_PCT, 250, 5000.0) == 2.5  # percent modes ramp in %/s


def test_rule11_set_grad_w_trajectory_and_deadlines() -> None:
    ramp = plan_ramp(
        Mode.EXPORT_LIMIT_W, 5000, 1000, 100.0, set_max_w=5000.0, set_grad_w=100, ramp_time_s=None
    )
    assert ramp is not None and ramp.end_s == 180.0
    assert ramp.value_at(99) == 5000 and ramp.value_at(140) == 3000 and ramp.value_at(500) == 1000
    assert ramp.next_deadline(100.0, 1.0) == 101.0
    assert ramp.next_deadline(179.5, 1.0) == 180.0
    assert ramp.next_deadline(180.0, 1.0) is None


def test_rule11_ramp_tms_wins_over_set_grad_w() -> None:
    ramp = plan_ramp(
        Mode.GENERATION_LIMIT_W, 0, 3000, 10.0, set_max_w=5000.0, set_grad_w=1, ramp_time_s=2.5
    )
    assert ramp is not None and (ramp.start_s, ramp.end_s) == (10.0, 12.5)


@pytest.mark.parametrize(
    ("mode", "before", "after"),
    [
        (Mode.ENERGIZE, True, False),  # switches apply at once
        (Mode.VOLT_VAR, "/curve/1", "/curve/2"),  # curves too
        (Mode.EXPORT_LIMIT_W, None, 1000.0),  # appearing value: nothing to ramp from
        (Mode.EXPORT_LIMIT_W, 1000.0, 1000.0),  # no change
    ],
)
def test_rule11_no_ramp_where_there_is_nothing_to_ramp(
    mode: Mode, before: object, after: object
) -> None:
    assert (
        plan_ramp(mode, before, after, 0.0, set_max_w=5000.0, set_grad_w=100, ramp_time_s=None)
        is None
    )


def test_rule11_no_rate_means_a_step() -> None:
    assert (
        plan_ramp(Mode.EXPORT_LIMIT_W, 0, 1, 0.0, set_max_w=None, set_grad_w=None, ramp_time_s=None)
        is None
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"set_max_w": 5000.0, "set_grad_w": -1, "ramp_time_s": None}, "setGradW must be positive"),
        ({"set_max_w": 0.0, "set_grad_w": 10, "ramp_time_s": None}, "setMaxW must be positive"),
        (
            {"set_max_w": None, "set_grad_w": None, "ramp_time_s": -1.0},
            "rampTms must not be negative",
        ),
    ],
)
def test_bad_ramp_parameters_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(RampError, match=message):
        plan_ramp(Mode.EXPORT_LIMIT_W, 0, 1000, 0.0, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=100)
@given(
    start=st.floats(-1e4, 1e4, allow_subnormal=False),
    end=st.floats(-1e4, 1e4, allow_subnormal=False),
    grad=st.integers(1, 10000),
    t=st.floats(0, 1e5),
)
def test_property_ramp_stays_between_endpoints_and_never_exceeds_the_rate(
    start: float, end: float, grad: int, t: float
) -> None:
    ramp = plan_ramp(
        Mode.TARGET_W, start, end, 0.0, set_max_w=10000.0, set_grad_w=grad, ramp_time_s=None
    )
    rate = ramp_rate_per_s(Mode.TARGET_W, grad, 10000.0)
    if start == end or abs(end - start) / rate == 0:
        assert ramp is None  # nothing to ramp, or a change too small to take any time
        return
    assert ramp is not None
    value = ramp.value_at(t)
    assert min(start, end) - 1e-6 <= value <= max(start, end) + 1e-6
    assert abs(value - start) <= rate * t * (1 + 1e-9) + 1e-6


def test_rule11_set_grad_w_zero_means_no_limit_so_the_change_is_a_step() -> None:
    # sep.xsd (2018 and 2023), DefaultDERControl.setGradW: "A value of 0 means there is no limit."
    assert (
        plan_ramp(
            Mode.EXPORT_LIMIT_W, 5000, 1000, 100.0, set_max_w=5000.0, set_grad_w=0, ramp_time_s=None
        )
        is None
    )


PLANNED = Ramp(
    mode=Mode.EXPORT_LIMIT_W, from_value=10000.0, to_value=1000.0, start_s=0.0, end_s=30.0
)


def test_rule11_a_tighter_limit_ramps_from_the_measured_output_at_the_planned_slope() -> None:
    """10 kW → 1 kW at 300 W/s on a DER making 5 kW: from 5 kW, curtailed in 13⅓ s, not 30 s."""
    start = start_from(PLANNED, 0.0, applied=10000.0, measured=5000.0, rating=5000.0)
    assert start == 5000.0
    ramp = PLANNED.rebased(start, 0.0)
    assert ramp is not None
    assert (ramp.from_value, ramp.to_value, ramp.start_s) == (5000.0, 1000.0, 0.0)
    assert ramp.end_s == pytest.approx(4000.0 / 300.0)


def test_rule11_unmeasured_a_tighter_limit_ramps_from_the_lesser_of_old_limit_and_rating() -> None:
    assert start_from(PLANNED, 0.0, applied=10000.0, measured=None, rating=5000.0) == 5000.0
    assert start_from(PLANNED, 0.0, applied=3000.0, measured=None, rating=5000.0) == 3000.0
    assert start_from(PLANNED, 0.0, applied=None, measured=None, rating=None) == 10000.0


def test_rule11_an_output_already_under_the_new_limit_means_a_step() -> None:
    start = start_from(PLANNED, 0.0, applied=10000.0, measured=400.0, rating=5000.0)
    assert start == 1000.0 and PLANNED.rebased(start, 0.0) is None


def test_rule11_a_looser_limit_ramps_from_the_old_limit_never_from_below_it() -> None:
    up = Ramp(mode=Mode.EXPORT_LIMIT_W, from_value=1000.0, to_value=5000.0, start_s=0.0, end_s=8.0)
    assert start_from(up, 0.0, applied=1000.0, measured=200.0, rating=5000.0) == 1000.0


def test_rule11_the_start_is_never_looser_than_the_plan_or_what_the_device_holds() -> None:
    # mid-plan: the plan is at 7000, the device already holds 2500 (its own ramp went faster)
    assert start_from(PLANNED, 10.0, applied=2500.0, measured=4000.0, rating=5000.0) == 2500.0
    # the device holds less than the new target: it ramps up to it, from what it holds
    assert start_from(PLANNED, 10.0, applied=800.0, measured=800.0, rating=5000.0) == 800.0


def test_measured_for_reads_each_limit_in_its_unit_and_sign() -> None:
    reading = {"site_w": -1200.0, "der_w": 2500.0, "max_w": 5000.0}
    assert measured_for(Mode.EXPORT_LIMIT_W, **reading) == -1200.0
    assert measured_for(Mode.IMPORT_LIMIT_W, **reading) == 1200.0
    assert measured_for(Mode.GENERATION_LIMIT_W, **reading) == 2500.0
    assert measured_for(Mode.LOAD_LIMIT_W, **reading) == -2500.0
    assert measured_for(Mode.MAX_LIMIT_PCT, **reading) == 50.0
    assert measured_for(Mode.TARGET_W, **reading) is None  # a setpoint, not a limit
    assert measured_for(Mode.EXPORT_LIMIT_W, site_w=None, der_w=1.0, max_w=None) is None


@settings(max_examples=200)
@given(
    old=st.floats(0, 2e4),
    target=st.floats(0, 2e4),
    measured=st.none() | st.floats(-1e4, 2e4),
    applied=st.none() | st.floats(0, 2e4),
    now=st.floats(0, 100),
    t=st.floats(0, 400),
)
def test_property_a_ramp_from_where_the_der_is_is_never_looser_nor_later_than_planned(
    old: float, target: float, measured: float | None, applied: float | None, now: float, t: float
) -> None:
    planned = plan_ramp(
        Mode.EXPORT_LIMIT_W, old, target, 0.0, set_max_w=5000.0, set_grad_w=600, ramp_time_s=None
    )
    if planned is None:
        return
    start = start_from(planned, now, applied=applied, measured=measured, rating=5000.0)
    ramp = planned.rebased(start, now)
    at = now + t
    value = target if ramp is None else ramp.value_at(at)
    assert value <= planned.value_at(at) + 1e-6
    if ramp is not None:
        if start > target:  # curtailing: at the target no later than planned
            assert ramp.end_s <= planned.end_s + 1e-6
        assert abs(ramp.value_at(at) - start) <= 300.0 * t * (1 + 1e-9) + 1e-6
