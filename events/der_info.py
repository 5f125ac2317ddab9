"""What the client tells the utility about itself, in SI units, free of the wire format.

``transport.sep2.mapping`` turns these into DERCapability, DERSettings, DERStatus, DERAvailability
and Response resources (PROTOCOL.md §2.7, §4.16). Readings reuse :mod:`events.telemetry`.
"""

from __future__ import annotations

import msgspec

from events.der_model import ResponseStatus

__all__ = [
    "ControlResponse",
    "DerAvailabilityInfo",
    "DerCapabilityInfo",
    "DerSettingsInfo",
    "DerStatusInfo",
]


class ControlResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A Response to a DERControl: ``mrid`` of the event (upper-case hex), our LFDI (40 hex
    digits)."""

    mrid: str
    status: ResponseStatus
    created_s: int
    lfdi: str
    modes_responded: int | None = None


class DerCapabilityInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Nameplate ratings; ``modes_supported`` etc. are the schema bitmaps (DERControlType, DOE,
    VPP)."""

    der_type: int
    modes_supported: int
    max_w: float
    max_va: float | None = None
    max_var: float | None = None
    max_charge_rate_w: float | None = None
    max_discharge_rate_w: float | None = None
    max_wh: float | None = None
    doe_modes_supported: int | None = None
    vpp_modes_supported: int | None = None


class DerSettingsInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Settings in force; ``set_grad_w`` in hundredths of a percent of ``max_w`` per second."""

    updated_s: int
    max_w: float
    set_grad_w: int
    modes_enabled: int | None = None
    max_va: float | None = None
    max_var: float | None = None
    max_charge_rate_w: float | None = None
    max_discharge_rate_w: float | None = None
    max_wh: float | None = None
    min_wh: float | None = None
    doe_modes_enabled: int | None = None
    vpp_modes_enabled: int | None = None


class DerStatusInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Status at ``reading_s``; connect bitmaps: bit 0 connected, 1 available, 2 operating, 3 test,
    4 fault."""

    reading_s: int
    gen_connect_status: int | None = None
    stor_connect_status: int | None = None
    operational_mode_status: int | None = None
    state_of_charge_pct: float | None = None
    inverter_status: int | None = None
    alarm_status: int | None = None


class DerAvailabilityInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What the DER could do now: watts and vars available, reserve percentages."""

    reading_s: int
    stat_w_avail: float | None = None
    stat_var_avail: float | None = None
    availability_duration_s: int | None = None
    max_charge_duration_s: int | None = None
    reserve_charge_pct: float | None = None
    reserve_pct: float | None = None
