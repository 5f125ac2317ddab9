"""The continuous invariant monitor on hand-made inputs: each invariant fires when broken, and the
documented exemptions (disturbances) hold."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

from events.control_events import (
    DefaultChanged,
    LimitsInForceChanged,
    ProgramsChanged,
    RampPlanned,
    ResponseAcked,
)
from events.der_model import ControlSettings, DefaultControl, Mode, Program, ResponseStatus
from events.envelope import Recorded
from events.hardware_events import Clamp, LimitsApplied, TelemetrySampled
from sep2gw.invariants import MONITOR_FAILED, Monitor, recovery_s
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.simserver import (
    ClockSkew,
    FailRequests,
    RecordedRequest,
    UtilityState,
    parse_scenario,
)
from statemachines.controls import ControlsState
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary128, HexBinary160

T0 = 1_764_115_200.0
SCENARIO = parse_scenario(
    """
[server]
poll_rate_s = 60
[[programs]]
id = "net"
primacy = 10
""",
    source="monitor test",
)


class _Clock:
    def __init__(self) -> None:
        self.t = T0
        self.skew_s = 0.0  # as a SimClock stepped by clock_skew faults

    def now(self) -> float:
        return self.t


class _Server:
    """What the monitor reads of the server: its state (pollRates, programs) and clock."""

    def __init__(self) -> None:
        self.state = UtilityState(SCENARIO, start=T0)
        self.clock = _Clock()
        self.validator = object()  # a strict server: it validates request bodies


def monitor() -> tuple[Monitor, list[int]]:
    stops: list[int] = []
    m = Monitor(SCENARIO)
    battery = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=T0)
    m.attach(server=_Server(), battery=battery, stop=lambda: stops.append(1))  # type: ignore[arg-type]
    m._gateway = SimpleNamespace(actors={})  # type: ignore[assignment]  # a gateway is up
    return m, stops


def request(
    t: float, method: str, target: str, body: Any = None, status: int = 200
) -> RecordedRequest:
    return RecordedRequest(
        time=T0 + t,
        method=method,
        target=target,
        path=target.partition("?")[0],
        status=status,
        lfdi="AB" * 20,
        body=body,
        location=None,
        reason="",
        alpn="h2",
    )


def poll(m: Monitor, t: float) -> None:
    m.on_request(request(t, "GET", "/derp/1/derc?s=0&l=100"))


def test_polls_at_the_rate_hold() -> None:
    m, stops = monitor()
    for t in (0, 60, 121, 180):
        poll(m, t)
    assert m.violation is None and not stops
    assert m.checks["polls never more often than asked"] == 3


def test_polling_faster_than_asked_is_a_violation() -> None:
    m, stops = monitor()
    poll(m, 0)
    poll(m, 30)
    assert m.violation is not None and m.violation.invariant == "polls never more often than asked"
    assert m.violation.at_s == T0 + 30 and stops == [1]


def test_a_later_page_is_not_a_second_poll() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_request(request(0.5, "GET", "/derp/1/derc?s=100&l=100"))
    poll(m, 60)
    assert m.violation is None


def test_an_overdue_poll_is_seen_at_the_next_request_of_any_kind() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_request(request(95, "GET", "/dcap"))
    assert m.violation is not None and m.violation.invariant == "polls within 1.5x pollRate"
    assert m.violation.at_s == T0 + 91  # when 1.5 x 60 s (+1 s slack) ran out


def test_the_recovery_poll_after_a_fault_window_is_exempt_the_next_one_is_not() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_action(T0 + 30, FailRequests(at_s=30, duration_s=100))
    m.on_request(request(200, "GET", "/dcap"))  # overdue, but the client may still be backing off
    poll(m, 210)  # the recovery poll: its gap touches the window
    assert m.violation is None
    poll(m, 215)  # the next one is judged again
    assert m.violation is not None and m.violation.invariant == "polls never more often than asked"


def test_an_outstanding_poll_is_excused_only_until_recovery_after_the_window() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_action(T0 + 30, FailRequests(at_s=30, duration_s=100))
    m.on_request(request(130 + recovery_s(60) - 5, "GET", "/dcap"))
    assert m.violation is None
    m.on_request(request(130 + recovery_s(60) + 5, "GET", "/dcap"))
    assert m.violation is not None and m.violation.invariant == "polls within 1.5x pollRate"


def response(t: float, status: int, mrid: int = 0xC1) -> RecordedRequest:
    body = r.Response(
        href=None,
        createdDateTime=int(T0 + t),
        endDeviceLFDI=HexBinary160(0xAB),
        status=status,
        subject=HexBinary128(mrid),
    )
    return request(t, "POST", "/rsps/1/rsp", body, status=201)


def acked(m: Monitor, t: float, status: int, mrid: int = 0xC1) -> None:
    event = ResponseAcked(
        mrid=f"{mrid:032X}", status=ResponseStatus(status), http_status=201, at_s=T0 + t
    )
    m.on_records([Recorded(1, "response", 1, T0 + t, t, event, b"")])


def test_a_response_accepted_again_after_its_acknowledgement_is_a_duplicate() -> None:
    m, _ = monitor()
    m.on_request(response(0, 1))
    acked(m, 0, 1)
    m.on_request(response(5, 1))
    assert m.violation is not None and m.violation.invariant == "no duplicate responses"


def test_a_response_resent_after_a_lost_answer_is_counted_not_a_violation() -> None:
    """The gateway never logged the first one's acknowledgement (a crash took the answer): its
    retry is §4 rule 16's, and no client can tell that delivery from a lost one."""
    m, _ = monitor()
    m.on_request(response(0, 1))
    m.on_request(response(5, 1))
    assert m.violation is None and m.ambiguous_deliveries == 1


