"""What the gateway tells the utility about its DER (PROTOCOL.md §2.7), built from what the hardware
actor last read: nameplate and settings, dispatchable modes, and the latest telemetry."""

from __future__ import annotations

import math
from typing import Final

from actors.drivers.base import Nameplate
from actors.messages import DerSnapshot, DeviceStatus
from events.der_info import DerAvailabilityInfo, DerCapabilityInfo, DerSettingsInfo, DerStatusInfo
from events.telemetry import OperatingState
from transport.sep2.bitmaps import der_control_type, doe_control_type, vpp_control_type

__all__ = [
    "DerSnapshot",
    "DER_TYPE_PV",
    "DER_TYPE_STORAGE",
    "capability",
    "energy_bounds",
    "settings",
    "status",
    "status_with_sources",
    "availability",
]

#: ``DERType`` 80: storage (a battery system).
DER_TYPE_STORAGE: Final = 80
#: ``DERType`` 4: a photovoltaic system (a ``role = "pv"`` DER of a site of several).
DER_TYPE_PV: Final = 4
# The schema's (sep.xsd 2018) ConnectStatusType bits, OperationalModeStatusType and
# InverterStatusType values, and DERStatus alarmStatus bits.
_CONNECTED, _AVAILABLE, _OPERATING, _TEST, _FAULT = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4
_MODE_UNKNOWN, _MODE_OFF, _MODE_OPERATIONAL, _MODE_TEST = 0, 1, 2, 3
_INVERTER_NA: Final = 0
_INVERTER_STATUS: Final[dict[OperatingState, int]] = {
    OperatingState.OFF: 1,
    OperatingState.SLEEPING: 2,
    OperatingState.STARTING: 3,
    OperatingState.OPERATING: 4,
    OperatingState.THROTTLED: 5,
    OperatingState.SHUTTING_DOWN: 6,
    OperatingState.FAULT: 7,
    OperatingState.STANDBY: 8,
    OperatingState.TEST: 9,
}
_OPERATING_STATES: Final = frozenset({OperatingState.OPERATING, OperatingState.THROTTLED})
#: Alarm names the drivers report (SunSpec 701 ``Alrm``, 802 ``Evt1``) → alarmStatus bits
#: (0 over current, 1 over voltage, 2 under voltage, 3 over frequency, 4 under frequency,
#: 5 voltage imbalance, 6 current imbalance, 7 local emergency); the others have no bit.
_ALARM_BITS: Final[dict[str, int]] = {
    "OVER_CHARGE_CURRENT_ALARM": 1 << 0,
    "OVER_DISCHARGE_CURRENT_ALARM": 1 << 0,
    "AC_OVER_VOLT": 1 << 1,
    "DC_OVER_VOLT": 1 << 1,
    "OVER_VOLT_ALARM": 1 << 1,
    "AC_UNDER_VOLT": 1 << 2,
    "UNDER_VOLT_ALARM": 1 << 2,
    "OVER_FREQUENCY": 1 << 3,
    "UNDER_FREQUENCY": 1 << 4,
    "MANUAL_SHUTDOWN": 1 << 7,
}


def capability(snapshot: DerSnapshot) -> DerCapabilityInfo:
    plate = snapshot.nameplate
    rating = plate.rating()
    return DerCapabilityInfo(
        der_type=DER_TYPE_PV if snapshot.role == "pv" else DER_TYPE_STORAGE,
        modes_supported=der_control_type(
            snapshot.modes,
            can_charge=rating.max_charge_w > 0,
            can_discharge=rating.max_discharge_w > 0,
        ),
        max_w=plate.rated_w or rating.max_w,
        max_va=plate.rated_va,
        max_var=plate.rated_var,
        max_charge_rate_w=plate.rated_charge_w,
        max_discharge_rate_w=plate.rated_discharge_w,
        max_wh=plate.capacity_wh,
        doe_modes_supported=doe_control_type(snapshot.modes),
        vpp_modes_supported=vpp_control_type(snapshot.modes),
    )


def settings(snapshot: DerSnapshot, *, now: float, set_grad_w: int) -> DerSettingsInfo:
    """DERSettings; ``setMaxW`` is mandatory, ``setGradW`` is the ramp rate in force (§4 rule 10)."""
    plate = snapshot.nameplate
    rating = plate.rating()
    return DerSettingsInfo(
        updated_s=int(now),
        max_w=rating.max_w,
        set_grad_w=set_grad_w,
        modes_enabled=der_control_type(
            snapshot.modes,
            can_charge=rating.max_charge_w > 0,
            can_discharge=rating.max_discharge_w > 0,
        ),
        max_va=plate.rated_va,
        max_charge_rate_w=rating.max_charge_w,
        max_discharge_rate_w=rating.max_discharge_w,
        max_wh=energy_bounds(plate)[1],
        min_wh=energy_bounds(plate)[0],
        doe_modes_enabled=doe_control_type(snapshot.modes),
        vpp_modes_enabled=vpp_control_type(snapshot.modes),
    )


