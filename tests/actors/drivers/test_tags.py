"""Tag driver: TOML tag map, units and scale, sync and async providers, closed loop in-process."""

from __future__ import annotations

import math

import pytest
import trio

from actors.drivers import DerDriver, TagDriver, TagMap, TagMapError, TagReadError, WriteNotVerified
from events.der_model import ControlSettings, Mode
from events.telemetry import OperatingState
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from statemachines.site_limit import InvalidLimit, LoopConfig

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600

MAP = """
[options]
verify_writes = true
tolerance = 0.001

[read]
site_w = { tag = "Meter.P_kW", unit = "kW", scale = -1.0 }
der_w = { tag = "PCS.P_kW", unit = "kW" }
soc_pct = { tag = "BMS.SOC", unit = "fraction" }
connected = { tag = "PCS.Connected", unit = "bool" }

[write]
setpoint_w = { tag = "PCS.P_setpoint_kW", unit = "kW" }
connect = { tag = "PCS.Connect", unit = "bool" }

[nameplate]
rated_w = { value = 5, unit = "kW" }
max_discharge_w = { tag = "PCS.Pmax_dis_W", unit = "W" }
max_charge_w = { value = 4000, unit = "W" }
"""


class SimRuntime:
    """A gateway runtime's tag table backed by the simulated battery (meter counts import positive)."""

    def __init__(self, sim: SimBattery) -> None:
        self.sim = sim
        self.writes: list[tuple[str, object]] = []
        self.ignore: set[str] = set()

    def read_tag(self, name: str) -> object:
        sim = self.sim
        return {
            "Meter.P_kW": -sim.site_w() / 1000,
            "PCS.P_kW": sim.power_w / 1000,
            "BMS.SOC": sim.soc_pct / 100,
            "PCS.Connected": sim.connected,
            "PCS.P_setpoint_kW": None if sim.setpoint_w is None else sim.setpoint_w / 1000,
            "PCS.Connect": sim.connected,
            "PCS.Pmax_dis_W": 4500,
        }[name]

    def write_tag(self, name: str, value: float | bool) -> None:
        self.writes.append((name, value))
        if name in self.ignore:
            return
        if name == "PCS.P_setpoint_kW":
            self.sim.setpoint_w = float(value) * 1000
        elif name == "PCS.Connect":
            self.sim.connected = bool(value)


class AsyncSimRuntime(SimRuntime):
    async def read_tag(self, name: str) -> object:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        return SimRuntime.read_tag(self, name)

    async def write_tag(self, name: str, value: float | bool) -> None:  # type: ignore[override]
        await trio.lowlevel.checkpoint()
        SimRuntime.write_tag(self, name, value)


def make(runtime_type: type[SimRuntime] = SimRuntime) -> tuple[SimBattery, SimRuntime, TagDriver]:
    sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=NOON)
    runtime = runtime_type(sim)
    driver = TagDriver(
        runtime,
        TagMap.from_toml(MAP),
        loop=LoopConfig(deadband_w=20, rate_w_per_s=2000, margin_w=50),
    )
    return sim, runtime, driver


@pytest.mark.parametrize("runtime_type", [SimRuntime, AsyncSimRuntime])
async def test_telemetry_is_converted_by_unit_and_scale(runtime_type: type[SimRuntime]) -> None:
    sim, _, driver = make(runtime_type)
    assert isinstance(driver, DerDriver)
    sim.advance(NOON + 30)
    with trio.fail_after(5):
        telemetry = await driver.read_telemetry(now=NOON + 30)
    assert telemetry.site_w == pytest.approx(sim.site_w())
    assert telemetry.der_w == pytest.approx(sim.power_w)
    assert telemetry.soc_pct == pytest.approx(sim.soc_pct)
    assert telemetry.connected is True


async def test_nameplate_takes_constants_and_tags_and_clamps_the_setpoint() -> None:
    sim, runtime, driver = make()
    with trio.fail_after(5):
        nameplate = await driver.read_nameplate()
        report = await driver.apply(ControlSettings(target_w=9000), now=NOON)
    assert (nameplate.rated_w, nameplate.max_discharge_w, nameplate.max_charge_w) == (
        5000,
        4500,
        4000,
    )
    assert report.setpoint_w == 4500 and runtime.writes[-1] == ("PCS.P_setpoint_kW", 4.5)


@pytest.mark.parametrize("runtime_type", [SimRuntime, AsyncSimRuntime])
async def test_export_limit_closes_the_loop_through_tags(runtime_type: type[SimRuntime]) -> None:
    """Noon, PV surplus 4–5 kW, export limited to 1.5 kW (within the 4 kW charge rating, so the
    limit can be met): the meter stays within 150 W above and 400 W below the limit."""
    sim, _, driver = make(runtime_type)
    now, errors, limit = float(NOON), [], 1500.0
    with trio.fail_after(30):
        for period in range(240):
            report = await driver.apply(ControlSettings(export_limit_w=limit), now=now)
            now += 5
            sim.advance(now)
            if period > 0 and report.site_limit_met:
                errors.append(sim.site_w() - limit)
    assert len(errors) >= 200
    assert -400.0 <= min(errors) and max(errors) <= 150.0


