"""The in-process battery paths of the simulated world: the register client answers as the Modbus
server does, the model driver runs the same closed loop, and worlds on either path keep every
invariant and reproduce from their seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from events.der_model import ControlSettings, Mode
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import DirectRegisterClient, SimBatteryDriver
from sep2gw.sim.sunspec_map import BASE_ADDRESS
from sep2gw.simserver import demo_scenario
from sep2gw.world import BatteryPath, check, run_world
from transport.modbus import ModbusExceptionResponse

NOON = 1_764_158_400.0  # 2025-11-26T12:00:00Z: PV is up, the site exports


def sim() -> SimBattery:
    return SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)


async def test_register_client_refuses_reads_outside_the_map_with_exception_2() -> None:
    client = DirectRegisterClient(sim(), clock=lambda: NOON)
    with pytest.raises(ModbusExceptionResponse) as caught:
        await client.read_holding(BASE_ADDRESS - 10, 2)
    assert (caught.value.function_code, caught.value.exception_code) == (3, 2)


async def test_register_client_refuses_writes_to_read_only_registers_with_exception_2() -> None:
    client = DirectRegisterClient(sim(), clock=lambda: NOON)
    with pytest.raises(ModbusExceptionResponse) as caught:
        await client.write_registers(BASE_ADDRESS, [0, 0])  # the "SunS" marker
    assert (caught.value.function_code, caught.value.exception_code) == (16, 2)


async def test_sunspec_driver_over_the_register_client_discovers_the_simulated_device() -> None:
    driver = SunSpecDriver(DirectRegisterClient(sim(), clock=lambda: NOON))
    headers = await driver.discover()
    assert [h.model_id for h in headers] == [1, 701, 702, 704, 713, 802, 203]
    plate = await driver.read_nameplate()
    assert plate.rated_w == 5000


async def test_model_driver_reports_what_the_sunspec_driver_reads_from_the_same_device() -> None:
    """Both drivers see one physics: the readings agree to the registers' resolution."""
    now = NOON + 30
    direct = SimBatteryDriver(sim(), clock=lambda: now)
    sunspec = SunSpecDriver(DirectRegisterClient(sim(), clock=lambda: now))
    a, b = await direct.read_telemetry(now=now), await sunspec.read_telemetry(now=now)
    fields = ("site_w", "site_var", "site_v", "site_hz", "der_w", "der_var", "der_v", "der_hz")
    for field in (*fields, "soc_pct", "stored_wh"):
        assert getattr(a, field) == pytest.approx(getattr(b, field), abs=1e-6), field
    assert (a.connected, a.operating) == (b.connected, b.operating)
    assert await direct.read_nameplate() == await sunspec.read_nameplate()
    assert direct.dispatchable_modes() == sunspec.dispatchable_modes()


async def test_model_driver_holds_the_export_limit_with_the_closed_loop() -> None:
    """An export limit at noon: the loop has the battery charge so the meter stays under it
    whenever the battery has the headroom (tolerance as ARCHITECTURE.md states for the loop)."""
    battery = sim()
    now = NOON
    driver = SimBatteryDriver(battery, clock=lambda: now)
    limits = ControlSettings(export_limit_w=2000.0)
    met = []
    for i in range(120):
        report = await driver.apply(limits, now=now)
        assert report.applied == frozenset({Mode.EXPORT_LIMIT_W})
        now += 1.0
        site_w = (await driver.read_telemetry(now=now)).site_w
        assert site_w is not None
        if i >= 5 and report.site_limit_met:
            met.append(site_w)
            assert site_w <= 2000.0 + 150.0
    assert len(met) > 100  # feasible in most periods: the bound is not checked vacuously
    assert battery.setpoint_w is not None and battery.setpoint_w < 0  # charging


async def test_model_driver_answers_modes_it_cannot_dispatch_not_applicable() -> None:
    driver = SimBatteryDriver(sim(), clock=lambda: NOON)
    report = await driver.apply(ControlSettings(target_var=100.0, target_w=1000.0), now=NOON)
    assert report.not_applicable == frozenset({Mode.TARGET_VAR})
    assert report.applied == frozenset({Mode.TARGET_W})


@pytest.mark.parametrize("battery", ["direct", "registers"])
def test_worlds_on_the_in_process_paths_keep_every_invariant_and_answer_as_on_modbus(
    pki: Path, battery: BatteryPath
) -> None:
    result = run_world(demo_scenario(), seed=5, site=pki, battery=battery)
    assert check(result) == []
    assert result.server.response_statuses("DE0000000000000000000000000000A1") == [1, 2, 3]
    assert result.server.response_statuses("DE0000000000000000000000000000A3") == [1, 2, 6]


def test_the_direct_path_reproduces_from_its_seed(pki: Path) -> None:
    hardware = HardwareConfig(sample_period_s=1.0, post_interval_s=60)
    logs = [
        run_world(
            demo_scenario(), seed=s, site=pki, battery="direct", hardware=hardware
        ).log_bytes()
        for s in (8, 9, 8)
    ]
    assert logs[0] == logs[2]
    assert logs[0] != logs[1]


def test_an_unknown_battery_path_is_refused_by_name(pki: Path) -> None:
    with pytest.raises(ValueError, match="battery: 'modbus-rtu' is not one of"):
        run_world(demo_scenario(), seed=1, site=pki, battery="modbus-rtu")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("inverter", "connect", "tripped"),
    [
        ("started", True, False),
        ("stopped", True, False),
        ("standby", True, False),
        ("started", False, False),
        ("started", True, True),
    ],
)
async def test_both_drivers_report_the_same_status_in_every_state_of_the_device(
    inverter: str, connect: bool, tripped: bool
) -> None:
    """PROTOCOL.md §2.7: operating, stopped, standby, disconnected and faulted devices read the
    same through the model driver as through the SunSpec registers (an operator's command at the
    device included)."""
    now = NOON + 30
    devices = sim(), sim()
    for device in devices:
        device.operator(inverter=inverter, connect=connect)
        device.tripped = tripped
    direct = SimBatteryDriver(devices[0], clock=lambda: now)
    sunspec = SunSpecDriver(DirectRegisterClient(devices[1], clock=lambda: now))
    a, b = await direct.read_telemetry(now=now), await sunspec.read_telemetry(now=now)
    assert (a.state, a.operating, a.connected, a.alarms) == (
        b.state,
        b.operating,
        b.connected,
        b.alarms,
    )
    assert a.state is not None


async def test_a_device_never_commanded_keeps_the_state_its_operator_set() -> None:
    """As the SunSpec driver: a control that sets neither opModConnect nor opModEnergize leaves
    SetOp/SetInvState alone (the operator's stop stands); once commanded, they return to normal."""
    battery = sim()
    battery.operator(inverter="stopped")
    driver = SimBatteryDriver(battery, clock=lambda: NOON)
    await driver.apply(ControlSettings(target_w=0.0), now=NOON)
    assert battery.state == "stopped"
    await driver.apply(ControlSettings(energize=False), now=NOON + 1)
    await driver.apply(ControlSettings(), now=NOON + 2)
    assert battery.state == "operating"
