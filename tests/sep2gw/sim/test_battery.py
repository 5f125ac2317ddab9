"""The simulated battery: deterministic from seed and clock, physically bounded."""

from __future__ import annotations

import pytest

from sep2gw.sim import BatteryParams, SimBattery, SiteParams

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600


def make(seed: int = 7, **battery: float) -> SimBattery:
    return SimBattery(BatteryParams(**battery), SiteParams(), seed=seed, start_s=NOON)


def test_same_seed_and_clock_give_the_same_run_advanced_at_once_or_per_second() -> None:
    coarse, fine = make(), make()
    coarse.advance(NOON + 600)
    for k in range(1, 601):
        fine.advance(NOON + k)
    assert coarse.stored_wh == pytest.approx(fine.stored_wh, rel=1e-12)
    assert coarse.site_w() == pytest.approx(fine.site_w(), rel=1e-12)


def test_profiles_depend_on_the_seed() -> None:
    assert make(1).load_w(NOON + 30) != make(2).load_w(NOON + 30)
    assert make(1).load_w(NOON + 30) == make(1).load_w(NOON + 30)


def test_pv_is_zero_at_night_and_positive_at_noon() -> None:
    sim = make()
    assert sim.pv_w(NOON - 12 * 3600) == 0.0
    assert sim.pv_w(NOON) > 0


def test_power_ramps_at_the_ramp_rate() -> None:
    sim = make(ramp_w_per_s=1000)
    sim.setpoint_w = 4000
    sim.advance(NOON + 2)
    assert sim.power_w == pytest.approx(2000)
    sim.advance(NOON + 10)
    assert sim.power_w == pytest.approx(4000)


def test_setpoint_is_limited_by_rates_and_max_limit_pct() -> None:
    sim = make(max_discharge_w=3000, ramp_w_per_s=1e6)
    sim.setpoint_w = 4500
    sim.advance(NOON + 1)
    assert sim.power_w == pytest.approx(3000)
    sim.max_limit_pct = 10  # of setMaxW = 5000
    sim.advance(NOON + 2)
    assert sim.power_w == pytest.approx(500)


def test_discharge_stops_at_the_minimum_state_of_charge() -> None:
    sim = make(initial_soc_pct=6, soc_min_pct=5, ramp_w_per_s=1e6)
    sim.setpoint_w = 5000
    sim.advance(NOON + 3600)
    assert sim.soc_pct == pytest.approx(5, abs=1e-9)
    assert sim.power_w == pytest.approx(0, abs=1e-6)


def test_charging_stores_energy_through_the_efficiency() -> None:
    sim = make(initial_soc_pct=20, charge_efficiency=0.9, ramp_w_per_s=1e6)
    sim.setpoint_w = -3600
    before = sim.stored_wh
    sim.advance(NOON + 60)
    assert sim.stored_wh - before == pytest.approx(3600 * 60 / 3600 * 0.9)
    assert sim.charged_wh == pytest.approx(60)


def test_disconnected_battery_does_nothing() -> None:
    sim = make(ramp_w_per_s=1e6)
    sim.connected = False
    sim.setpoint_w = 3000
    sim.advance(NOON + 10)
    assert sim.power_w == 0


def test_site_meter_is_pv_minus_load_plus_battery() -> None:
    sim = make(ramp_w_per_s=1e6)
    sim.setpoint_w = 1000
    sim.advance(NOON + 5)
    assert sim.site_w() == pytest.approx(sim.pv_w(NOON + 5) - sim.load_w(NOON + 5) + 1000)


def test_released_battery_does_self_consumption() -> None:
    sim = make(ramp_w_per_s=1e6, initial_soc_pct=50)
    sim.advance(NOON + 30)
    assert abs(sim.site_w()) < 1e-6  # within its rates the meter reads zero


@pytest.mark.parametrize(
    "bad",
    [
        {"capacity_wh": -1.0},
        {"charge_efficiency": 0.0},
        {"initial_soc_pct": 2.0, "soc_min_pct": 5.0},
    ],
)
def test_impossible_parameters_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="BatteryParams"):
        BatteryParams(**bad)


@pytest.mark.parametrize(
    ("inverter", "connect", "tripped", "state"),
    [
        ("started", True, False, "operating"),
        ("stopped", True, False, "stopped"),
        ("standby", True, False, "standby"),
        ("started", False, False, "standby"),
        ("started", True, True, "fault"),
    ],
)
def test_a_stopped_standing_by_disconnected_or_faulted_inverter_delivers_nothing(
    inverter: str, connect: bool, tripped: bool, state: str
) -> None:
    """SunSpec 802 SetInvState stop/standby and SetOp disconnect, or a trip, leave the converter
    with no power to give or take, and its state says which."""
    battery = make()
    battery.operator(inverter=inverter, connect=connect)
    battery.tripped = tripped
    battery.setpoint_w = 3000.0
    battery.advance(NOON + 60)
    assert battery.state == state
    assert (battery.power_w != 0.0) == (state == "operating")


def test_an_operator_command_the_device_does_not_know_is_refused() -> None:
    with pytest.raises(ValueError, match="inverter='paused'"):
        make().operator(inverter="paused")
