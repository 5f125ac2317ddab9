"""What the battery side did and measured: the evidence of what the site actually did.

These answer the second half of a dispute ("the battery was told X at 14:05:00, read back X, and the
site meter read Y"), so writes, their read-back verdicts and telemetry samples are all recorded.
"""

from __future__ import annotations

import math
import re
from typing import Final

import msgspec

from events.base import Event
from events.der_model import ControlSettings, Mode
from events.telemetry import OperatingState

__all__ = [
    "HARDWARE_EVENT_TYPES",
    "HARDWARE_STREAM",
    "AlarmsChanged",
    "Clamp",
    "DeviceStatusChanged",
    "DeviceUnreachable",
    "LimitsApplied",
    "LimitsAppliedV1",
    "NameplateRead",
    "RampStarted",
    "TelemetrySampled",
    "parse_clamp_repr",
    "upcast_limits_applied_v1",
]

HARDWARE_STREAM = "hardware"


class Clamp(msgspec.Struct, frozen=True, kw_only=True):
    """A requested value the DER could not take as asked: ``bound`` names what limited it (the
    device's range, ``max_discharge_w``; the site limit, ``export_limit_w``; …)."""

    mode: str
    requested: float
    applied: float
    bound: str


class LimitsApplied(Event, frozen=True, kw_only=True, tag="hardware.limits_applied.v2"):
    """One write to the DER (or a decision not to write), verified by read-back.

    ``settings`` are the values written at ``at_s`` (ramped modes at their point on the trajectory);
    ``setpoint_w`` the active-power setpoint the closed loop chose (positive = discharge/export).
    ``clamps`` are structured (v2): a JSON object each, which ``json_extract`` can reach into.
    ``unparsed_clamps`` holds, only for a v1 record, a clamp text that is not the repr v1 wrote
    (kept as it was, never guessed at).
    """

    at_s: float
    settings: ControlSettings
    applied: tuple[Mode, ...]
    not_applicable: tuple[Mode, ...] = ()
    setpoint_w: float | None = None
    wrote: bool = False
    clamps: tuple[Clamp, ...] = ()
    site_limit_met: bool | None = None
    unparsed_clamps: tuple[str, ...] = ()


class LimitsAppliedV1(Event, frozen=True, kw_only=True, tag="hardware.limits_applied.v1"):
    """Legacy: ``LimitsApplied`` as logs before issue 20 hold it, each clamp the Python repr of the
    clamp struct (``"Clamp(mode='hold', requested=…, applied=…, bound='max_discharge_w')"``).
    Read through :func:`upcast_limits_applied_v1`; never written."""

    at_s: float
    settings: ControlSettings
    applied: tuple[Mode, ...]
    not_applicable: tuple[Mode, ...] = ()
    setpoint_w: float | None = None
    wrote: bool = False
    clamps: tuple[str, ...] = ()
    site_limit_met: bool | None = None


_NAME = r"'([A-Za-z_][A-Za-z0-9_]*)'"
_FLOAT = r"(-?(?:\d+\.\d*(?:e[+-]?\d+)?|\d+e[+-]?\d+|inf|nan))"
#: Exactly the repr v1 wrote (msgspec's repr of the clamp struct, floats as ``repr(float)``).
_CLAMP_REPR: Final = re.compile(
    rf"Clamp\(mode={_NAME}, requested={_FLOAT}, applied={_FLOAT}, bound={_NAME}\)"
)


def parse_clamp_repr(text: str) -> Clamp | None:
    """The clamp a v1 record's text stands for, or ``None`` when it is not exactly the repr v1
    wrote (strict: any other text is not interpreted)."""
    match = _CLAMP_REPR.fullmatch(text)
    if match is None:
        return None
    mode, requested, applied, bound = match.groups()
    values = float(requested), float(applied)
    if not all(math.isfinite(v) for v in values):
        return None
    return Clamp(mode=mode, requested=values[0], applied=values[1], bound=bound)


