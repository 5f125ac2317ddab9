"""Wire resources <-> domain values (issue #3 scope 3). Pure functions; units in the domain names.

Incoming: DERProgram, DERControl and DefaultDERControl become :mod:`events.der_model` values with
multipliers applied (``value * 10**multiplier``), hundredths of a percent as percent, hundredths of
a second as seconds, mRIDs as canonical upper-case hex. Outgoing: :mod:`events.der_info` values and
:mod:`events.telemetry` summaries become Response, DER info and MirrorReadingSet resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from events.der_info import (
    ControlResponse,
    DerAvailabilityInfo,
    DerCapabilityInfo,
    DerSettingsInfo,
    DerStatusInfo,
)
from events.der_model import (
    Control,
    ControlSettings,
    DefaultControl,
    EventStatus,
    FixedVar,
    FreqDroop,
    PowerFactor,
    Program,
)
from events.telemetry import IntervalSummary, Quantity
from transport.sep2 import resources as r
from transport.sep2.codec import CSIPAUS_NS, csipaus_defines
from transport.sep2.errors import SchemaViolation
from transport.sep2.hexbinary import HexBinary8, HexBinary32, HexBinary128, HexBinary160

__all__ = [
    "availability_to_wire",
    "capability_to_wire",
    "control_from_wire",
    "controls_from_wire",
    "default_control_from_wire",
    "mrid_text",
    "program_from_wire",
    "reading_set_to_wire",
    "reading_type_for",
    "response_to_wire",
    "scaled",
    "settings_from_wire",
    "settings_to_wire",
    "status_to_wire",
]

_INT16 = (-(2**15), 2**15 - 1)


def mrid_text(value: int) -> str:
    """An mRID as the canonical 32 upper-case hex digits (servers may drop leading zeros)."""
    return f"{value:032X}"


def _si(value: int, multiplier: int) -> float:
    # Exact for the usual non-negative multipliers; a float only where the schema asks for a
    # fraction.
    return float(value * 10**multiplier) if multiplier >= 0 else value / 10**-multiplier


def _pf(wire: r.PowerFactorWithExcitation) -> PowerFactor:
    # ``excitation`` true = absorbing reactive power = under-excited.
    return PowerFactor(
        displacement=_si(wire.displacement, wire.multiplier), over_excited=not wire.excitation
    )


def _curve(link: r.DERCurveLink | None) -> str | None:
    return None if link is None else link.href


def _w(power: r.ActivePower | None) -> float | None:
    return None if power is None else _si(power.value, power.multiplier)


def settings_from_wire(base: r.DERControlBase) -> ControlSettings:
    """DERControlBase -> ControlSettings (every 2018 mode, rampTms, CSIP-AUS DOE and storage
    modes)."""
    fixed_var = base.opModFixedVar
    droop = base.opModFreqDroop
    return ControlSettings(
        connect=base.opModConnect,
        energize=base.opModEnergize,
        fixed_pf_absorb=None if base.opModFixedPFAbsorbW is None else _pf(base.opModFixedPFAbsorbW),
        fixed_pf_inject=None if base.opModFixedPFInjectW is None else _pf(base.opModFixedPFInjectW),
        fixed_var=None
        if fixed_var is None
        else FixedVar(ref_type=fixed_var.refType, percent=fixed_var.value / 100),
        fixed_w_pct=None if base.opModFixedW is None else base.opModFixedW / 100,
        freq_droop=None
        if droop is None
        else FreqDroop(
            deadband_over_hz=droop.dBOF / 1000,
            deadband_under_hz=droop.dBUF / 1000,
            droop_over=droop.kOF / 1000,
            droop_under=droop.kUF / 1000,
            open_loop_response_s=droop.openLoopTms / 100,
        ),
        freq_watt_curve=_curve(base.opModFreqWatt),
        hfrt_may_trip_curve=_curve(base.opModHFRTMayTrip),
        hfrt_must_trip_curve=_curve(base.opModHFRTMustTrip),
        hvrt_may_trip_curve=_curve(base.opModHVRTMayTrip),
        hvrt_momentary_cessation_curve=_curve(base.opModHVRTMomentaryCessation),
        hvrt_must_trip_curve=_curve(base.opModHVRTMustTrip),
        lfrt_may_trip_curve=_curve(base.opModLFRTMayTrip),
        lfrt_must_trip_curve=_curve(base.opModLFRTMustTrip),
        lvrt_may_trip_curve=_curve(base.opModLVRTMayTrip),
        lvrt_momentary_cessation_curve=_curve(base.opModLVRTMomentaryCessation),
        lvrt_must_trip_curve=_curve(base.opModLVRTMustTrip),
        max_limit_pct=None if base.opModMaxLimW is None else base.opModMaxLimW / 100,
        target_var=None
        if base.opModTargetVar is None
        else _si(base.opModTargetVar.value, base.opModTargetVar.multiplier),
        target_w=_w(base.opModTargetW),
        volt_var_curve=_curve(base.opModVoltVar),
        volt_watt_curve=_curve(base.opModVoltWatt),
        watt_pf_curve=_curve(base.opModWattPF),
        watt_var_curve=_curve(base.opModWattVar),
        export_limit_w=_w(base.opModExpLimW),
        import_limit_w=_w(base.opModImpLimW),
        generation_limit_w=_w(base.opModGenLimW),
        load_limit_w=_w(base.opModLoadLimW),
        storage_target_w=_w(base.opModStorageTargetW),
        ramp_time_s=None if base.rampTms is None else base.rampTms / 100,
    )


def program_from_wire(program: r.DERProgram) -> Program:
    """DERProgram -> Program (identity = mRID; lower primacy wins, PROTOCOL.md §4.7)."""
    return Program(
        program_id=mrid_text(program.mRID),
        primacy=program.primacy,
        href=program.href,
        description=program.description or "",
    )


def control_from_wire(control: r.DERControl, program_id: str) -> Control:
    """DERControl -> Control; ``currentStatus`` 0-5 (2018 values and 2023's Completed) accepted."""
    try:
        status = EventStatus(control.EventStatus.currentStatus)
    except ValueError:
        raise SchemaViolation(
            "/DERControl/EventStatus/currentStatus",
            f"unknown event status {control.EventStatus.currentStatus}",
        ) from None
    return Control(
        mrid=mrid_text(control.mRID),
        program_id=program_id,
        creation_time_s=control.creationTime,
        start_s=control.interval.start,
        duration_s=control.interval.duration,
        settings=settings_from_wire(control.DERControlBase),
        randomize_start_s=control.randomizeStart or 0,
        randomize_duration_s=control.randomizeDuration or 0,
        response_required=int(control.responseRequired or 0),
        reply_to=control.replyTo,
        device_category=None if control.deviceCategory is None else int(control.deviceCategory),
        server_status=status,
        status_time_s=control.EventStatus.dateTime,
        potentially_superseded=control.EventStatus.potentiallySuperseded,
        version=control.version or 0,
        href=control.href,
        description=control.description or "",
    )


def controls_from_wire(
    controls: Sequence[r.DERControl], program_id: str
) -> tuple[tuple[Control, ...], tuple[str, ...]]:
    """A DERControlList's controls, and why each one that cannot be read was left out (issue 15:
    one control the gateway cannot understand, e.g. an unknown ``currentStatus``, must not hide
    the rest of its program; a vanished event is not cancelled, PROTOCOL.md §4 rule 4)."""
    usable: list[Control] = []
    skipped: list[str] = []
    for control in controls:
        try:
            usable.append(control_from_wire(control, program_id))
        except SchemaViolation as exc:
            skipped.append(f"DERControl {mrid_text(control.mRID)}: {exc}")
    return tuple(usable), tuple(skipped)


def default_control_from_wire(default: r.DefaultDERControl, program_id: str) -> DefaultControl:
    """DefaultDERControl -> DefaultControl (enter-service times in s, frequencies in Hz)."""
    return DefaultControl(
        program_id=program_id,
        settings=settings_from_wire(default.DERControlBase),
        mrid=mrid_text(default.mRID),
        set_grad_w=default.setGradW,
        set_soft_grad_w=default.setSoftGradW,
        es_delay_s=None if default.setESDelay is None else default.setESDelay / 100,
        es_randomize_delay_s=None
        if default.setESRandomDelay is None
        else default.setESRandomDelay / 100,
        es_high_freq_hz=None if default.setESHighFreq is None else default.setESHighFreq / 100,
        es_low_freq_hz=None if default.setESLowFreq is None else default.setESLowFreq / 100,
        es_high_volt_pct=None if default.setESHighVolt is None else default.setESHighVolt / 100,
        es_low_volt_pct=None if default.setESLowVolt is None else default.setESLowVolt / 100,
        version=default.version or 0,
        href=default.href,
    )


# ---------------------------------------------------------------------------------------- outgoing


def scaled(value: float) -> tuple[int, int]:
    """SI value -> (int16 significand, power-of-ten multiplier), exact when some multiplier allows.

    Prefers multiplier 0, then finer (-1..-3) for fractions, then coarser (1..9) for large values.
    """
    for multiplier in (0, -1, -2, -3, 1, 2, 3, 4, 5, 6, 7, 8, 9):
        significand = value / 10**multiplier
        rounded = round(significand)
        if _INT16[0] <= rounded <= _INT16[1] and abs(significand - rounded) < 1e-9 * max(
            1.0, abs(significand)
        ):
            return rounded, multiplier
    for multiplier in range(0, 10):
        rounded = round(value / 10**multiplier)
        if _INT16[0] <= rounded <= _INT16[1]:
            return rounded, multiplier
    raise ValueError(f"{value} cannot be written as int16 x 10^multiplier")


def _active(value: float | None) -> r.ActivePower | None:
    if value is None:
        return None
    significand, multiplier = scaled(value)
    return r.ActivePower(value=significand, multiplier=multiplier)


def _apparent(value: float | None) -> r.ApparentPower | None:
    if value is None:
        return None
    significand, multiplier = scaled(value)
    return r.ApparentPower(value=significand, multiplier=multiplier)


def _reactive(value: float | None) -> r.ReactivePower | None:
    if value is None:
        return None
    significand, multiplier = scaled(value)
    return r.ReactivePower(value=significand, multiplier=multiplier)


def _wh(value: float | None) -> r.WattHour | None:
    if value is None:
        return None
    significand, multiplier = scaled(value)
    return r.WattHour(value=significand, multiplier=multiplier)


def _hex8(value: int | None) -> HexBinary8 | None:
    return None if value is None else HexBinary8(value)


def response_to_wire(response: ControlResponse, href: str | None = None) -> r.DERControlResponse:
    """A DERControlResponse ``{createdDateTime, endDeviceLFDI, status, subject}`` (PROTOCOL.md
    §4.16)."""
    return r.DERControlResponse(
        href=href,
        createdDateTime=response.created_s,
        endDeviceLFDI=HexBinary160(int(response.lfdi, 16)),
        status=int(response.status),
        subject=HexBinary128(int(response.mrid, 16)),
        modesResponded=None
        if response.modes_responded is None
        else HexBinary32(response.modes_responded),
    )


_T = TypeVar("_T")


def _if_defined(csipaus_ns: str | None, element: str, value: _T | None) -> _T | None:
    """PROTOCOL.md §5: a CSIP-AUS element is written only under a namespace that defines it (v1.2
    has no ``vppModesSupported``, ``vppModesEnabled`` or ``setMinWh``: they are v1.3 storage's)."""
    return value if csipaus_defines(csipaus_ns, element) else None


def capability_to_wire(
    info: DerCapabilityInfo, *, csipaus_ns: str | None = CSIPAUS_NS
) -> r.DERCapability:
    """DERCapability (nameplate, modesSupported, CSIP-AUS doe/vpp modes as far as the profile's
    namespace ``csipaus_ns`` defines them: PROTOCOL.md §5)."""
    max_w = _active(info.max_w)
    assert max_w is not None
    return r.DERCapability(
        modesSupported=HexBinary32(info.modes_supported),
        rtgMaxW=max_w,
        type=info.der_type,
        rtgMaxVA=_apparent(info.max_va),
        rtgMaxVar=_reactive(info.max_var),
        rtgMaxChargeRateW=_active(info.max_charge_rate_w),
        rtgMaxDischargeRateW=_active(info.max_discharge_rate_w),
        rtgMaxWh=_wh(info.max_wh),
        doeModesSupported=_if_defined(
            csipaus_ns, "doeModesSupported", _hex8(info.doe_modes_supported)
        ),
        vppModesSupported=_if_defined(
            csipaus_ns, "vppModesSupported", _hex8(info.vpp_modes_supported)
        ),
    )


def settings_to_wire(
    info: DerSettingsInfo, *, csipaus_ns: str | None = CSIPAUS_NS
) -> r.DERSettings:
    """DERSettings (``setMaxW`` and ``setGradW`` mandatory; CSIP-AUS doe/vpp modes and
    ``setMinWh`` as far as the profile's namespace ``csipaus_ns`` defines them: PROTOCOL.md §5)."""
    max_w = _active(info.max_w)
    assert max_w is not None
    return r.DERSettings(
        setGradW=info.set_grad_w,
        setMaxW=max_w,
        updatedTime=info.updated_s,
        modesEnabled=None if info.modes_enabled is None else HexBinary32(info.modes_enabled),
        setMaxVA=_apparent(info.max_va),
        setMaxVar=_reactive(info.max_var),
        setMaxChargeRateW=_active(info.max_charge_rate_w),
        setMaxDischargeRateW=_active(info.max_discharge_rate_w),
        setMaxWh=_wh(info.max_wh),
        setMinWh=_if_defined(csipaus_ns, "setMinWh", _wh(info.min_wh)),
        doeModesEnabled=_if_defined(csipaus_ns, "doeModesEnabled", _hex8(info.doe_modes_enabled)),
        vppModesEnabled=_if_defined(csipaus_ns, "vppModesEnabled", _hex8(info.vpp_modes_enabled)),
    )


def status_to_wire(info: DerStatusInfo) -> r.DERStatus:
    """DERStatus; each status carries ``readingTime`` as its dateTime. SoC in hundredths of a
    percent."""
    at = info.reading_s

    def connect(value: int | None) -> r.ConnectStatusType | None:
        return None if value is None else r.ConnectStatusType(dateTime=at, value=HexBinary8(value))

    return r.DERStatus(
        readingTime=at,
        alarmStatus=None if info.alarm_status is None else HexBinary32(info.alarm_status),
        genConnectStatus=connect(info.gen_connect_status),
        inverterStatus=None
        if info.inverter_status is None
        else r.InverterStatusType(dateTime=at, value=info.inverter_status),
        operationalModeStatus=None
        if info.operational_mode_status is None
        else r.OperationalModeStatusType(dateTime=at, value=info.operational_mode_status),
        stateOfChargeStatus=None
        if info.state_of_charge_pct is None
        else r.StateOfChargeStatusType(dateTime=at, value=round(info.state_of_charge_pct * 100)),
        storConnectStatus=connect(info.stor_connect_status),
    )


def availability_to_wire(info: DerAvailabilityInfo) -> r.DERAvailability:
    """DERAvailability; reserve percentages in hundredths of a percent on the wire."""
    return r.DERAvailability(
        readingTime=info.reading_s,
        availabilityDuration=info.availability_duration_s,
        maxChargeDuration=info.max_charge_duration_s,
        reserveChargePercent=None
        if info.reserve_charge_pct is None
        else round(info.reserve_charge_pct * 100),
        reservePercent=None if info.reserve_pct is None else round(info.reserve_pct * 100),
        statVarAvail=_reactive(info.stat_var_avail),
        statWAvail=_active(info.stat_w_avail),
    )


# uom codes of the ReadingType (PROTOCOL.md §2.8)
_UOM: dict[Quantity, int] = {
    Quantity.ACTIVE_POWER_W: 38,
    Quantity.REACTIVE_POWER_VAR: 63,
    Quantity.VOLTAGE_V: 29,
    Quantity.FREQUENCY_HZ: 33,
    Quantity.STORED_ENERGY_WH: 72,
}


def reading_set_to_wire(
    summary: IntervalSummary, mrid: int, power_of_ten: int = 0
) -> r.MirrorReadingSet:
    """One MirrorReadingSet posting the interval *average* (PROTOCOL.md §2.8).

    The value is ``mean / 10**power_of_ten`` rounded, matching the ReadingType's
    powerOfTenMultiplier.
    """
    interval = r.DateTimeInterval(start=summary.start_s, duration=summary.interval_s)
    value = round(summary.mean / 10**power_of_ten)
    return r.MirrorReadingSet(
        mRID=HexBinary128(mrid),
        timePeriod=interval,
        Reading=(r.Reading(value=value, timePeriod=interval),),
    )


#: KindType (2030.5-2018): 12 energy, 37 power.
_KIND_ENERGY, _KIND_POWER = 12, 37
#: FlowDirectionType: 0 not applicable, 1 forward.
_FLOW_NONE, _FLOW_FORWARD = 0, 1


def reading_type_for(quantity: Quantity, interval_s: int, power_of_ten: int = 0) -> r.ReadingType:
    """The ReadingType of an averaged quantity (accumulation 12 instantaneous, data qualifier 2
    average). Stored energy (Wh, uom 72; PROTOCOL.md §2.8, CSIP-AUS v1.3 storage) is an *energy*
    (KindType 12) held in the battery, not a flow across the meter, so its flowDirection is 0 (not
    applicable); the other quantities keep kind 37 and flowDirection 1."""
    stored = quantity is Quantity.STORED_ENERGY_WH
    return r.ReadingType(
        uom=_UOM[quantity],
        powerOfTenMultiplier=power_of_ten,
        intervalLength=interval_s,
        dataQualifier=2,
        kind=_KIND_ENERGY if stored else _KIND_POWER,
        flowDirection=_FLOW_NONE if stored else _FLOW_FORWARD,
        accumulationBehaviour=12,
        commodity=1,
        phase=0,
    )
