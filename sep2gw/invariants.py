"""Invariants of a simulated world, checked continuously while it runs (issue 8, scope 3).

The world feeds a :class:`Monitor` everything that happens: each batch the gateway's log writer
commits (``on_records``), each request the utility server answered (``on_request``), each utility
action and fault the scenario applied (``on_action``), each write the battery accepted
(``on_hardware_write``), and the gateway's crashes and restarts (``gateway_down`` /
``gateway_up``). The monitor checks after each of them and stops the world at
the first violation (``stop``), recording it with the simulated time.

The invariants, precisely:

``limits in force come from arbitration``
    Every ``LimitsInForceChanged`` record equals what §4 rules 7 and 10 give (the arbitration of the
    log's fold just before it, at its ``at_s``): same settings, same supplier per mode. And the
    recorded limits never lag what arbitration gives for longer than ``LAG_S`` of gateway time while
    a gateway is up (checked whenever a record is committed).

``hardware applies the limits in force``
    Every ``LimitsApplied`` the hardware actor records carries, for each mode, the value the log
    says is in force — or, for a mode with a planned ramp (§4 rule 11), a value between the ramp's
    ends; a value in force (or a point of a ramp then planned) at any time in the last ``LAG_S``
    (monotonic: the server clock may step in between) is also accepted (the command reaches the hardware actor after the controls
    actor's append).

``nameplate and settings never exceeded``
    Every setpoint the hardware actor wrote (``LimitsApplied.setpoint_w``) and what the battery
    holds (its setpoint, ``WMax`` setting) stay within the battery's ratings (max charge / discharge
    rate, ``WMax``) and the ``WMax`` setting in force; checked after every write the battery
    accepted, and on every record and server request.

``legal response sequences`` and ``no duplicate responses``
    Each Response the server accepts (201) is legal after the ones it accepted before for the
    same mRID and LFDI (``statemachines.responses.legal_next``, §4 rules 2, 3, 9, 16) and repeats
    none the gateway had logged as acknowledged. A repeat of one whose acknowledgement the gateway
    never got (its answer lost to a crash, a reset or a timeout: §4 rule 16 retries it, and no
    client can tell that delivery from a lost one) is counted in ``ambiguous_deliveries`` instead.

``polls within 1.5x pollRate`` and ``polls never more often than asked``
    For each resource the gateway polls — Time, its EndDevice, Registration, FunctionSetAssignmentsList,
    DERProgramList, and each program's DERControlList, DefaultDERControl and ActiveDERControlList
    (first pages: no ``s`` query or ``s=0``) — the time between consecutive polls is at least
    ``pollRate - POLL_SLACK_S`` and at most ``1.5 * pollRate + POLL_SLACK_S``, where ``pollRate``
    is the rate the containing resource (Time, EndDeviceList, Registration,
    FunctionSetAssignmentsList, DERProgramList; §4 rule 15) carried when the gateway last read it
    (a rate the gateway was never shown cannot bind it), checked at every poll and, for overdue
    polls, at every request the server answers. Exempt: a gap that touches a *disturbance* (within
    ``POLL_SLACK_S``) — a ``fail`` or ``tls_fail`` window, a ``slow`` window extended by its delay
    (these on the server's clock, which re-enters them after a step back),
    a ``set_poll_rate``, ``remove_program``, ``restore_program`` or ``set_pin`` action, a
    Notification delivered to the gateway (it may re-read the resource at once), a gateway
    crash (down until it restarts), an ``ActorFailed`` it logged (its actors rebuilt after the
    back-off: a restart), a ``CommsRestored`` the gateway logged (the protocol's
    recovery re-poll), a changed rate the gateway was shown (it applies from the next cycle) — so
    the recovery poll after a disturbance is never judged, the one after
    it is. A poll still outstanding is excused only until ``recovery_s(rate)`` after the
    disturbance ended (the walk's longest back-off, then a cycle). A list whose program is not in
    the FunctionSetAssignments is not expected to be polled, nor is anything after the gateway
    logged ``RegistrationHalted`` (until it restarts). Gaps are measured on the server's clock
    without its ``clock_skew`` steps (the world's own clock): a step of the utility's clock is
    no excuse — the gateway must keep its cadence across it (``poll.shifted.v1``).

``readings minute-aligned``
    Every MirrorReadingSet the server accepted starts on a whole minute (§2.8).

``requests schema-valid``
    Every request body the gateway sends is valid against the published 2030.5-2018 schema as
    redefined by the CSIP-AUS schema of the namespace the server serves (§5: only the elements
    that version defines, in its namespace): the strict server (``sep2gw.simserver.validation``)
    answers an invalid one 400 and records why; each such request is a violation.

``site within the limits in force``
    What the utility disputes: the measured power (the gateway's telemetry: site meter for the
    export and import limits, DER terminals for the generation and load limits, the dispute
    report's compliance signs) stays within each limit in force. Judged on the mean excess over
    ``SITE_WINDOW_S`` of samples, once the limit has held its value for ``SITE_SETTLE_S`` (a ramp
    towards it counts as not yet held): over by more than ``SITE_TOLERANCE_W`` is a violation.
    Not judged while the gateway is down or just restarted, during a ``modbus_timeout`` or
    ``battery_fault`` window, after the gateway logged that the DER's range cannot meet a site
    limit (``LimitsApplied.site_limit_met`` false: the site's own PV or load is beyond it, or the
    battery is full or at its floor).

``battery follows the storage target``
    CSIP-AUS v1.3 storage: while ``opModStorageTargetW`` is the power asked of the battery (no
    ``opModFixedW`` or ``opModTargetW`` beside it) and the device takes the mode, every setpoint the
    hardware actor records lies between its previous setpoint and the target — or, where the log
    records a clamp of the storage target, the value the clamp applied (a ramp towards it is
    allowed, a move away is not). A clamp must name a bound that holds: a limit mode in force
    (``export_limit_w``, ``import_limit_w``, ``generation_limit_w``, ``load_limit_w``,
    ``max_limit_pct``; ``energize``/``connect`` false) or a rating;
    a clamp to 0 W by the charge (discharge) rate only when the battery is within
    ``SOC_EDGE_PCT`` (plus a sample's drift, 1 %) of its state-of-charge ceiling (floor), as the
    gateway last sampled it or as the battery holds it, or its rating that way is 0 W.

``replay equals live state``
    After every committed batch with a controls event, the fold of the log (kept incrementally)
    equals the live controls actor's state (the actor waits for its append, so at that instant its
    state is exactly the log's).

:meth:`Monitor.finish` adds the log's hash chain check at the end.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Concatenate, Final, ParamSpec

import msgspec

from events.control_events import (
    CommsRestored,
    LimitsInForceChanged,
    RampPlanned,
    ResponseAcked,
)
from events.der_model import ControlSettings, Mode, ResponseStatus
from events.envelope import Recorded
from events.hardware_events import LimitsApplied, RampStarted, TelemetrySampled
from events.registration_events import RegistrationHalted
from events.runtime_events import ActorFailed
from sep2gw.forensics.compliance import COMPLIANCE_MODES
from sep2gw.simserver import (
    BatteryFault,
    ClockSkew,
    FailRequests,
    ModbusTimeout,
    RecordedRequest,
    RemoveProgram,
    RestoreProgram,
    Scenario,
    SetPin,
    SetPollRate,
    SlowResponses,
    TlsFail,
)
from sep2gw.simserver.notifier import NotificationAttempt
from sep2gw.simserver.scenario import Action
from statemachines.arbitration import MODE_FIELDS
from statemachines.controls import CONTROLS_PROJECTION, ControlsCore, ControlsState, CoreConfig
from statemachines.registration import BackoffPolicy
from statemachines.responses import legal_next
from statemachines.site_limit import SOC_EDGE_PCT
from transport.sep2 import resources as r

if TYPE_CHECKING:
    from sep2gw.gateway import Gateway
    from sep2gw.sim import SimBattery
    from sep2gw.simserver import SimUtilityServer

__all__ = [
    "INVARIANTS",
    "LAG_S",
    "POLL_SLACK_S",
    "SITE_SETTLE_S",
    "SITE_TOLERANCE_W",
    "SITE_WINDOW_S",
    "Monitor",
    "Violation",
    "recovery_s",
    "same_controls_state",
]

#: How long (gateway seconds) the recorded limits may lag arbitration: the controls actor wakes
#: at the deadline, but other actors may commit at the same instant first.
LAG_S: Final = 2.0
#: Rounding allowance on poll gaps (the server stamps whole requests, the client sleeps to floats).
POLL_SLACK_S: Final = 1.0
#: How long a limit must have held its value before the site is judged against it: the closed
#: loop (1 s), the DER's response and a telemetry sample (5 s), twice.
SITE_SETTLE_S: Final = 15.0
#: The span of samples whose mean excess is judged (load and cloud noise average out).
SITE_WINDOW_S: Final = 30.0
#: Mean excess above a limit that is a violation.
SITE_TOLERANCE_W: Final = 100.0
#: (limit, measured by the site meter or the DER, sign): the dispute report's compliance table.
_SITE_MODES: Final = tuple((m.value, f"{point}_w", sign) for m, point, sign in COMPLIANCE_MODES)
_W_SLACK: Final = 0.5  # register rounding (whole watts)
#: How far past ``SOC_EDGE_PCT`` the state of charge may be when the loop counts the battery full
#: or empty (it reads the device a sample after the one logged).
_SOC_SLACK_PCT: Final = 1.0
#: The limit modes a clamp may name as what held the storage target.
_LIMIT_BOUNDS: Final = frozenset(
    {"export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w", "max_limit_pct"}
)
_CANONICAL: Final = msgspec.json.Encoder(order="deterministic")

INVARIANTS: Final = (
    "limits in force come from arbitration",
    "hardware applies the limits in force",
    "nameplate and settings never exceeded",
    "legal response sequences",
    "no duplicate responses",
    "polls within 1.5x pollRate",
    "polls never more often than asked",
    "readings minute-aligned",
    "requests schema-valid",
    "site within the limits in force",
    "battery follows the storage target",
    "replay equals live state",
    "log verifies",
    "prices in force were the server's",
)


def same_controls_state(live: ControlsState, folded: ControlsState) -> bool:
    """Whether two controls states are the same decision state: equal when encoded, but for the
    iteration order of sets (a frozenset's order follows its insertion history and the per-process
    string hash seed, so a state rebuilt from the log may list ``lost`` modes in another order).
    Dict order is kept where it means something: the ``live`` index is the scheduling order."""
    if msgspec.json.encode(live) == msgspec.json.encode(folded):
        return True
    return _CANONICAL.encode(live) == _CANONICAL.encode(folded) and list(live.live) == list(
        folded.live
    )


def recovery_s(rate_s: float) -> float:
    """Time after a disturbance during which poll gaps are not judged: the registration walk's
    longest back-off (``BackoffPolicy``: 300 s cap plus 25 % jitter), then one cycle — and at least
    two cycles."""
    walk = BackoffPolicy()
    return max(2.0 * rate_s, walk.cap_s * (1 + walk.jitter_fraction) + rate_s)


_P = ParamSpec("_P")

#: The violation recorded when the monitor itself raises: a bug of sep2gw.invariants, which must
#: never reach the gateway (the world calls the monitor from inside the gateway's log writer).
MONITOR_FAILED: Final = "the monitor itself failed"


def _guarded(
    method: Callable[Concatenate[Monitor, _P], None],
) -> Callable[Concatenate[Monitor, _P], None]:
    def guarded(monitor: Monitor, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            method(monitor, *args, **kwargs)
        except Exception as exc:  # reported as what it is; the world stops
            monitor._violate(
                MONITOR_FAILED,
                f"{type(exc).__name__}: {exc} (in Monitor.{method.__name__}; a bug of "
                "sep2gw.invariants, not of the gateway)",
                monitor.now_s,
            )

    guarded.__name__, guarded.__doc__ = method.__name__, method.__doc__
    return guarded


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    invariant: str
    detail: str
    at_s: float | None = None  # server epoch seconds of the first sign (None: found after the run)


class _PollTrack(msgspec.Struct):
    last_s: float  # the steady clock (the server's without its steps)
    program_index: int  # 0: not under a DERProgram
    rate_key: str  # which of the server's pollRates governs it


class Monitor:
    """See the module docstring. Make one per world; the world calls :meth:`attach` first."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.violation: Violation | None = None
        #: How many times each invariant was checked (and held), for the summary.
        self.checks: dict[str, int] = dict.fromkeys(INVARIANTS, 0)
        # The monitor's own copy, folded in place (one copy, not one per record).
        self.fold, self._evolve = CONTROLS_PROJECTION.transient(ControlsState())
        self._core_config = CoreConfig(lfdi="0", device_category=0)
        self._server: SimUtilityServer | None = None
        self._battery: SimBattery | None = None
        self._stop: Callable[[], None] = lambda: None
        self._gateway: Gateway | None = None
        self._accepted: dict[tuple[int, str], list[ResponseStatus]] = {}
        self._acked: set[tuple[int, ResponseStatus]] = set()  # as the gateway's log says
        #: Responses accepted again that the gateway never knew were accepted the first time.
        self.ambiguous_deliveries = 0
        self._polls: dict[str, _PollTrack] = {}
        # [start, end] on the steady clock (the server's without its clock_skew steps)
        self._disturbances: list[tuple[float, float]] = []
        # the server's fault windows, on its own clock (a step back re-enters them)
        self._server_windows: list[tuple[float, float]] = []
        # (from this instant on the steady clock, the server's clock was this far off it)
        self._skews: list[tuple[float, float]] = [(-math.inf, 0.0)]
        self._down_since: float | None = None  # steady clock
        self._halted = False  # this boot's registration halted (no polling expected)
        #: pollRate per rate key as carried by the containing resource the gateway last read.
        self._seen_rates: dict[str, float] = {}
        self._lag_since: float | None = None
        self._last_lag_check = -math.inf
        #: Settings that were in force until the instant paired with them (the latest few).
        self._superseded: list[tuple[ControlSettings, dict[Any, RampPlanned], float]] = [
            (ControlSettings(), {}, -math.inf)
        ]
        #: Per mode, where the hardware actor last started a limit's ramp (from where the DER was).
        self._device_ramps: dict[Any, RampStarted] = {}
        self.now_s = 0.0  # latest time seen (server epoch seconds)
        # per limit: since when (steady clock) it has held its value, and its recent samples'
        # (steady time, excess over it)
        self._limit_since: dict[str, float] = {}
        self._excess: dict[str, list[tuple[float, float]]] = {f: [] for f, _, _ in _SITE_MODES}
        self._device_faults = [
            (a.at_s, a.at_s + a.duration_s)
            for a in scenario.actions
            if isinstance(a, ModbusTimeout | BatteryFault)
        ]
        self._start_s: float | None = None  # the scenario's start on the steady clock
        self._unmeetable = False  # the gateway said the DER's range cannot meet a site limit
        self._last_setpoint: float | None = None  # this boot's last recorded setpoint
        self._soc_pct: float | None = None  # the state of charge the gateway last sampled

    # ------------------------------------------------------------------------------- wiring
    def add_device_fault(self, at_s: float, duration_s: float) -> None:
        """A window (offsets from the scenario start) in which this site's device is faulty
        without a world action saying so (a fleet site's own fault, ``sep2gw.fleet_world``): the
        site is not judged within the limits then, as in a ``battery_fault`` window."""
        self._device_faults.append((at_s, at_s + duration_s))

    def attach(
        self, *, server: SimUtilityServer, battery: SimBattery, stop: Callable[[], None]
    ) -> None:
        self._server = server
        self._battery = battery
        self._stop = stop
        self._start_s = getattr(server, "start", None)
        # A hostile server's windows (sep2gw.simserver.hostile) disturb the link as fail windows
        # do: polls, posts and Responses may lapse while one is open and recover after it.
        for window in self.scenario.hostile:
            opens = server.start + window.at_s
            self._server_windows.append((opens, opens + window.duration_s))

    def gateway_up(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._halted = False
        if self._down_since is not None:
            self._disturbances.append((self._down_since, self._steady_now()))
            self._down_since = None
        self._lag_since = None
        self._unmeetable = False
        self._last_setpoint = None  # a new process starts its loop from nothing
        for field, _, _ in _SITE_MODES:  # a new process settles its loop afresh
            self._limit_since[field] = self._steady_now()
            self._excess[field].clear()

    def gateway_down(self, now: float) -> None:
        self._gateway = None
        self._down_since = self._steady_now()
        self._lag_since = None

    def _server_now(self) -> float:
        return self._server.clock.now() if self._server is not None else self.now_s

    def _skew(self) -> float:
        """How far the utility's clock has been stepped so far (``clock_skew`` faults)."""
        clock = self._server.clock if self._server is not None else None
        return float(getattr(clock, "skew_s", 0.0))  # a SimClock's; a real clock never steps

    def _steady_now(self) -> float:
        """The server's clock without its steps: what poll cadence is judged on."""
        return self._server_now() - self._skew()

    def _disturb(self, start: float, end: float) -> None:
        """A disturbance from ``start`` to ``end``, both on the server's clock as it reads now."""
        skew = self._skew()
        self._disturbances.append((start - skew, end - skew))

    def _violate(self, invariant: str, detail: str, at_s: float) -> None:
        if self.violation is None:
            self.violation = Violation(invariant=invariant, detail=detail, at_s=at_s)
            self._stop()

    def _held(self, invariant: str) -> None:
        self.checks[invariant] += 1

    # ------------------------------------------------------------------------------- the log
    @_guarded
    def on_records(self, records: list[Recorded]) -> None:
        if self.violation is not None:
            return
        controls_batch = False
        for record in records:
            event = record.event
            self.now_s = max(self.now_s, record.server_time)
            if isinstance(event, TelemetrySampled):
                self._check_site(event)
                if event.soc_pct is not None:
                    self._soc_pct = event.soc_pct
            elif isinstance(event, LimitsInForceChanged):
                self._limits_changed(event.settings)
                self._check_arbitration(event)
                # On the monotonic clock: the server's may step between the change and a write.
                self._superseded.append(
                    (self.fold.settings, dict(self.fold.ramps), record.monotonic)
                )
                del self._superseded[:-8]
            elif isinstance(event, LimitsApplied):
                self._check_setpoint(event, record.server_time)
                self._check_storage_target(event, record.server_time)
                self._check_applied(event, record.monotonic)
                self._unmeetable = event.site_limit_met is False
            elif isinstance(event, RampStarted):
                self._device_ramps[event.mode] = event
            elif isinstance(event, RampPlanned):
                # the limit is on its way: judged once the ramp has ended and the loop settled
                field = event.mode.value
                if field in self._excess:
                    self._limit_since[field] = self._steady_now() + (event.end_s - event.at_s)
                    self._excess[field].clear()
            elif isinstance(event, ResponseAcked):
                self._acked.add((int(event.mrid, 16), event.status))
            elif isinstance(event, CommsRestored):
                self._disturb(self._server_now(), self._server_now())
            elif isinstance(event, ActorFailed):
                # The supervisor rebuilds the gateway's actors after ``restart_in_s``: a restart
                # (its walk reads everything afresh), as a crash is.
                now = self._server_now()
                self._disturb(now, now + event.restart_in_s)
            elif isinstance(event, RegistrationHalted):
                self._halted = True
            if type(event).__module__ == "events.control_events":
                controls_batch = True
            self.fold = self._evolve(self.fold, event)
        if records:
            self._check_lag(records[-1].server_time)
            self._check_battery(records[-1].server_time)
        if controls_batch:
            self._check_replay(records[-1].server_time)

    def _arbitrate(self, now: float) -> tuple[ControlSettings, dict[Any, str]]:
        arbitration = ControlsCore(self._core_config, self.fold).arbitration(now)
        return arbitration.settings(), dict(arbitration.sources)

    def _check_arbitration(self, event: LimitsInForceChanged) -> None:
        invariant = "limits in force come from arbitration"
        settings, sources = self._arbitrate(event.at_s)
        if settings != event.settings or sources != dict(event.sources):
            self._violate(
                invariant,
                f"recorded {_describe(event.settings)} from {_sources(event.sources)}; "
                f"arbitration of the log gives {_describe(settings)} from {_sources(sources)}",
                event.at_s,
            )
        else:
            self._held(invariant)

    def _check_lag(self, now: float) -> None:
        if self._gateway is None or abs(now - self._last_lag_check) < 1.0:  # clocks step back
            return
        self._last_lag_check = now
        settings, _ = self._arbitrate(now)
        if settings == self.fold.settings:
            self._lag_since = None
            return
        if self._lag_since is None or now < self._lag_since:
            self._lag_since = now
        elif now - self._lag_since > LAG_S:
            self._violate(
                "limits in force come from arbitration",
                f"since {self._lag_since:.0f} the log says {_describe(self.fold.settings)} is in "
                f"force, but arbitration gives {_describe(settings)}",
                now,
            )

    def _check_applied(self, event: LimitsApplied, monotonic: float) -> None:
        in_force = self.fold.settings
        # In force within the last LAG_S: the hardware may still be carrying out any of those.
        # (with their ramps: a step that ends a ramp reaches the hardware a moment later)
        recent = [
            (old, ramps) for old, ramps, until in self._superseded if monotonic - until <= LAG_S
        ]
        for mode, name in MODE_FIELDS:
            value = getattr(event.settings, name)
            wanted = getattr(in_force, name)
            if value == wanted or any(value == getattr(old, name) for old, _ in recent):
                continue
            ramps: list[RampPlanned | RampStarted | None] = [
                self.fold.ramps.get(mode),
                *(old.get(mode) for _, old in recent),
            ]
            # §4 rule 11: the device's ramp, started from where the DER was, towards a value in force
            started = self._device_ramps.get(mode)
            if started is not None and (
                started.to_value == wanted
                or any(started.to_value == getattr(old, name) for old, _ in recent)
            ):
                ramps.append(started)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and any(
                    min(r.from_value, r.to_value) - _W_SLACK
                    <= value
                    <= max(r.from_value, r.to_value) + _W_SLACK
                    for r in ramps
                    if r is not None
                )
            ):
                continue
            self._violate(
                "hardware applies the limits in force",
                f"the hardware actor applied {name}={value}; the log says {wanted} is in force",
                event.at_s,
            )
            return
        self._held("hardware applies the limits in force")

    def _check_setpoint(self, event: LimitsApplied, at_s: float) -> None:
        if self._battery is None or event.setpoint_w is None:
            return
        # The site's setpoint: every battery behind the meter carries a share (issue 19 point 2).
        site = (self._battery, *self._battery.shared_with)
        low = -sum(min(s.battery.max_charge_w, s.battery.max_w) for s in site) - _W_SLACK
        high = sum(min(s.battery.max_discharge_w, s.battery.max_w) for s in site) + _W_SLACK
        if not low <= event.setpoint_w <= high:
            self._violate(
                "nameplate and settings never exceeded",
                f"the hardware actor wrote a setpoint of {event.setpoint_w:.1f} W; the battery is "
                f"rated {-low + _W_SLACK:.0f} W charge / {high - _W_SLACK:.0f} W discharge",
                at_s,
            )
        else:
            self._held("nameplate and settings never exceeded")

    def _check_storage_target(self, event: LimitsApplied, at_s: float) -> None:
        invariant = "battery follows the storage target"
        previous, self._last_setpoint = self._last_setpoint, event.setpoint_w
        limits = event.settings
        target = limits.storage_target_w
        if (
            target is None
            or limits.fixed_w_pct is not None
            or limits.target_w is not None
            or Mode.STORAGE_TARGET_W in event.not_applicable
        ):
            return
        setpoint = event.setpoint_w
        if setpoint is None:
            self._violate(
                invariant, f"storage target {target:g} W in force but the setpoint released", at_s
            )
            return
        goal = target
        for clamp in event.clamps:
            if clamp.mode != "storage_target_w":
                continue
            goal = clamp.applied
            why = self._clamp_refused(clamp.bound, goal, limits)
            if why:
                self._violate(
                    invariant, f"storage target {target:g} W held at {goal:g} W: {why}", at_s
                )
                return
        low, high = sorted((goal, goal if previous is None else previous))
        if not low - _W_SLACK <= setpoint <= high + _W_SLACK:
            self._violate(
                invariant,
                f"storage target {target:g} W (applicable {goal:g} W): setpoint {setpoint:.1f} W is "
                f"not on the way from the previous {previous} W",
                at_s,
            )
        else:
            self._held(invariant)

    def _clamp_refused(self, bound: str, applied: float, limits: ControlSettings) -> str:
        """Why a clamp of the storage target names a bound that does not hold ('' if it holds)."""
        if bound in _LIMIT_BOUNDS:
            return "" if getattr(limits, bound) is not None else f"{bound} is not in force"
        if bound in ("energize", "connect"):
            return "" if getattr(limits, bound) is False else f"{bound} is not false"
        sim = self._battery
        if (
            abs(applied) > _W_SLACK
            or sim is None
            or bound not in ("max_charge_w", "max_discharge_w")
        ):
            return ""
        b = sim.battery
        rated = b.max_charge_w if bound == "max_charge_w" else b.max_discharge_w
        if min(rated, b.max_w, sim.settings_max_w) <= _W_SLACK or self._soc_pct is None:
            return ""
        # The loop reads the state of charge at its own instant, a sample later than the last
        # one logged: the battery's own value counts too, and a sample's drift is allowed.
        edge = SOC_EDGE_PCT + _SOC_SLACK_PCT
        sampled = self._soc_pct
        if bound == "max_charge_w" and max(sampled, sim.soc_pct) < b.soc_max_pct - edge:
            return f"no charge allowed at {sampled:g} % (ceiling {b.soc_max_pct:g} %)"
        if bound == "max_discharge_w" and min(sampled, sim.soc_pct) > b.soc_min_pct + edge:
            return f"no discharge allowed at {sampled:g} % (floor {b.soc_min_pct:g} %)"
        return ""

    def _check_battery(self, at_s: float) -> None:
        """Each battery of the site (every DER behind the meter, issue 19 point 2) within its own
        ratings."""
        if self._battery is None:
            return
        invariant = "nameplate and settings never exceeded"
        site = (self._battery, *self._battery.shared_with)
        for number, sim in enumerate(site, start=1):
            which = "the battery" if len(site) == 1 else f"battery {number}"
            b = sim.battery
            if sim.settings_max_w > b.max_w + _W_SLACK:
                self._violate(
                    invariant,
                    f"{which}: WMax set to {sim.settings_max_w:.0f} W > rating {b.max_w:.0f} W"
                    if len(site) > 1
                    else f"WMax set to {sim.settings_max_w:.0f} W > rating {b.max_w:.0f} W",
                    at_s,
                )
                return
            setpoint = sim.setpoint_w
            if setpoint is not None:
                cap = min(b.max_w, sim.settings_max_w)
                if (
                    setpoint > min(cap, b.max_discharge_w) + _W_SLACK
                    or setpoint < -min(cap, b.max_charge_w) - _W_SLACK
                ):
                    self._violate(
                        invariant,
                        f"{which} holds a setpoint of {setpoint:.1f} W beyond its WMax "
                        f"{cap:.0f} W or its charge/discharge rates",
                        at_s,
                    )
                    return
        self._held(invariant)

    def _limits_changed(self, settings: ControlSettings) -> None:
        now = self._steady_now()
        for field, _, _ in _SITE_MODES:
            if getattr(settings, field) != getattr(self.fold.settings, field):
                self._limit_since[field] = max(now, self._limit_since.get(field, now))
                self._excess[field].clear()

    def _device_fault_at(self, now: float) -> bool:
        if self._start_s is None:
            return False
        return any(
            self._start_s + a - SITE_SETTLE_S <= now <= self._start_s + b + SITE_SETTLE_S
            for a, b in self._device_faults
        )

    def _check_site(self, sample: TelemetrySampled) -> None:
        invariant = "site within the limits in force"
        now = self._steady_now()
        judged = self._gateway is not None and not self._device_fault_at(now)
        settings = self.fold.settings
        for field, measured_by, sign in _SITE_MODES:
            samples = self._excess[field]
            limit = getattr(settings, field)
            value = getattr(sample, measured_by)
            if (
                not judged
                or limit is None
                or value is None
                or now < self._limit_since.get(field, -math.inf) + SITE_SETTLE_S
                or (self._unmeetable and measured_by == "site_w")
            ):
                samples.clear()
                continue
            samples.append((now, sign * value - limit))
            while samples[0][0] <= now - SITE_WINDOW_S:
                del samples[0]
            if now - samples[0][0] < SITE_WINDOW_S / 2:
                continue  # too few samples yet to judge a mean
            mean = sum(excess for _, excess in samples) / len(samples)
            if mean > SITE_TOLERANCE_W:
                self._violate(
                    invariant,
                    f"{field} {limit:.0f} W: measured {mean + limit:.0f} W on average over the "
                    f"last {now - samples[0][0]:.0f} s ({measured_by}), {mean:.0f} W over it",
                    sample.at_s,
                )
                return
            self._held(invariant)

    def _check_replay(self, at_s: float) -> None:
        gateway = self._gateway
        if gateway is None:
            return
        controls = gateway.actors.get("controls")
        core = None if controls is None else controls.core
        if core is None:
            return
        if same_controls_state(core.state, self.fold):
            self._held("replay equals live state")
            return
        live = msgspec.json.encode(core.state)
        a, b = msgspec.json.decode(live), msgspec.json.decode(msgspec.json.encode(self.fold))
        keys = sorted(k for k in a if a.get(k) != b.get(k))
        self._violate(
            "replay equals live state",
            f"the controls actor's live state differs from the fold of the log in {keys}",
            at_s,
        )

    # ----------------------------------------------------------------------------- the battery
    @_guarded
    def on_hardware_write(self) -> None:
        """After each control write the battery accepted: what it now holds is within its ratings."""
        if self.violation is None and self._battery is not None:
            self._check_battery(self._battery.now_s)

    # ---------------------------------------------------------------------------- the server
    @_guarded
    def on_notification(self, attempt: NotificationAttempt) -> None:
        """A Notification delivered to the gateway: it may read the resource at once (issue 19
        point 3), so the poll gap around it is not judged."""
        if attempt.outcome == "delivered":
            self._disturb(attempt.time, attempt.time)

    @_guarded
    def on_action(self, at: float, action: Action) -> None:
        if isinstance(action, FailRequests | TlsFail):
            self._server_windows.append((at, at + action.duration_s))
        elif isinstance(action, SlowResponses):
            # A request held at the window's end is recorded ``delay_s`` later.
            self._server_windows.append((at, at + action.duration_s + action.delay_s))
        elif isinstance(action, ClockSkew):
            # called after the step: ``at`` is the reading just before it
            skew = self._skew()
            self._skews.append((at - (skew - action.seconds), skew))
        elif isinstance(action, SetPollRate | RemoveProgram | RestoreProgram | SetPin):
            self._disturb(at, at)

    @_guarded
    def on_request(self, q: RecordedRequest) -> None:
        if self.violation is not None:
            return
        self._check_battery(q.time)
        if q.schema_error:
            self._violate("requests schema-valid", f"{q.method} {q.path}: {q.schema_error}", q.time)
            return
        if q.method in ("POST", "PUT") and self._server is not None and self._server.validator:
            self._held("requests schema-valid")
        if q.status != 201 and not (q.method == "GET" and q.status == 200):
            return
        if q.method == "POST" and isinstance(q.body, r.Response):
            self._check_response(q)
        elif q.method == "GET" and _rate_key(q.path) is not None:
            self._check_poll(q)
        if q.method == "GET" and self._server is not None:
            carried = _carries_rate(q.path)
            if carried is not None:
                rate = float(self._server.state.poll_rates[carried])
                if self._seen_rates.get(carried, rate) != rate:
                    # A changed rate applies from the next cycle (§4 rule 15): the cycle under
                    # way still runs on the old one.
                    self._disturb(q.time, q.time)
                self._seen_rates[carried] = rate
        elif q.method == "POST" and q.path.startswith("/mup/"):
            self._check_readings(q)
        self._check_overdue(q.time - self._skew())

    def _check_response(self, q: RecordedRequest) -> None:
        assert isinstance(q.body, r.Response)
        mrid = int(q.body.subject)
        status = ResponseStatus(q.body.status or 0)
        sent = self._accepted.setdefault((mrid, q.lfdi), [])
        if status in sent:
            if (mrid, status) not in self._acked:
                # The gateway never learned that the first one arrived (its answer was lost to
                # a crash, a reset or a timeout): resending is §4 rule 16's retry, and no client
                # can tell such a delivery from a lost one. Counted, not a violation.
                self.ambiguous_deliveries += 1
                return
            self._violate(
                "no duplicate responses",
                f"Response {int(status)} for mRID {mrid:032X} accepted twice, the second time "
                "after the gateway had logged its acknowledgement",
                q.time,
            )
        elif not legal_next(sent, status):
            self._violate(
                "legal response sequences",
                f"mRID {mrid:032X}: Response {int(status)} after {[int(s) for s in sent]}",
                q.time,
            )
        else:
            self._held("no duplicate responses")
            self._held("legal response sequences")
        sent.append(status)

    def _rate(self, key: str) -> float:
        """The pollRate the gateway was last told for ``key`` (the server's, if never read)."""
        seen = self._seen_rates.get(key)
        if seen is not None:
            return seen
        assert self._server is not None
        return float(self._server.state.poll_rates[key])

    def _on_steady_clock(self, a: float, b: float) -> Iterator[tuple[float, float]]:
        """When the server's clock read between ``a`` and ``b``, on the steady clock: once, or
        again after each step back into it."""
        skews = self._skews
        for index, (since, skew) in enumerate(skews):
            until = skews[index + 1][0] if index + 1 < len(skews) else math.inf
            start, end = max(a - skew, since), min(b - skew, until)
            if start <= end:
                yield start, end

    def _disturbed(self, start: float, end: float, rate: float, *, overdue: bool = False) -> bool:
        """Whether the gap ``[start, end]`` (steady clock) between polls touches a disturbance;
        for a poll still outstanding (``overdue``), only until ``recovery_s`` after it ended."""
        if self._down_since is not None or self._gateway is None:
            return True
        windows = [w for a, b in self._server_windows for w in self._on_steady_clock(a, b)]
        for a, b in (*self._disturbances, *windows):
            if a - POLL_SLACK_S <= end and start <= b + POLL_SLACK_S:
                if not overdue or end <= b + recovery_s(rate):
                    return True
        return False

    def _check_poll(self, q: RecordedRequest) -> None:
        query = q.target.partition("?")[2]
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        if params.get("s", "0") != "0":
            return  # a later page of the same poll
        key = _rate_key(q.path)
        assert key is not None
        track = self._polls.get(q.path)
        at = q.time - self._skew()  # the server recorded it just now: the skew is this request's
        self._polls[q.path] = _PollTrack(at, _program_index(q.path), key)
        if track is None:
            return
        rate = self._rate(key)
        gap = at - track.last_s
        if self._disturbed(track.last_s, at, rate):
            return
        if gap < rate - POLL_SLACK_S:
            self._violate(
                "polls never more often than asked",
                f"{q.path} polled {gap:.1f} s after the previous poll; pollRate is {rate:.0f} s",
                q.time,
            )
        elif gap > 1.5 * rate + POLL_SLACK_S:
            self._violate(
                "polls within 1.5x pollRate",
                f"{q.path} polled {gap:.1f} s after the previous poll; pollRate is {rate:.0f} s",
                q.time,
            )
        else:
            self._held("polls never more often than asked")
            self._held("polls within 1.5x pollRate")

    def _check_overdue(self, now: float) -> None:
        """``now`` on the steady clock."""
        if self._server is None or not self._polls:
            return
        if self._halted:
            return  # registration halted: the gateway stops polling by design (PROTOCOL.md §2)
        for path, track in self._polls.items():
            rate = self._rate(track.rate_key)
            limit = 1.5 * rate + POLL_SLACK_S
            if now - track.last_s <= limit:
                continue
            if track.program_index and not self._in_fsa(track.program_index):
                continue
            if path.endswith("/dderc") and not self._has_default(track.program_index):
                continue  # the program's DefaultDERControl is gone: no link left to poll
            if self._disturbed(track.last_s, now, rate, overdue=True):
                continue
            self._violate(
                "polls within 1.5x pollRate",
                f"{path} not polled for {now - track.last_s:.0f} s; pollRate is {rate:.0f} s",
                track.last_s + limit + self._skew(),
            )
            return

    def _has_default(self, index: int) -> bool:
        assert self._server is not None
        programs = self._server.state.programs
        return 1 <= index <= len(programs) and programs[index - 1].default is not None

    def _in_fsa(self, index: int) -> bool:
        assert self._server is not None
        programs = self._server.state.programs
        return 1 <= index <= len(programs) and programs[index - 1].in_fsa

    def _check_readings(self, q: RecordedRequest) -> None:
        for reading_set in _reading_sets(q.body):
            period = reading_set.timePeriod
            if period is None:
                continue
            if period.start % 60:
                self._violate(
                    "readings minute-aligned",
                    f"{q.path}: a MirrorReadingSet starts at {period.start} (second "
                    f"{period.start % 60} of its minute)",
                    q.time,
                )
                return
            self._held("readings minute-aligned")

    # ------------------------------------------------------------------------------- the end
    def finish(self, now: float) -> None:
        """Checks at the end of the run: nothing overdue."""
        if self.violation is None:
            self._check_overdue(self._steady_now())