def energy_bounds(plate: Nameplate) -> tuple[float | None, float | None]:
    """The stored energy the battery keeps between, in Wh: DERSettings ``setMinWh`` (CSIP-AUS v1.3
    storage: "the value at which the battery will stop discharging to maintain state of charge
    above [the] reserved minimum") and ``setMaxWh`` (2030.5: the storage capacity in force, which
    "may be different from physical capability"), from the capacity and the state-of-charge bounds
    the device reports. Without a capacity neither is known; bounds the device does not report, or
    reports as no usable range (as ``statemachines.site_limit.rating_at_charge`` reads them), give
    no ``setMinWh`` and the whole capacity as ``setMaxWh``."""
    capacity = plate.capacity_wh
    if capacity is None or not math.isfinite(capacity) or capacity <= 0:
        return None, capacity
    low, high = plate.soc_min_pct, plate.soc_max_pct
    if low is None or high is None or not 0.0 <= low < high <= 100.0:
        return None, capacity
    return capacity * low / 100.0, capacity * high / 100.0


def status(observed: DeviceStatus) -> DerStatusInfo:
    """DERStatus from what the device reports (PROTOCOL.md §2.7: it follows the device), every
    mandatory field filled from the first reading. See :func:`status_with_sources`."""
    return status_with_sources(observed)[0]


def status_with_sources(observed: DeviceStatus) -> tuple[DerStatusInfo, tuple[str, ...]]:
    """DERStatus and the fields that came from the control in force rather than the device.

    PROTOCOL.md §2.7 and §5: the device's own report wins; the control's effect is the fallback
    only where the device cannot report it — ``connected`` unknown: disconnected when the control
    in force says ``opModConnect`` false; the converter's state unknown: ``off`` when it says
    ``opModEnergize`` false, ``standby`` when disconnected, else ``operating``. A device that could
    not be read is reported as it last was, with the fault bit set (what is known: it is not
    answering); one never read yet as a fault alone (``operationalModeStatus`` 0, unknown).

    genConnectStatus/storConnectStatus bits: 0 connected; 1 available (not faulted); 2 operating
    (connected, state ``operating``/``throttled``); 3 test; 4 fault (state ``fault``, an alarm that
    is not a warning, or the device not answering). storConnectStatus takes the battery's own
    connection where the device reports it. operationalModeStatus: 1 off (``off``, ``fault``),
    3 test, else 2. inverterStatus: the schema's InverterStatusType for the state."""
    t = observed.telemetry
    if t is None:
        info = DerStatusInfo(
            reading_s=int(observed.at_s),
            gen_connect_status=_FAULT,
            stor_connect_status=_FAULT,
            operational_mode_status=_MODE_UNKNOWN,
            inverter_status=_INVERTER_NA,
        )
        return info, ()
    from_control: list[str] = []
    connected = t.connected
    if connected is None:
        connected = observed.connect is not False
        if observed.connect is not None:
            from_control.append("connected")
    state = t.state
    if state is None:
        if observed.energize is False:
            state = OperatingState.OFF
        elif not connected:
            state = OperatingState.STANDBY
        else:
            state = OperatingState.OPERATING
        if observed.energize is not None or observed.connect is not None:
            from_control.append("state")
    faulted = (
        state == OperatingState.FAULT
        or any("WARNING" not in alarm.upper() for alarm in t.alarms)
        or not observed.reachable
    )

    def bits(is_connected: bool) -> int:
        value = 0
        if is_connected:
            value |= _CONNECTED
            if state in _OPERATING_STATES:
                value |= _OPERATING
        if not faulted:
            value |= _AVAILABLE
        if state == OperatingState.TEST:
            value |= _TEST
        if faulted:
            value |= _FAULT
        return value

    storage = connected if t.storage_connected is None else (connected and t.storage_connected)
    if state in (OperatingState.OFF, OperatingState.FAULT):
        mode = _MODE_OFF
    elif state == OperatingState.TEST:
        mode = _MODE_TEST
    else:
        mode = _MODE_OPERATIONAL
    alarm_bits = 0
    for alarm in t.alarms:
        alarm_bits |= _ALARM_BITS.get(alarm.removeprefix("battery:"), 0)
    info = DerStatusInfo(
        reading_s=int(t.at_s),
        gen_connect_status=bits(connected),
        stor_connect_status=bits(storage),
        operational_mode_status=mode,
        state_of_charge_pct=t.soc_pct,
        inverter_status=_INVERTER_STATUS[state],
        alarm_status=alarm_bits,
    )
    return info, tuple(from_control)


def availability(snapshot: DerSnapshot, *, now: float) -> DerAvailabilityInfo:
    """DERAvailability: what the DER could deliver now, bounded by its rating and state of charge."""
    t = snapshot.telemetry
    rating = snapshot.nameplate.rating()
    available_w = rating.max_discharge_w
    if t is not None and t.soc_pct is not None and t.soc_pct <= 0:
        available_w = 0.0
    duration_s = None
    if t is not None and t.stored_wh is not None and available_w > 0:
        duration_s = int(t.stored_wh / available_w * 3600)
    return DerAvailabilityInfo(
        reading_s=int(t.at_s if t is not None else now),
        stat_w_avail=available_w,
        availability_duration_s=duration_s,
    )
