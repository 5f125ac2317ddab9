"""What the simulated utility server holds, as plain records, and the helpers its resource families share
(paging, decoding request bodies, the wire form of a control's modes and status). Pure: no clock, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from sep2gw.simserver.quirks import Quirks
from sep2gw.simserver.scenario import (
    FailRequests,
    Modes,
)
from transport.sep2 import Sep2DecodeError, decode, decode_any
from transport.sep2 import resources as r
from transport.sep2.mapping import scaled

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

# Fixed mRID bodies of server-made identifiers (an "issuer" prefix, then a counter).
_PROGRAM_MRID = 0xD1500000_00000000_00000000_00000000
_DEFAULT_MRID = 0xDDC00000_00000000_00000000_00000000
_CONTROL_MRID = 0xDC000000_00000000_00000000_00000000
_FSA_MRID = 0xF5A00000_00000000_00000000_00000000
#: Rendered documents kept (all are forgotten when full: a long run's documents change slowly).
_RENDERED_CACHE = 256
_OPEN_PATHS = frozenset(
    {
        ("GET", "/dcap"),
        ("GET", "/tm"),
        ("GET", "/edev"),
        ("POST", "/edev"),
        ("GET", "/.well-known/csipaus"),
    }
)
_SUBSCRIBABLE_NONE = 0
#: deviceCategory an installer enters for a pre-registered battery gateway (bit 25 of
#: DeviceCategoryType, the gateway's configured default).
_INSTALLER_DEVICE_CATEGORY = 1 << 25


@dataclass(frozen=True, slots=True)
class SimReply:
    """What the server answers. ``reason`` explains every 4xx/5xx (sent as a text body);
    ``parsed`` is the decoded request body (for the request record); ``reset`` drops the
    connection without an answer."""

    status: int
    body: bytes = b""
    location: str | None = None
    retry_after_s: int | None = None
    reason: str = ""
    parsed: msgspec.Struct | None = None
    reset: bool = False
    #: The body's media type when it is not 2030.5 XML (the v1.3 well-known JSON).
    content_type: str | None = None


@dataclass(slots=True)
class DeviceRecord:
    id: int
    lfdi: int
    sfdi: int
    device_category: int
    changed_time: int
    registered_at: int
    #: The Registration's pIN (§2.4): the installer's for an out-of-band registration, the server's
    #: choice for an in-band one.
    pin: int = 111115
    #: Registered by the device's own POST (``False``: by an installer, out of band).
    in_band: bool = True
    #: The certificate LFDI that registered it: its own, or an aggregator's (which may then act for
    #: it: read its resources, post its Responses and readings). ``None``: its own.
    registered_by: int | None = None
    der_capability: r.DERCapability | None = None
    der_settings: r.DERSettings | None = None
    der_status: r.DERStatus | None = None
    der_availability: r.DERAvailability | None = None
    connection_point: r.ConnectionPointType | None = None
    log_events: list[r.LogEvent] = field(default_factory=list)
    #: DER information PUT at the EndDevice's other DER (2 on; issue 19 point 2), by (DER
    #: number, attribute name as above); DER 1's is in the attributes above.
    more_der: dict[tuple[int, str], Any] = field(default_factory=dict)


@dataclass(slots=True)
class ControlRecord:
    index: int
    program: int
    mrid: int
    creation_time: int
    start: int
    duration: int
    base: r.DERControlBase
    modes: frozenset[str]
    response_required: int
    randomize_start: int | None
    randomize_duration: int | None
    device_category: int | None
    description: str | None
    cancelled_at: int | None = None
    cancel_status: int = 2
    superseded_by: int | None = None
    superseded_at: int | None = None
    potentially_superseded_at: int | None = None
    deleted: bool = False  # vanished from the lists without a cancel (delete_control)


@dataclass(slots=True)
class ProgramRecord:
    index: int
    key: str
    mrid: int
    primacy: int
    description: str | None
    default: r.DERControlBase | None
    default_grad_w: int | None
    default_version: int = 0
    in_fsa: bool = True
    controls: list[ControlRecord] = field(default_factory=list)
    #: The EndDevice LFDIs the program is assigned to (``None``: every EndDevice).
    end_devices: frozenset[int] | None = None


@dataclass(slots=True)
class MirrorRecord:
    id: int
    owner_lfdi: int
    mup: r.MirrorUsagePoint
    created_at: int
    readings: list[tuple[int, r.MirrorMeterReading]] = field(default_factory=list)


@dataclass(slots=True)
class _Failure:
    start: float
    end: float
    spec: FailRequests


@dataclass(frozen=True, slots=True)
class _Ctx:
    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    lfdi: int | None
    now: float


def _active_power(watts: float | None) -> r.ActivePower | None:
    if watts is None:
        return None
    value, multiplier = scaled(watts)
    return r.ActivePower(value=value, multiplier=multiplier)


def control_base(modes: Modes) -> r.DERControlBase:
    """Scenario modes → the wire's DERControlBase (W as value × 10^multiplier, percentages in
    hundredths, rampTms in hundredths of a second)."""
    return r.DERControlBase(
        opModConnect=modes.opModConnect,
        opModEnergize=modes.opModEnergize,
        opModFixedW=None if modes.opModFixedW is None else round(modes.opModFixedW * 100),
        opModMaxLimW=None if modes.opModMaxLimW is None else round(modes.opModMaxLimW * 100),
        opModTargetW=_active_power(modes.opModTargetW),
        rampTms=None if modes.rampTms is None else round(modes.rampTms * 100),
        opModImpLimW=_active_power(modes.opModImpLimW),
        opModExpLimW=_active_power(modes.opModExpLimW),
        opModGenLimW=_active_power(modes.opModGenLimW),
        opModLoadLimW=_active_power(modes.opModLoadLimW),
        opModStorageTargetW=_active_power(modes.opModStorageTargetW),
    )


def event_status(control: ControlRecord, now: float, quirks: Quirks) -> r.EventStatus:
    """The server's ``EventStatus`` of a control at ``now`` (IEEE 2030.5 §10.10 event status):
    0 scheduled before the start, 1 active within [start, end), 2/3 once cancelled (3 = with
    randomisation), 4 superseded (2018 servers, ``status_superseded`` quirk), 5 completed after
    the end (2023, ``status_completed`` quirk). ``dateTime`` is when that status began."""
    end = control.start + control.duration
    status, since = 0, control.creation_time
    if control.cancelled_at is not None and now >= control.cancelled_at:
        status, since = control.cancel_status, control.cancelled_at
    elif (
        quirks.status_superseded
        and control.superseded_by is not None
        and control.superseded_at is not None
    ):
        status, since = 4, control.superseded_at
    elif quirks.status_completed and now >= end:
        status, since = 5, end
    elif now >= control.start:
        status, since = 1, control.start
    return r.EventStatus(
        currentStatus=status,
        dateTime=since,
        potentiallySuperseded=control.potentially_superseded_at is not None,
        potentiallySupersededTime=control.potentially_superseded_at,
    )


def _page(query: Mapping[str, str], total: int, one_item_default: bool) -> tuple[int, int]:
    """IEEE 2030.5 §5.4 list paging: ``s`` start index (default 0), ``l`` limit (default: all;
    one item under the ``one_item_default_paging`` quirk). Raises ValueError naming the key."""

    def number(key: str, default: int) -> int:
        text = query.get(key)
        if text is None:
            return default
        if not text.isdigit():
            raise ValueError(f"query parameter {key}={text!r} is not a non-negative integer")
        return int(text)

    start = number("s", 0)
    limit = number("l", 1 if one_item_default else max(total, 1))
    return start, min(limit, 0xFFFFFFFF)


class _NotFound(ValueError):
    pass


def _refusal(exc: Sep2DecodeError) -> SimReply:
    return SimReply(400, reason=f"{type(exc).__name__}: {exc}")


def _decode(body: bytes, cls: type[S]) -> S | SimReply:
    if not body:
        return SimReply(400, reason=f"empty body: expected a {cls.__name__} document")
    try:
        return decode(body, cls)
    except Sep2DecodeError as exc:
        return _refusal(exc)


def _decode_any(body: bytes, classes: tuple[type[S], ...]) -> S | SimReply:
    names = " or ".join(c.__name__ for c in classes)
    if not body:
        return SimReply(400, reason=f"empty body: expected a {names} document")
    try:
        parsed: Any = decode_any(body)
    except Sep2DecodeError as exc:
        return _refusal(exc)
    if type(parsed) not in classes:
        return SimReply(400, reason=f"/{type(parsed).__name__}: expected a {names} document")
    result: S = parsed
    return result