def test_completed_before_started_is_an_illegal_sequence() -> None:
    m, _ = monitor()
    m.on_request(response(0, 1))
    m.on_request(response(5, 3))
    assert m.violation is not None and m.violation.invariant == "legal response sequences"


def test_a_reading_set_off_the_minute_is_a_violation() -> None:
    m, _ = monitor()

    def reading(start: int) -> r.MirrorMeterReading:
        return r.MirrorMeterReading(
            mRID=HexBinary128(1),
            MirrorReadingSet=(
                r.MirrorReadingSet(
                    mRID=HexBinary128(2),
                    timePeriod=r.DateTimeInterval(start=start, duration=60),
                ),
            ),
        )

    aligned = reading(1_764_115_260)
    m.on_request(request(0, "POST", "/mup/1", aligned, status=201))
    assert m.violation is None and m.checks["readings minute-aligned"] == 1
    off = reading(1_764_115_265)
    m.on_request(request(1, "POST", "/mup/1", off, status=201))
    assert m.violation is not None and m.violation.invariant == "readings minute-aligned"


def test_a_schema_invalid_request_is_a_violation() -> None:
    """Issue 14 / PROTOCOL.md §5: the strict server answered a request 400 because its body was
    not valid against the served schemas; a valid one is a check that held."""
    m, stops = monitor()
    status = r.DERStatus(readingTime=1_764_115_260)
    m.on_request(request(0, "PUT", "/edev/1/der/1/ders", status, status=204))
    assert m.violation is None and m.checks["requests schema-valid"] == 1
    invalid = dataclasses.replace(
        request(1, "PUT", "/edev/1/der/1/dercap", status=400),
        schema_error="not valid against csipaus-core.xsd: Element 'x': This element is not expected.",
    )
    m.on_request(invalid)
    assert m.violation is not None and m.violation.invariant == "requests schema-valid"
    assert "PUT /edev/1/der/1/dercap: not valid against csipaus-core.xsd" in m.violation.detail
    assert stops == [1]


def test_a_setpoint_beyond_the_rating_is_a_violation() -> None:
    m, _ = monitor()
    assert m._battery is not None
    m._battery.setpoint_w = 7_000.0  # rated 5 kW
    m.on_request(request(0, "GET", "/dcap"))
    assert m.violation is not None
    assert m.violation.invariant == "nameplate and settings never exceeded"