async def test_modes_without_a_tag_are_not_applicable() -> None:
    _, _, driver = make()
    with trio.fail_after(5):
        report = await driver.apply(
            ControlSettings(connect=False, energize=False, fixed_var=None), now=NOON
        )
    assert report.applied == {Mode.CONNECT} and report.not_applicable == {Mode.ENERGIZE}
    assert Mode.EXPORT_LIMIT_W in driver.dispatchable_modes()


async def test_write_not_kept_by_the_runtime_is_reported() -> None:
    _, runtime, driver = make()
    runtime.ignore.add("PCS.Connect")
    with trio.fail_after(5), pytest.raises(WriteNotVerified, match="PCS.Connect"):
        await driver.apply(ControlSettings(connect=False), now=NOON)


async def test_nan_limit_is_refused_before_any_write() -> None:
    _, runtime, driver = make()
    with trio.fail_after(5), pytest.raises(InvalidLimit):
        await driver.apply(ControlSettings(target_w=math.nan), now=NOON)
    assert runtime.writes == []


async def test_non_numeric_tag_value_is_a_typed_error() -> None:
    class Broken(SimRuntime):
        def read_tag(self, name: str) -> object:
            return "offline" if name == "BMS.SOC" else super().read_tag(name)

    sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=NOON)
    driver = TagDriver(Broken(sim), TagMap.from_toml(MAP))
    with trio.fail_after(5), pytest.raises(TagReadError, match="BMS.SOC"):
        await driver.read_telemetry(now=NOON)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[read]\nsite_w = { tag = 'x', unit = 'V' }", "site_w"),
        ("[read]\nbogus = { tag = 'x', unit = 'W' }", "bogus"),
        ("[write]\nsetpoint_w = { unit = 'W' }", "setpoint_w"),
        ("[write]\nsetpoint_w = { tag = 'x', unit = 'W', scale = 0 }", "setpoint_w"),
        ("[read]\nsite_w = { tag = 'x', unit = 'W', value = 3 }", "site_w"),
        ("[nameplate]\nrated_w = { tag = 'x', value = 3, unit = 'W' }", "rated_w"),
        ("[options]\nspeed = 3", "speed"),
        ("[extra]\n", "extra"),
        ("not toml = = 1", "TOML"),
    ],
)
def test_bad_tag_map_is_refused_naming_what_is_wrong(text: str, where: str) -> None:
    with pytest.raises(TagMapError, match=where):
        TagMap.from_toml(text)


FULL_MAP = """
[read]
site_w = { tag = "Meter.P_kW", unit = "kW", scale = -1.0 }
der_w = { tag = "PCS.P_kW", unit = "kW" }

[write]
setpoint_w = { tag = "PCS.P_setpoint_kW", unit = "kW" }
connect = { tag = "PCS.Connect", unit = "bool" }
energize = { tag = "PCS.Run", unit = "bool" }
max_limit_pct = { tag = "PCS.Plim_pct", unit = "%" }

[nameplate]
rated_w = { value = 5, unit = "kW" }
max_discharge_w = { value = 5000, unit = "W" }
max_charge_w = { value = 5000, unit = "W" }
"""


class FullRuntime(SimRuntime):
    """Also exposes run/stop and an active-power limit."""

    def read_tag(self, name: str) -> object:
        if name == "PCS.Run":
            return self.sim.energized
        if name == "PCS.Plim_pct":
            return 100.0 if self.sim.max_limit_pct is None else self.sim.max_limit_pct
        return super().read_tag(name)

    def write_tag(self, name: str, value: float | bool) -> None:
        if name == "PCS.Run":
            self.writes.append((name, value))
            self.sim.energized = bool(value)
        elif name == "PCS.Plim_pct":
            self.writes.append((name, value))
            self.sim.max_limit_pct = float(value)
        else:
            super().write_tag(name, value)


async def test_modes_go_back_to_normal_when_their_control_ends() -> None:
    """IEEE 2030.5 §10.10: with no control setting them any more, the DER is connected, energised
    and unlimited again, not left as the last control had it."""
    sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=NOON)
    runtime = FullRuntime(sim)
    driver = TagDriver(runtime, TagMap.from_toml(FULL_MAP))
    with trio.fail_after(5):
        await driver.apply(
            ControlSettings(connect=False, energize=False, max_limit_pct=30), now=NOON
        )
        assert (sim.connected, sim.energized, sim.max_limit_pct) == (False, False, 30)
        await driver.apply(ControlSettings(), now=NOON + 5)
        assert (sim.connected, sim.energized, sim.max_limit_pct) == (True, True, 100)
        runtime.writes.clear()
        await driver.apply(ControlSettings(), now=NOON + 10)
    assert runtime.writes == []  # released once, not rewritten every period