_DEVICE = re.compile(r"/edev/[^/]+")


def _rate_key(path: str) -> str | None:
    """The server pollRate that governs polls of ``path`` (§4 rule 15: a list is polled at the rate
    of the resource that contains it); ``None``: not a polled resource."""
    if path.endswith(("/derc", "/dderc", "/actderc", "/derp")):
        return "derp"
    if path.endswith("/fsa"):
        return "fsa"
    if path.endswith("/rg"):
        return "reg"
    if path == "/tm":
        return "time"
    if _DEVICE.fullmatch(path):
        return "edev"
    return None


def _carries_rate(path: str) -> str | None:
    """The rate key whose pollRate the document at ``path`` carries (the containing resources)."""
    if path == "/edev":
        return "edev"
    if path == "/tm":
        return "time"
    if path.endswith("/rg"):
        return "reg"
    if path.endswith("/fsa"):
        return "fsa"
    if path.endswith("/derp"):
        return "derp"
    return None


def _program_index(path: str) -> int:
    parts = path.strip("/").split("/")
    try:
        return int(parts[parts.index("derp") + 1])
    except (ValueError, IndexError):
        return 0


def _reading_sets(body: msgspec.Struct | None) -> list[r.MirrorReadingSet]:
    readings: list[r.MirrorMeterReading] = []
    if isinstance(body, r.MirrorMeterReading):
        readings = [body]
    elif isinstance(body, r.MirrorMeterReadingList):
        readings = list(body.MirrorMeterReading)
    elif isinstance(body, r.MirrorUsagePoint):
        readings = list(body.MirrorMeterReading)
    return [s for m in readings for s in m.MirrorReadingSet]


def _describe(settings: ControlSettings) -> str:
    parts = [
        f"{name}={getattr(settings, name)}"
        for name in settings.__struct_fields__
        if getattr(settings, name) is not None
    ]
    return "{" + ", ".join(parts) + "}"


def _sources(sources: Any) -> str:
    return "{" + ", ".join(f"{getattr(k, 'value', k)}: {v}" for k, v in sources.items()) + "}"