def test_a_write_beyond_the_wmax_setting_is_caught_at_the_write() -> None:
    m, _ = monitor()
    assert m._battery is not None
    m._battery.settings_max_w = 3_000.0
    m._battery.setpoint_w = 3_500.0  # within the 5 kW rating, beyond the 3 kW WMax setting
    m.on_hardware_write()
    assert m.violation is not None
    assert m.violation.invariant == "nameplate and settings never exceeded"
    assert "3000" in m.violation.detail


# -- the invariants on the log: each fires when broken -------------------------------------------


def limits(
    t: float,
    settings: ControlSettings,
    sources: dict[Any, str],
    ramps_ended: tuple[Mode, ...] = (),
) -> Recorded:
    event = LimitsInForceChanged(
        settings=settings,
        sources=sources,
        next_change_s=None,
        ramps_ended=ramps_ended,
        at_s=T0 + t,
    )
    return Recorded(1, "controls", 1, T0 + t, t, event, b"")


def applied(t: float, settings: ControlSettings) -> Recorded:
    event = LimitsApplied(at_s=T0 + t, settings=settings, applied=())
    return Recorded(2, "hardware", 1, T0 + t, t, event, b"")


def test_limits_in_force_that_match_arbitration_hold() -> None:
    m, _ = monitor()
    m.on_records([limits(0, ControlSettings(), {})])
    assert m.violation is None and m.checks["limits in force come from arbitration"] == 1


def test_a_limit_in_force_that_no_control_or_default_supplies_is_a_violation() -> None:
    """Nothing was received, so arbitration gives no limit: a recorded 1 kW export limit from a
    control nobody sent is not from the arbitration winner or the default."""
    m, _ = monitor()
    m.on_records(
        [limits(0, ControlSettings(export_limit_w=1000.0), {"export_limit_w": "control:X"})]
    )
    assert m.violation is not None
    assert m.violation.invariant == "limits in force come from arbitration"


def test_hardware_applying_a_limit_not_in_force_is_a_violation() -> None:
    m, _ = monitor()
    m.on_records([applied(0, ControlSettings(export_limit_w=999.0))])
    assert m.violation is not None
    assert m.violation.invariant == "hardware applies the limits in force"


def test_hardware_applying_the_limits_in_force_holds() -> None:
    m, _ = monitor()
    m.on_records([applied(0, ControlSettings())])
    assert m.violation is None and m.checks["hardware applies the limits in force"] == 1


def test_a_live_controls_state_that_differs_from_the_fold_is_a_violation() -> None:
    m, _ = monitor()
    live = ControlsState(settings=ControlSettings(export_limit_w=1.0))
    controls = SimpleNamespace(core=SimpleNamespace(state=live))
    m._gateway = SimpleNamespace(actors={"controls": controls})  # type: ignore[assignment]
    m.on_records([limits(0, ControlSettings(), {})])
    assert m.violation is not None and m.violation.invariant == "replay equals live state"


def test_a_live_controls_state_equal_to_the_fold_holds() -> None:
    m, _ = monitor()
    controls = SimpleNamespace(core=SimpleNamespace(state=ControlsState()))
    m._gateway = SimpleNamespace(actors={"controls": controls})  # type: ignore[assignment]
    m.on_records([limits(0, ControlSettings(), {})])
    assert m.violation is None and m.checks["replay equals live state"] == 1


def test_limits_that_lag_arbitration_for_more_than_lag_s_are_a_violation() -> None:
    """A default arrived but no LimitsInForceChanged followed: arbitration says 5 kW is in force,
    the log says nothing is. Within LAG_S that is the actor not having committed yet; after, a
    violation."""
    m, _ = monitor()
    limits_5k = ControlSettings(export_limit_w=5000.0)
    program = ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=T0)
    default = DefaultChanged(
        program_id="P1", default=DefaultControl(program_id="P1", settings=limits_5k), at_s=T0
    )
    m.on_records([Recorded(1, "controls", 1, T0, 0.0, program, b"")])
    m.on_records([Recorded(2, "controls", 2, T0 + 1, 1.0, default, b"")])
    m.on_records([Recorded(3, "controls", 3, T0 + 2, 2.0, program, b"")])
    assert m.violation is None
    m.on_records([Recorded(4, "controls", 4, T0 + 4, 4.0, program, b"")])
    assert m.violation is not None
    assert m.violation.invariant == "limits in force come from arbitration"
    assert "arbitration gives {export_limit_w=5000.0}" in m.violation.detail