async def test_released_setpoint_without_an_enable_tag_idles_the_der() -> None:
    """Without a setpoint_enable tag the last setpoint would stay in force for ever."""
    sim, runtime, driver = make()
    with trio.fail_after(5):
        await driver.apply(ControlSettings(target_w=3000), now=NOON)
        assert sim.setpoint_w == 3000
        report = await driver.apply(ControlSettings(), now=NOON + 5)
    assert report.setpoint_w is None
    assert sim.setpoint_w == 0 and runtime.writes[-1] == ("PCS.P_setpoint_kW", 0.0)


STATUS_MAP = """
[read]
connected = { tag = "PCS.Connected", unit = "bool" }
storage_connected = { tag = "BMS.Contactor", unit = "bool" }
state = { tag = "PCS.State", unit = "state", states = { "0" = "off", "1" = "standby", "3" = "operating" } }
fault = { tag = "PCS.Fault", unit = "bool" }
"""


class StatusRuntime:
    def __init__(self) -> None:
        self.tags: dict[str, object] = {
            "PCS.Connected": True,
            "BMS.Contactor": 1,
            "PCS.State": 3,
            "PCS.Fault": False,
        }

    def read_tag(self, name: str) -> object:
        return self.tags[name]

    def write_tag(self, name: str, value: float | bool) -> None:
        self.tags[name] = value


async def test_the_status_tags_report_the_converter_state_the_battery_and_a_fault() -> None:
    """PROTOCOL.md §2.7: the tag driver's optional status tags feed DERStatus — the runtime's
    state values through the map's ``states`` table, a fault tag as state ``fault`` and an alarm."""
    runtime = StatusRuntime()
    driver = TagDriver(runtime, TagMap.from_toml(STATUS_MAP))
    with trio.fail_after(5):
        running = await driver.read_telemetry(now=NOON)
        runtime.tags.update({"PCS.State": 0, "BMS.Contactor": 0})
        stopped = await driver.read_telemetry(now=NOON + 5)
        runtime.tags["PCS.Fault"] = True
        faulted = await driver.read_telemetry(now=NOON + 10)
        runtime.tags["PCS.State"] = 2
        with pytest.raises(TagReadError, match="PCS.State.*states table"):
            await driver.read_telemetry(now=NOON + 15)
    assert (running.state, running.connected, running.storage_connected) == (
        OperatingState.OPERATING,
        True,
        True,
    )
    assert (stopped.state, stopped.storage_connected) == (OperatingState.OFF, False)
    assert (faulted.state, faulted.alarms) == (OperatingState.FAULT, ("fault",))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[read]\nstate = { tag = 'x', unit = 'state' }", "needs states"),
        ("[read]\nstate = { tag = 'x', unit = 'state', states = { a = 'off' } }", "not an integer"),
        ("[read]\nstate = { tag = 'x', unit = 'state', states = { 1 = 'paused' } }", "paused"),
        ("[read]\nfault = { tag = 'x', unit = 'bool', states = { 1 = 'off' } }", "only for"),
    ],
)
def test_a_bad_state_table_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(TagMapError, match=problem):
        TagMap.from_toml(text)


STORAGE_MAP = (
    MAP
    + """capacity_wh = { value = 13.5, unit = "kWh" }
soc_min_pct = { value = 10, unit = "%" }
soc_max_pct = { tag = "BMS.SOC_max", unit = "fraction" }
"""
)


async def test_storage_roles_bound_the_storage_target_at_the_state_of_charge_limits() -> None:
    """CSIP-AUS v1.3 storage: the tag map names the battery's capacity and the state of charge it
    keeps between; at its ceiling a charging storage target is held at 0 W (clamped by the
    charge rate the state of charge leaves), below it the target is written as asked."""
    sim = SimBattery(BatteryParams(initial_soc_pct=95.0), SiteParams(), seed=5, start_s=NOON)

    class Runtime(SimRuntime):
        def read_tag(self, name: str) -> object:
            return 0.95 if name == "BMS.SOC_max" else SimRuntime.read_tag(self, name)

    runtime = Runtime(sim)
    driver = TagDriver(runtime, TagMap.from_toml(STORAGE_MAP), loop=LoopConfig(deadband_w=20))
    with trio.fail_after(5):
        nameplate = await driver.read_nameplate()
        full = await driver.apply(ControlSettings(storage_target_w=-3000), now=NOON)
    assert (nameplate.capacity_wh, nameplate.soc_min_pct, nameplate.soc_max_pct) == (
        13500,
        10,
        pytest.approx(95),
    )
    assert full.setpoint_w == 0
    assert [(c.mode, c.bound) for c in full.clamps] == [("storage_target_w", "max_charge_w")]
    sim.stored_wh = sim.battery.capacity_wh * 0.5
    with trio.fail_after(5):
        half = await driver.apply(ControlSettings(storage_target_w=-3000), now=NOON + 60)
    assert half.setpoint_w == -3000 and not half.clamps


def test_a_storage_role_must_measure_a_percentage() -> None:
    with pytest.raises(TagMapError, match="soc_min_pct"):
        TagMap.from_toml(MAP + 'soc_min_pct = { value = 10, unit = "kW" }\n')
