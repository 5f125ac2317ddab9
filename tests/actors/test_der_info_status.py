"""DERStatus from what the device reports (PROTOCOL.md §2 step 7): every status field from the
first reading, the device's own report first, the control in force only as the fallback."""

from __future__ import annotations

import pytest

from actors.der_info import status, status_with_sources
from actors.drivers.base import Telemetry
from actors.messages import DeviceStatus
from events.telemetry import OperatingState

CONNECTED, AVAILABLE, OPERATING, TEST, FAULT = 1, 2, 4, 8, 16


def reading(**fields: object) -> DeviceStatus:
    control = {k: fields.pop(k) for k in ("connect", "energize", "reachable") if k in fields}
    return DeviceStatus(
        at_s=1000.0, telemetry=Telemetry(at_s=1000.0, soc_pct=42.0, **fields), **control
    )


def test_the_first_status_carries_every_mandatory_field() -> None:
    info = status(reading(connected=True, state=OperatingState.OPERATING))
    assert info.gen_connect_status == CONNECTED | AVAILABLE | OPERATING
    assert info.stor_connect_status == CONNECTED | AVAILABLE | OPERATING
    assert (info.operational_mode_status, info.inverter_status) == (2, 4)
    assert (info.state_of_charge_pct, info.alarm_status, info.reading_s) == (42.0, 0, 1000)


@pytest.mark.parametrize(
    ("state", "gen", "mode", "inverter"),
    [
        (OperatingState.OFF, CONNECTED | AVAILABLE, 1, 1),
        (OperatingState.STANDBY, CONNECTED | AVAILABLE, 2, 8),
        (OperatingState.STARTING, CONNECTED | AVAILABLE, 2, 3),
        (OperatingState.THROTTLED, CONNECTED | AVAILABLE | OPERATING, 2, 5),
        (OperatingState.FAULT, CONNECTED | FAULT, 1, 7),
        (OperatingState.TEST, CONNECTED | AVAILABLE | TEST, 3, 9),
    ],
)
def test_the_operating_bit_and_the_mode_follow_the_state_the_device_reports(
    state: OperatingState, gen: int, mode: int, inverter: int
) -> None:
    """A stopped inverter is not operating although it is connected (the operating bit used to be
    set whenever the DER was connected, and operationalModeStatus was a constant)."""
    info = status(reading(connected=True, state=state))
    assert (info.gen_connect_status, info.operational_mode_status, info.inverter_status) == (
        gen,
        mode,
        inverter,
    )


def test_a_disconnected_der_is_neither_connected_nor_operating() -> None:
    info = status(reading(connected=False, state=OperatingState.STANDBY))
    assert info.gen_connect_status == AVAILABLE


def test_the_device_report_wins_over_the_control_in_force() -> None:
    info, sources = status_with_sources(
        reading(connected=True, state=OperatingState.OPERATING, energize=False)
    )
    assert info.operational_mode_status == 2 and sources == ()


def test_what_the_device_cannot_report_falls_back_to_the_controls_effect() -> None:
    """§2.7 / §5: opModEnergize=false → not operating (off); opModConnect=false → disconnected."""
    info, sources = status_with_sources(reading(energize=False))
    assert info.gen_connect_status == CONNECTED | AVAILABLE
    assert (info.operational_mode_status, info.inverter_status) == (1, 1)
    assert sources == ("state",)
    info, sources = status_with_sources(reading(connect=False))
    assert info.gen_connect_status == AVAILABLE
    assert sources == ("connected", "state")


def test_an_alarm_sets_the_fault_bit_and_its_alarm_status_bit_but_a_warning_does_not() -> None:
    info = status(reading(connected=True, state=OperatingState.OPERATING, alarms=("AC_OVER_VOLT",)))
    assert info.gen_connect_status & FAULT and not info.gen_connect_status & AVAILABLE
    assert info.alarm_status == 1 << 1
    info = status(
        reading(
            connected=True,
            state=OperatingState.OPERATING,
            alarms=("battery:OVER_TEMP_WARNING",),
        )
    )
    assert not info.gen_connect_status & FAULT


def test_the_batterys_own_connection_is_its_stor_connect_status() -> None:
    info = status(reading(connected=True, storage_connected=False, state=OperatingState.STANDBY))
    assert info.gen_connect_status & CONNECTED and not info.stor_connect_status & CONNECTED


def test_a_device_that_does_not_answer_is_reported_with_the_fault_bit() -> None:
    never = status(DeviceStatus(at_s=5.0, telemetry=None, reachable=False))
    assert (never.gen_connect_status, never.operational_mode_status) == (FAULT, 0)
    lost = status(reading(connected=True, state=OperatingState.OPERATING, reachable=False))
    assert lost.gen_connect_status == CONNECTED | OPERATING | FAULT