def test_poll_cadence_is_judged_on_the_clock_without_the_servers_steps() -> None:
    """The utility's clock steps back 600 s: polls that keep their cadence on the device's clock
    hold (their server times jump back); a schedule left on the old clock pauses them, caught."""
    m, _ = monitor()
    poll(m, 0)
    poll(m, 60)
    m._server.clock.skew_s = -600.0  # type: ignore[union-attr]
    poll(m, 120 - 600)
    assert m.violation is None
    poll(m, 180 - 600)
    assert m.violation is None and m.checks["polls within 1.5x pollRate"] == 3
    poll(m, 240 - 600 + 600)  # the old bug: paused by the step
    assert m.violation is not None and m.violation.invariant == "polls within 1.5x pollRate"


def test_a_step_back_re_enters_a_fault_window_on_the_servers_clock() -> None:
    """Fault windows are on the server's clock: after a step back it answers 503 again, so the
    poll after that second pass is exempt, though on the steady clock the window was long over."""
    m, _ = monitor()
    poll(m, 0)
    m.on_action(T0 + 30, FailRequests(at_s=30, duration_s=20))
    poll(m, 60)  # the recovery poll after the window
    m._server.clock.skew_s = -40.0  # type: ignore[union-attr]
    m.on_action(T0 + 70, ClockSkew(at_s=70, seconds=-40))
    # from steady 70 the server reads 30 again: failing until it reads 50 (steady 90)
    poll(m, 160 - 40)  # 100 s after the last success on the steady clock
    assert m.violation is None
    poll(m, 170 - 40)
    assert m.violation is not None and m.violation.invariant == "polls never more often than asked"


def test_without_a_step_the_same_gap_is_a_violation() -> None:
    m, _ = monitor()
    poll(m, 0)
    m.on_action(T0 + 30, FailRequests(at_s=30, duration_s=20))
    poll(m, 60)
    poll(m, 160)
    assert m.violation is not None and m.violation.invariant == "polls within 1.5x pollRate"


def test_a_ramp_point_of_the_command_a_step_just_replaced_is_accepted_within_lag_s() -> None:
    """The swarm found it: a ramp was running, a step to another value ended it (the core ends a
    ramp whose target is no longer in force, and the record says so), and the hardware's next
    apply, a moment later, still carried the old command's ramp point. Within LAG_S that is the
    command in flight."""
    ramp = RampPlanned(
        mode=Mode.TARGET_W, from_value=0.0, to_value=-2000.0, start_s=T0, end_s=T0 + 80, at_s=T0
    )
    m, _ = monitor()
    m._check_arbitration = lambda event: None  # type: ignore[method-assign]  # not under test
    m.on_records([Recorded(1, "controls", 1, T0, 0.0, ramp, b"")])
    m.on_records([limits(0, ControlSettings(target_w=-2000.0), {})])
    m.on_records([limits(40, ControlSettings(target_w=2500.0), {}, (Mode.TARGET_W,))])
    assert Mode.TARGET_W not in m.fold.ramps
    m.on_records([applied(41, ControlSettings(target_w=-1025.0))])
    assert m.violation is None
    m.on_records([applied(45, ControlSettings(target_w=-1125.0))])
    assert m.violation is not None
    assert m.violation.invariant == "hardware applies the limits in force"


def test_a_bug_in_the_monitor_is_reported_as_one_and_never_reaches_the_gateway() -> None:
    """The world calls the monitor from inside the gateway's log writer: an exception there would
    surface as a gateway actor failing (it did once: a KeyError on a ramp of a mode the monitor
    did not track). It is a violation naming the monitor instead, and the world stops."""
    m, stops = monitor()
    m._check_site = lambda sample: {}["boom"]  # type: ignore[method-assign]
    sample = TelemetrySampled(at_s=T0, site_w=0.0, der_w=0.0)
    m.on_records([Recorded(1, "hardware", 1, T0, 0.0, sample, b"")])
    assert m.violation is not None and m.violation.invariant == MONITOR_FAILED
    assert "KeyError" in m.violation.detail and "on_records" in m.violation.detail
    assert stops == [1]


