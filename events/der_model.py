"""The domain model of what a utility asks of a DER, in SI units, free of the wire format.

``transport`` maps wire resources (DERControl, DefaultDERControl, DERProgram) into these types and the
decision core (``statemachines``) reasons only about them, so it never imports the XML layer. Names
carry units (``export_limit_w``, ``start_s``); multipliers are already applied; percentages stay
percentages (``max_limit_pct`` is percent of ``setMaxW``, not hundredths).

These are values, not log events: domain events embed them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

import msgspec

__all__ = [
    "Control",
    "ControlSettings",
    "DefaultControl",
    "EventStatus",
    "FixedVar",
    "FreqDroop",
    "Mode",
    "PowerFactor",
    "Program",
    "ResponseStatus",
]


class EventStatus(IntEnum):
    """``EventStatus.currentStatus`` as the server sends it (2018 values plus 2023's Completed)."""

    SCHEDULED = 0
    ACTIVE = 1
    CANCELLED = 2
    CANCELLED_WITH_RANDOMIZATION = 3
    SUPERSEDED = 4
    COMPLETED = 5


class ResponseStatus(IntEnum):
    """Response status codes of IEEE 2030.5-2018 (Table of Response.status)."""

    RECEIVED = 1
    STARTED = 2
    COMPLETED = 3
    OPT_OUT = 4
    OPT_IN = 5
    CANCELLED = 6
    SUPERSEDED = 7
    PARTIAL_OPT_OUT = 8
    PARTIAL_OPT_IN = 9
    COMPLETED_NO_PARTICIPATION = 10
    ACKNOWLEDGED = 11
    CANNOT_DISPLAY = 12
    ABORTED_OTHER_SERVER = 13
    ABORTED_OTHER_PROGRAM = 14
    NOT_APPLICABLE = 252
    INVALID_EVENT = 253
    RECEIVED_LATE = 254


class Mode(StrEnum):
    """A control mode: the unit of arbitration and supersession (PROTOCOL.md §4 rule 7).

    The value is the name of the matching field of :class:`ControlSettings`.
    """

    CONNECT = "connect"
    ENERGIZE = "energize"
    FIXED_PF_ABSORB = "fixed_pf_absorb"
    FIXED_PF_INJECT = "fixed_pf_inject"
    FIXED_VAR = "fixed_var"
    FIXED_W_PCT = "fixed_w_pct"
    FREQ_DROOP = "freq_droop"
    FREQ_WATT = "freq_watt_curve"
    HFRT_MAY_TRIP = "hfrt_may_trip_curve"
    HFRT_MUST_TRIP = "hfrt_must_trip_curve"
    HVRT_MAY_TRIP = "hvrt_may_trip_curve"
    HVRT_MOMENTARY_CESSATION = "hvrt_momentary_cessation_curve"
    HVRT_MUST_TRIP = "hvrt_must_trip_curve"
    LFRT_MAY_TRIP = "lfrt_may_trip_curve"
    LFRT_MUST_TRIP = "lfrt_must_trip_curve"
    LVRT_MAY_TRIP = "lvrt_may_trip_curve"
    LVRT_MOMENTARY_CESSATION = "lvrt_momentary_cessation_curve"
    LVRT_MUST_TRIP = "lvrt_must_trip_curve"
    MAX_LIMIT_PCT = "max_limit_pct"
    TARGET_VAR = "target_var"
    TARGET_W = "target_w"
    VOLT_VAR = "volt_var_curve"
    VOLT_WATT = "volt_watt_curve"
    WATT_PF = "watt_pf_curve"
    WATT_VAR = "watt_var_curve"
    # CSIP-AUS dynamic operating envelopes (https://csipaus.org/ns)
    EXPORT_LIMIT_W = "export_limit_w"
    IMPORT_LIMIT_W = "import_limit_w"
    GENERATION_LIMIT_W = "generation_limit_w"
    LOAD_LIMIT_W = "load_limit_w"
    # CSIP-AUS v1.3 storage extension
    STORAGE_TARGET_W = "storage_target_w"


class PowerFactor(msgspec.Struct, frozen=True, kw_only=True):
    """A fixed power factor (``PowerFactorWithExcitation``): displacement 0..1, and whether over-excited."""

    displacement: float
    over_excited: bool = False


class FixedVar(msgspec.Struct, frozen=True, kw_only=True):
    """``FixedVar``: reactive power as a signed percent of a reference (``DERUnitRefType``)."""

    ref_type: int
    percent: float


class FreqDroop(msgspec.Struct, frozen=True, kw_only=True):
    """``FreqDroopType`` in SI units."""

    deadband_over_hz: float
    deadband_under_hz: float
    droop_over: float
    droop_under: float
    open_loop_response_s: float


class ControlSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The modes one control (or default, or the arbitrated result) sets; ``None`` = mode not set.

    Curve modes hold the href of the DERCurve they select. ``ramp_time_s`` is not a mode: it says how
    fast to move to the new values (``rampTms`` / 100).
    """

    connect: bool | None = None
    energize: bool | None = None
    fixed_pf_absorb: PowerFactor | None = None
    fixed_pf_inject: PowerFactor | None = None
    fixed_var: FixedVar | None = None
    fixed_w_pct: float | None = None
    freq_droop: FreqDroop | None = None
    freq_watt_curve: str | None = None
    hfrt_may_trip_curve: str | None = None
    hfrt_must_trip_curve: str | None = None
    hvrt_may_trip_curve: str | None = None
    hvrt_momentary_cessation_curve: str | None = None
    hvrt_must_trip_curve: str | None = None
    lfrt_may_trip_curve: str | None = None
    lfrt_must_trip_curve: str | None = None
    lvrt_may_trip_curve: str | None = None
    lvrt_momentary_cessation_curve: str | None = None
    lvrt_must_trip_curve: str | None = None
    max_limit_pct: float | None = None
    target_var: float | None = None
    target_w: float | None = None
    volt_var_curve: str | None = None
    volt_watt_curve: str | None = None
    watt_pf_curve: str | None = None
    watt_var_curve: str | None = None
    export_limit_w: float | None = None
    import_limit_w: float | None = None
    generation_limit_w: float | None = None
    load_limit_w: float | None = None
    storage_target_w: float | None = None
    ramp_time_s: float | None = None

    def modes(self) -> frozenset[Mode]:
        """The modes this settings object sets."""
        # A plain tuple of (field, mode): iterating the enum and reading ``.value`` cost more than
        # the getattr calls themselves (the hardware actor asks several times a second).
        return frozenset([mode for name, mode in _MODE_FIELDS if getattr(self, name) is not None])


_MODE_FIELDS: tuple[tuple[str, Mode], ...] = tuple((mode.value, mode) for mode in Mode)


class Program(msgspec.Struct, frozen=True, kw_only=True):
    """A DERProgram: ``program_id`` is its mRID (upper-case hex); lower ``primacy`` wins."""

    program_id: str
    primacy: int
    href: str | None = None
    description: str = ""


class Control(msgspec.Struct, frozen=True, kw_only=True):
    """One DERControl event, identified by ``mrid`` (upper-case hex, compared as a number on the wire).

    Times are UTC epoch seconds on the server's clock. ``response_required`` keeps the wire bitmap
    (bit 0: received, bit 1: specific responses, bit 2: opt-in/out). ``device_category`` is the
    DeviceCategoryType bitmap the control is for (``None``: every category).
    """

    mrid: str
    program_id: str
    creation_time_s: int
    start_s: int
    duration_s: int
    settings: ControlSettings
    randomize_start_s: int = 0
    randomize_duration_s: int = 0
    response_required: int = 0
    reply_to: str | None = None
    device_category: int | None = None
    server_status: EventStatus = EventStatus.SCHEDULED
    status_time_s: int | None = None
    potentially_superseded: bool = False
    version: int = 0
    href: str | None = None
    description: str = ""

    @property
    def specified_end_s(self) -> int:
        return self.start_s + self.duration_s


class DefaultControl(msgspec.Struct, frozen=True, kw_only=True):
    """A DefaultDERControl: what applies to each mode no event controls.

    ``set_grad_w`` is the default ramp rate in hundredths of a percent of ``setMaxW`` per second;
    ``set_soft_grad_w`` the soft-start ramp rate in the same unit.
    """

    program_id: str
    settings: ControlSettings
    mrid: str | None = None
    set_grad_w: int | None = None
    set_soft_grad_w: int | None = None
    es_delay_s: float | None = None
    es_randomize_delay_s: float | None = None
    es_high_freq_hz: float | None = None
    es_low_freq_hz: float | None = None
    es_high_volt_pct: float | None = None
    es_low_volt_pct: float | None = None
    version: int = 0
    href: str | None = None