def upcast_limits_applied_v1(old: Event) -> Event:
    """v1 → v2: each clamp text parsed into the structured clamp; a text that is not the v1 repr
    is kept, flagged, in ``unparsed_clamps``. Every other field is carried over unchanged."""
    assert isinstance(old, LimitsAppliedV1)
    clamps: list[Clamp] = []
    unparsed: list[str] = []
    for text in old.clamps:
        clamp = parse_clamp_repr(text)
        if clamp is None:
            unparsed.append(text)
        else:
            clamps.append(clamp)
    return LimitsApplied(
        at_s=old.at_s,
        settings=old.settings,
        applied=old.applied,
        not_applicable=old.not_applicable,
        setpoint_w=old.setpoint_w,
        wrote=old.wrote,
        clamps=tuple(clamps),
        site_limit_met=old.site_limit_met,
        unparsed_clamps=tuple(unparsed),
    )


class DeviceUnreachable(Event, frozen=True, kw_only=True, tag="hardware.device_unreachable.v1"):
    """A read or write failed (timeout, Modbus exception, disconnect, write not verified)."""

    at_s: float
    operation: str
    error_type: str
    error: str


class TelemetrySampled(
    Event, frozen=True, kw_only=True, tag="hardware.telemetry.v1", omit_defaults=True
):
    """One reading of the site meter and the DER (W positive = export at the site, discharge at the DER)."""

    at_s: float
    site_w: float | None = None
    site_var: float | None = None
    site_v: float | None = None
    site_hz: float | None = None
    der_w: float | None = None
    der_var: float | None = None
    der_v: float | None = None
    soc_pct: float | None = None
    stored_wh: float | None = None
    connected: bool | None = None


class DeviceStatusChanged(
    Event, frozen=True, kw_only=True, tag="hardware.device_status.v1", omit_defaults=True
):
    """What the device reports of its status changed (first sample included): the converter's
    ``state``, its AC and battery connection, the device's own name for the state (SunSpec 701
    ``InvSt``). ``None``: not reported. The evidence behind each DERStatus (PROTOCOL.md §2.7)."""

    at_s: float
    state: OperatingState | None = None
    connected: bool | None = None
    storage_connected: bool | None = None
    operating: str | None = None


class AlarmsChanged(Event, frozen=True, kw_only=True, tag="hardware.alarms_changed.v1"):
    at_s: float
    raised: tuple[str, ...]
    cleared: tuple[str, ...]
    active: tuple[str, ...]


class NameplateRead(Event, frozen=True, kw_only=True, tag="hardware.nameplate.v1"):
    """Ratings and settings as the DER reports them (the basis of DERCapability/DERSettings)."""

    at_s: float
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    rated_w: float | None = None
    rated_va: float | None = None
    rated_var: float | None = None
    rated_charge_w: float | None = None
    rated_discharge_w: float | None = None
    capacity_wh: float | None = None
    max_w: float | None = None
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    # added in session 3 (optional: logs written before decode with None)
    soc_min_pct: float | None = None
    soc_max_pct: float | None = None
    dispatchable: tuple[Mode, ...] = ()


class RampStarted(Event, frozen=True, kw_only=True, tag="hardware.ramp_started.v1"):
    """Where a limit's ramp started on the device (PROTOCOL.md §4 rule 11): the controls core
    planned it from the old limit (``planned``, the plan's value at ``at_s``); it starts from where
    the DER is. ``applied`` is the value the device held, ``measured`` what the limited quantity
    measured then (``None``: not measured), ``rating`` the DER's rating in the mode's unit (the
    start when nothing was measured). The device follows ``from_value`` → ``to_value`` from ``at_s``
    to ``end_s`` (``end_s == at_s``: a step). Values in the mode's unit (W, or percent)."""

    at_s: float
    mode: Mode
    planned: float
    applied: float | None = None
    measured: float | None = None
    rating: float | None = None
    from_value: float
    to_value: float
    end_s: float


HARDWARE_EVENT_TYPES: tuple[type[Event], ...] = (
    LimitsApplied,
    DeviceUnreachable,
    TelemetrySampled,
    AlarmsChanged,
    NameplateRead,
    DeviceStatusChanged,
    RampStarted,
)
