"""Wire <-> domain mapping: multipliers applied, percent kept as percent, SI units in names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.der_info import (
    ControlResponse,
    DerAvailabilityInfo,
    DerCapabilityInfo,
    DerSettingsInfo,
    DerStatusInfo,
)
from events.der_model import EventStatus, Mode, ResponseStatus
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity
from transport.sep2 import codec, mapping
from transport.sep2 import resources as r
from transport.sep2.errors import SchemaViolation

CORPUS = Path(__file__).parent / "corpus"


def _control() -> r.DERControl:
    return codec.decode(
        (CORPUS / "envoy_dercontrol_list.xml").read_bytes(), r.DERControlList
    ).DERControl[0]


def test_control_maps_times_identity_and_status() -> None:
    ctl = mapping.control_from_wire(_control(), program_id="00000000000000000000000000000ABC")
    assert ctl.mrid == "A1B2C3D4E5F6A7B8C9D0E1F200037244"
    assert (ctl.start_s, ctl.duration_s, ctl.creation_time_s) == (1700000300, 300, 1700000000)
    assert ctl.server_status is EventStatus.COMPLETED
    assert ctl.randomize_start_s == -30
    assert ctl.response_required == 3 and ctl.reply_to == "/rsp"
    assert ctl.device_category == 0


def test_multipliers_applied_and_percent_kept_as_percent() -> None:
    s = mapping.control_from_wire(_control(), program_id="P").settings
    assert s.import_limit_w == 1500.0  # 150 x 10^1
    assert s.export_limit_w == 1500.0
    assert s.storage_target_w == -2000.0
    assert s.max_limit_pct == 99.5  # PerCent hundredths -> percent
    assert s.ramp_time_s == 25.0  # rampTms hundredths of a second
    assert s.modes() == {
        Mode.IMPORT_LIMIT_W,
        Mode.EXPORT_LIMIT_W,
        Mode.STORAGE_TARGET_W,
        Mode.MAX_LIMIT_PCT,
    }


def test_every_2018_mode_maps() -> None:
    curve = r.DERCurveLink(href="/c/1")
    base = r.DERControlBase(
        opModConnect=False,
        opModEnergize=True,
        opModFixedPFAbsorbW=r.PowerFactorWithExcitation(
            displacement=95, excitation=True, multiplier=-2
        ),
        opModFixedPFInjectW=r.PowerFactorWithExcitation(
            displacement=9, excitation=False, multiplier=-1
        ),
        opModFixedVar=r.FixedVar(refType=1, value=-1250),
        opModFixedW=-5000,
        opModFreqDroop=r.FreqDroopType(dBOF=36, dBUF=17, kOF=50, kUF=40, openLoopTms=500),
        opModFreqWatt=curve,
        opModHFRTMayTrip=curve,
        opModHFRTMustTrip=curve,
        opModHVRTMayTrip=curve,
        opModHVRTMomentaryCessation=curve,
        opModHVRTMustTrip=curve,
        opModLFRTMayTrip=curve,
        opModLFRTMustTrip=curve,
        opModLVRTMayTrip=curve,
        opModLVRTMomentaryCessation=curve,
        opModLVRTMustTrip=curve,
        opModMaxLimW=5000,
        opModTargetVar=r.ReactivePower(multiplier=2, value=-3),
        opModTargetW=r.ActivePower(multiplier=-1, value=25),
        opModVoltVar=curve,
        opModVoltWatt=curve,
        opModWattPF=curve,
        opModWattVar=curve,
        opModGenLimW=r.ActivePower(multiplier=3, value=2),
        opModLoadLimW=r.ActivePower(multiplier=0, value=7),
    )
    s = mapping.settings_from_wire(base)
    assert s.modes() == set(Mode) - {
        Mode.EXPORT_LIMIT_W,
        Mode.IMPORT_LIMIT_W,
        Mode.STORAGE_TARGET_W,
    }
    assert s.fixed_pf_absorb is not None and s.fixed_pf_absorb.displacement == pytest.approx(0.95)
    assert s.fixed_pf_absorb.over_excited is False
    assert s.fixed_pf_inject is not None and s.fixed_pf_inject.over_excited is True
    assert s.fixed_var is not None and s.fixed_var.percent == -12.5
    assert s.fixed_w_pct == -50.0
    assert s.freq_droop is not None and s.freq_droop.deadband_over_hz == 0.036
    assert s.freq_droop.open_loop_response_s == 5.0
    assert s.target_var == -300.0 and s.target_w == 2.5
    assert s.generation_limit_w == 2000.0 and s.load_limit_w == 7.0
    assert s.volt_var_curve == "/c/1"


def test_unknown_event_status_is_a_typed_error() -> None:
    ctl = _control()
    future = r.DERControl(
        **{f: getattr(ctl, f) for f in ctl.__struct_fields__ if f != "EventStatus"},
        EventStatus=r.EventStatus(currentStatus=9, dateTime=0, potentiallySuperseded=False),
    )
    with pytest.raises(SchemaViolation):
        mapping.control_from_wire(future, program_id="P")


def test_refusal_one_unreadable_control_leaves_the_rest_of_its_program_going_on() -> None:
    """Issue 15 point 1: a control with an unknown currentStatus is left out, with its reason;
    the other controls of the list still reach the controls actor."""
    ctl = _control()
    future = r.DERControl(
        **{f: getattr(ctl, f) for f in ctl.__struct_fields__ if f not in ("EventStatus", "mRID")},
        mRID=type(ctl.mRID)(0xBAD),
        EventStatus=r.EventStatus(currentStatus=9, dateTime=0, potentiallySuperseded=False),
    )
    usable, skipped = mapping.controls_from_wire([future, ctl], program_id="P")
    assert [c.mrid for c in usable] == [mapping.mrid_text(int(ctl.mRID))]
    assert len(skipped) == 1 and "00000BAD" in skipped[0] and "unknown event status 9" in skipped[0]


def test_program_and_default_map() -> None:
    prog = codec.decode((CORPUS / "derprogram_list.xml").read_bytes(), r.DERProgramList)
    p = mapping.program_from_wire(prog.DERProgram[0])
    assert p.program_id == "00000000000000000000000000000ABC" and p.primacy == 1
    dflt = codec.decode((CORPUS / "default_der_control.xml").read_bytes(), r.DefaultDERControl)
    d = mapping.default_control_from_wire(dflt, p.program_id)
    assert d.settings.export_limit_w == 5000.0 and d.settings.energize is True
    assert d.set_grad_w == 27 and d.mrid == "00000000000000000000000000000D0E"


@given(st.floats(-3.2e13, 3.2e13, allow_nan=False))
def test_scaled_values_fit_int16_and_round_trip(value: float) -> None:
    significand, multiplier = mapping.scaled(value)
    assert -(2**15) <= significand < 2**15
    back = significand * 10.0**multiplier
    assert abs(back - value) <= max(0.5 * 10.0**multiplier, 1e-9 * abs(value))


def test_response_maps_to_der_control_response() -> None:
    rsp = mapping.response_to_wire(
        ControlResponse(
            mrid="A1B2C3D4E5F6A7B8C9D0E1F200037244",
            status=ResponseStatus.STARTED,
            created_s=1700000001,
            lfdi="3E4F45AB31EDFE5B67E343E5E4562E31984E23E5",
        )
    )
    out = codec.encode(rsp)
    assert b"<subject>A1B2C3D4E5F6A7B8C9D0E1F200037244</subject>" in out
    assert b"<status>2</status>" in out
    assert b"<endDeviceLFDI>3E4F45AB31EDFE5B67E343E5E4562E31984E23E5</endDeviceLFDI>" in out


def test_der_info_maps_with_si_units() -> None:
    cap = mapping.capability_to_wire(
        DerCapabilityInfo(
            der_type=83,
            modes_supported=0x500088,
            max_w=5000,
            max_wh=13500,
            doe_modes_supported=0x0F,
        )
    )
    assert cap.rtgMaxW == r.ActivePower(value=5000, multiplier=0)
    assert cap.rtgMaxWh == r.WattHour(value=13500, multiplier=0)
    sets = mapping.settings_to_wire(
        DerSettingsInfo(updated_s=5, max_w=50000, set_grad_w=27, min_wh=1000.5),
        csipaus_ns=codec.CSIPAUS_NS_V13_STORAGE,
    )
    assert sets.setMaxW == r.ActivePower(value=5000, multiplier=1)
    assert sets.setMinWh == r.WattHour(value=10005, multiplier=-1)
    status = mapping.status_to_wire(
        DerStatusInfo(reading_s=7, gen_connect_status=0b111, state_of_charge_pct=55.5)
    )
    assert status.genConnectStatus == r.ConnectStatusType(dateTime=7, value=r.HexBinary8(7))
    assert status.stateOfChargeStatus == r.StateOfChargeStatusType(dateTime=7, value=5550)
    avail = mapping.availability_to_wire(
        DerAvailabilityInfo(reading_s=7, stat_w_avail=3000, reserve_pct=20)
    )
    assert avail.reservePercent == 2000
    for obj in (cap, status, avail):
        assert codec.decode(codec.encode(obj), type(obj)) == obj
    ns = codec.CSIPAUS_NS_V13_STORAGE
    assert codec.decode(codec.encode(sets, csipaus_ns=ns), type(sets)) == sets


def test_der_info_writes_only_the_csipaus_elements_the_namespace_defines() -> None:
    """PROTOCOL.md §5: v1.2 (``https://csipaus.org/ns``) has no vpp modes or ``setMinWh``; the
    v1.3 storage namespace has them; plain 2018 has no extension element at all."""
    cap_info = DerCapabilityInfo(
        der_type=80,
        modes_supported=0x500088,
        max_w=5000,
        doe_modes_supported=0x0F,
        vpp_modes_supported=0x01,
    )
    set_info = DerSettingsInfo(
        updated_s=5,
        max_w=5000,
        set_grad_w=27,
        min_wh=500,
        doe_modes_enabled=0x0F,
        vpp_modes_enabled=0x01,
    )
    v12_cap = mapping.capability_to_wire(cap_info, csipaus_ns=codec.CSIPAUS_NS)
    v12_set = mapping.settings_to_wire(set_info, csipaus_ns=codec.CSIPAUS_NS)
    assert (v12_cap.doeModesSupported, v12_cap.vppModesSupported) == (0x0F, None)
    assert (v12_set.doeModesEnabled, v12_set.vppModesEnabled, v12_set.setMinWh) == (
        0x0F,
        None,
        None,
    )
    for obj in (v12_cap, v12_set):
        out = codec.encode(obj, csipaus_ns=codec.CSIPAUS_NS)
        assert b"vppModes" not in out and b"setMinWh" not in out
    ns = codec.CSIPAUS_NS_V13_STORAGE
    storage_cap = mapping.capability_to_wire(cap_info, csipaus_ns=ns)
    storage_set = mapping.settings_to_wire(set_info, csipaus_ns=ns)
    assert storage_cap.vppModesSupported == 0x01
    assert (storage_set.vppModesEnabled, storage_set.setMinWh) == (
        0x01,
        r.WattHour(value=500, multiplier=0),
    )
    plain = mapping.settings_to_wire(set_info, csipaus_ns=None)
    assert b"csipaus" not in codec.encode(plain, csipaus_ns=None)


def test_interval_average_becomes_a_mirror_reading_set() -> None:
    summary = IntervalSummary(
        point=MeasurementPoint.SITE,
        quantity=Quantity.ACTIVE_POWER_W,
        start_s=1700000040,
        interval_s=300,
        mean=1234.4,
        minimum=1000,
        maximum=1500,
        samples=300,
    )
    mrs = mapping.reading_set_to_wire(summary, mrid=0xABC)
    assert mrs.Reading[0].value == 1234
    assert mrs.timePeriod == r.DateTimeInterval(start=1700000040, duration=300)
    rt = mapping.reading_type_for(Quantity.ACTIVE_POWER_W, 300)
    assert rt.uom == 38 and rt.dataQualifier == 2


def test_stored_energy_is_an_energy_reading_with_no_flow_direction() -> None:
    """PROTOCOL.md §2.8 / CSIP-AUS v1.3 storage: the DER MirrorUsagePoint's stored energy is Wh
    (uom 72), KindType 12 (energy), flowDirection 0 (not applicable): energy held, not a flow; the
    powers stay kind 37, forward."""
    stored = mapping.reading_type_for(Quantity.STORED_ENERGY_WH, 300)
    assert (stored.uom, stored.kind, stored.flowDirection) == (72, 12, 0)
    power = mapping.reading_type_for(Quantity.ACTIVE_POWER_W, 300)
    assert (power.uom, power.kind, power.flowDirection) == (38, 37, 1)
