"""What the gateway tells the utility about its DER (PROTOCOL.md §2.7), built from what the hardware
actor last read: nameplate and settings, dispatchable modes, and the latest telemetry."""

from __future__ import annotations

from typing import Final

import msgspec

from actors.drivers.base import Nameplate, Telemetry
from events.der_info import DerAvailabilityInfo, DerCapabilityInfo, DerSettingsInfo, DerStatusInfo
from events.der_model import Mode
from transport.sep2.bitmaps import der_control_type, doe_control_type, vpp_control_type

__all__ = ["DerSnapshot", "DER_TYPE_STORAGE", "capability", "settings", "status", "availability"]

#: ``DERType`` 80: storage (a battery system).
DER_TYPE_STORAGE: Final = 80
# ConnectStatusType bits and OperationalModeStatusType values of the schema.
_CONNECTED, _AVAILABLE, _OPERATING, _FAULT = 1 << 0, 1 << 1, 1 << 2, 1 << 4
_OPERATIONAL_MODE: Final = 2


class DerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The hardware actor's latest knowledge of the DER (``None`` until first read)."""

    nameplate: Nameplate
    modes: frozenset[Mode]
    telemetry: Telemetry | None = None


def capability(snapshot: DerSnapshot) -> DerCapabilityInfo:
    plate = snapshot.nameplate
    rating = plate.rating()
    return DerCapabilityInfo(
        der_type=DER_TYPE_STORAGE,
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
        max_wh=plate.capacity_wh,
        doe_modes_enabled=doe_control_type(snapshot.modes),
        vpp_modes_enabled=vpp_control_type(snapshot.modes),
    )


def status(snapshot: DerSnapshot, *, now: float) -> DerStatusInfo:
    """DERStatus: connection bits, operational mode, state of charge, as last sampled."""
    t = snapshot.telemetry
    if t is None:
        return DerStatusInfo(reading_s=int(now))
    bits = _AVAILABLE
    if t.connected is not False:
        bits |= _CONNECTED | _OPERATING
    if t.alarms:
        bits |= _FAULT
    return DerStatusInfo(
        reading_s=int(t.at_s),
        gen_connect_status=bits,
        stor_connect_status=bits,
        operational_mode_status=_OPERATIONAL_MODE,
        state_of_charge_pct=t.soc_pct,
    )


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