def storage_monitor() -> tuple[Monitor, list[int]]:
    """A monitor judging the storage target alone: these hand-made writes carry no arbitration
    behind them, which "hardware applies the limits in force" would (rightly) refuse."""
    m, stops = monitor()
    m._check_applied = lambda *_: None  # type: ignore[method-assign]
    return m, stops


def _applied(t: float, setpoint: float, *clamps: str, **limits: float) -> Recorded:
    event = LimitsApplied(
        at_s=T0 + t,
        settings=ControlSettings(**limits),
        applied=tuple(sorted(Mode(name) for name in limits)),
        setpoint_w=setpoint,
        wrote=True,
        clamps=clamps,
    )
    return Recorded(int(t) + 1, "hardware", int(t) + 1, T0 + t, t, event, b"")


def _sampled(t: float, soc_pct: float) -> Recorded:
    event = TelemetrySampled(at_s=T0 + t, soc_pct=soc_pct)
    return Recorded(int(t) + 1, "hardware", int(t) + 1, T0 + t, t, event, b"")


def _clamp(requested: float, applied: float, bound: str) -> Clamp:
    return Clamp(mode="storage_target_w", requested=requested, applied=applied, bound=bound)


def test_a_battery_ramping_to_its_storage_target_and_held_by_the_export_limit_holds() -> None:
    m, stops = storage_monitor()
    m.on_records([_applied(0, 4000.0, storage_target_w=4000.0)])  # from nothing: at once
    m.on_records([_applied(1, 1000.0, storage_target_w=-2000.0)])  # rate limited on its way
    m.on_records([_applied(2, -2000.0, storage_target_w=-2000.0)])
    m.on_records([_applied(3, 4000.0, storage_target_w=4000.0)])
    held = _clamp(4000.0, 1500.0, "export_limit_w")
    m.on_records([_applied(4, 1500.0, held, storage_target_w=4000.0, export_limit_w=1500.0)])
    assert (m.violation, stops) == (None, [])
    assert m.checks["battery follows the storage target"] == 5


def test_a_setpoint_moving_away_from_the_storage_target_is_a_violation() -> None:
    m, _ = storage_monitor()
    m.on_records([_applied(0, 3000.0, storage_target_w=3000.0)])
    m.on_records([_applied(1, 2000.0, storage_target_w=4000.0)])
    assert m.violation is not None
    assert m.violation.invariant == "battery follows the storage target"


def test_a_storage_target_held_by_a_limit_not_in_force_is_a_violation() -> None:
    m, _ = storage_monitor()
    held = _clamp(4000.0, 1500.0, "export_limit_w")
    m.on_records([_applied(0, 1500.0, held, storage_target_w=4000.0)])
    assert m.violation is not None
    assert "export_limit_w is not in force" in m.violation.detail


def test_a_battery_refused_a_charge_it_could_take_is_a_violation_a_full_one_is_not() -> None:
    """The loop may stop charging only at the state-of-charge ceiling (full: 0 W by max_charge_w)."""
    m, _ = storage_monitor()
    assert m._battery is not None
    held = _clamp(-3000.0, 0.0, "max_charge_w")
    m._battery.stored_wh = m._battery.battery.capacity_wh  # the battery is full
    m.on_records([_sampled(0, 99.8), _applied(1, 0.0, held, storage_target_w=-3000.0)])
    assert m.violation is None
    m, _ = storage_monitor()  # at 50 %: it could charge
    m.on_records([_sampled(0, 50.0), _applied(1, 0.0, held, storage_target_w=-3000.0)])
    assert m.violation is not None
    assert "no charge allowed at 50 %" in m.violation.detail


def test_a_storage_target_beside_a_target_of_the_whole_der_is_not_judged() -> None:
    m, _ = storage_monitor()
    m.on_records([_applied(0, 1000.0, storage_target_w=4000.0, target_w=1000.0)])
    assert m.violation is None
    assert m.checks["battery follows the storage target"] == 0
