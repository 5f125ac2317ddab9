"""The hardware actor: applies the limits in force to the battery and samples its telemetry.

It is the only user of the DER driver. It writes when new limits arrive, then every control period
while a closed loop (export/import limits at the connection point) or a ramp needs it, and otherwise
re-asserts the limits every ``reassert_s`` in case the device was reset. Every write is verified by
the driver's read-back and recorded (``hardware.limits_applied.v2``); every failure too. Telemetry is
sampled every ``sample_period_s``, recorded, and summarised per post interval for the mirror.
After every sample, and whenever the device took new limits, the device's status (the reading,
whether it answered, the ``connect``/``energize`` it last took) goes to the DER status actor through a
latest-value mailbox (``DeviceStatus``); a change of what the device reports of its status is
recorded (``hardware.device_status.v1``).

Both run on grids (multiples of their period; the first write after new limits is immediate): when
a loop instant is a sampling instant, the actor wakes once and the sample's device read is the
reading the closed loop acts on (``DerDriver.apply(reading=…)``), one read where there were two.
"""

from __future__ import annotations

import math
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from actors.clock import Clock, within
from actors.drivers.base import DerDriver, DriverError, Nameplate, PriceAware, Telemetry
from actors.drivers.composite import CompositeDriver, MemberStatus
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import (
    ApplyLimits,
    ControlsInput,
    DerSnapshot,
    DeviceStatus,
    MemberSnapshot,
    WriteOutcome,
)
from events.base import Event
from events.der_events import DerMemberSampled, DerMemberStatus
from events.der_model import ControlSettings, Mode
from events.envelope import Append
from events.hardware_events import (
    HARDWARE_STREAM,
    AlarmsChanged,
    DeviceStatusChanged,
    DeviceUnreachable,
    LimitsApplied,
    NameplateRead,
    RampStarted,
    TelemetrySampled,
)
from events.pricing_events import PricesInForce
from events.store import EventStore
from events.telemetry import IntervalSummary, MeasurementPoint, Sample
from statemachines.ramps import LIMIT_MODES, Ramp, measured_for, start_from
from statemachines.telemetry import IntervalAggregator, LateSample, SampleSchedule
from transport.modbus import ModbusError

__all__ = [
    "HardwareActor",
    "HardwareConfig",
    "HardwareStatistics",
    "CLOSED_LOOP_MODES",
    "member_telemetry",
]

#: Modes whose target depends on what the site does, so they are re-evaluated every control period.
CLOSED_LOOP_MODES: Final = frozenset(
    {Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W, Mode.GENERATION_LIMIT_W, Mode.LOAD_LIMIT_W}
)
#: While a device operation keeps failing the same way, it is recorded again at most this often.
UNREACHABLE_REMINDER_S: Final = 60.0
_DEVICE_ERRORS = (TimeoutError, ModbusError, DriverError, OSError)


#: How far before the interval in progress a restart looks for its samples (see _resume_interval).
_RESUME_MARGIN_S = 3600.0


class HardwareConfig(msgspec.Struct, frozen=True, kw_only=True):
    control_period_s: float = 1.0
    sample_period_s: float = 5.0
    post_interval_s: int = 300
    reassert_s: float = 60.0
    io_timeout_s: float = 5.0
    record_telemetry: bool = True


class HardwareStatistics(msgspec.Struct, frozen=True):
    applies: int
    writes: int
    failures: int
    samples: int
    summaries_dropped: int


class HardwareActor:
    def __init__(
        self,
        *,
        driver: DerDriver,
        log: LogWriter,
        clock: Clock,
        limits: Latest[ApplyLimits],
        to_controls: MemoryObjectSendStream[ControlsInput],
        summaries: MemoryObjectSendStream[list[IntervalSummary]] | None = None,
        config: HardwareConfig | None = None,
        store: EventStore | None = None,
        status: Latest[DeviceStatus] | None = None,
        der: Latest[DerSnapshot] | None = None,
        prices: Latest[PricesInForce] | None = None,
        member_status: dict[str, Latest[DeviceStatus]] | None = None,
        member_summaries: dict[str, MemoryObjectSendStream[list[IntervalSummary]]] | None = None,
    ) -> None:
        """``store``: on start, fold the log's samples of the interval in progress back into its
        summary, so a restart does not split an interval in two (the mirror posts it once, whole).
        ``status``: where the device's status goes after every sample and whenever the control
        in force changes (the DER status actor's mailbox). ``der``: what the DER last reported
        (:class:`DerSnapshot`), put whenever that changes (the registration and controls actors
        read it from there). ``prices``: the pricing actor's prices in force, passed to a driver
        that takes them (:class:`~actors.drivers.base.PriceAware`) at the next loop instant.
        ``member_status``: for a site of several DER (a :class:`CompositeDriver`), each DER's own
        status mailbox by name (its DER status actor's), put as ``status`` is;
        ``member_summaries``: each DER's own interval summaries (its output, reactive power and
        stored energy) by name, for its own MirrorUsagePoint (``actors.mirror.DerMirrorActor``)."""
        config = config or HardwareConfig()
        self._store = store
        self._driver = driver
        self._log = log
        self._clock = clock
        self._limits = limits
        self._to_controls = to_controls
        self._summaries = summaries
        self._config = config
        self._schedule = SampleSchedule(config.sample_period_s)
        self._aggregator = IntervalAggregator(config.post_interval_s)
        self._current: ApplyLimits | None = None
        #: Per ramping mode: the ramp the controls core planned, and the one the device follows
        #: (a limit's starts from where the DER is; ``None``: it stepped to its target).
        self._ramps: dict[Mode, tuple[Ramp, Ramp | None]] = {}
        self._verdict_owed = False
        self._last_written: ControlSettings | None = None
        self._last_site_met: bool | None = None  # as last recorded
        self._last_applied_s = -math.inf  # when a LimitsApplied was last recorded
        self._next_apply: float | None = None
        self._alarms: tuple[str, ...] = ()
        self._nameplate: Nameplate | None = None
        self._telemetry: Telemetry | None = None
        self._last_failure: dict[str, tuple[tuple[str, str, str], float]] = {}
        self._applies = self._writes = self._failures = self._samples = self._dropped = 0
        self._late = 0
        self._status = status
        self._der = der
        self._prices = prices
        self._read_once = False  # a sample was attempted: the status has something to say
        #: The limits the device last took (a verified write), and which ``ApplyLimits`` they were.
        self._effective: ApplyLimits | None = None
        self._sampled_seq: int | None = None  # the limits the device had at the last sample
        self._read_seq: int | None = None  # ... at the last read (before a write at that instant)
        self._device_status: DeviceStatusChanged | None = None  # as last recorded
        self._reachable = True
        self._member_status = member_status or {}
        self._members: dict[str, DerMemberStatus] = {}  # as last recorded, by DER name
        self._member_summaries = member_summaries or {}
        self._member_aggregators = {
            name: IntervalAggregator(config.post_interval_s) for name in self._member_summaries
        }

    def _publish_der(self) -> None:
        """What the DER last reported (for DERCapability/Settings/Availability and LogEvents,
        PROTOCOL.md §2.7 and §2.9, and setMaxW for setGradW, §4 rule 11), put in the ``der``
        mailbox as soon as the nameplate or the telemetry changes — nothing before the nameplate.
        The modes are the driver's once its models are known, read again at each put."""
        if self._der is None or self._nameplate is None:
            return
        self._der.put(
            DerSnapshot(
                nameplate=self._nameplate,
                modes=self._driver.dispatchable_modes(),
                telemetry=self._telemetry,
                members=tuple(
                    MemberSnapshot(
                        der=m.der, nameplate=m.nameplate, telemetry=m.telemetry, role=m.role
                    )
                    for m in self._member_statuses()
                ),
            )
        )

    def _member_statuses(self) -> tuple[MemberStatus, ...]:
        driver = self._driver
        return driver.members() if isinstance(driver, CompositeDriver) else ()

    def statistics(self) -> HardwareStatistics:
        return HardwareStatistics(
            self._applies, self._writes, self._failures, self._samples, self._dropped
        )

    async def _device_failed(self, operation: str, exc: BaseException, now: float) -> None:
        """Record a failed device operation: the first of a run of equal failures, then at most one
        reminder per ``UNREACHABLE_REMINDER_S`` (a dead inverter must not add a record a second)."""
        key = (operation, type(exc).__name__, str(exc))
        last = self._last_failure.get(operation)
        if last is not None and last[0] == key and now - last[1] < UNREACHABLE_REMINDER_S:
            return
        self._last_failure[operation] = (key, now)
        await self._record(_unreachable(operation, exc, now))

    def _device_ok(self, operation: str) -> None:
        self._last_failure.pop(operation, None)

    async def _record(self, *events: Event) -> None:
        """Record what the device did or reported. An observation (issue 16 point 5): safety
        first, the battery's loop never waits on a full log; the writer holds the records and
        writes them when space returns (telemetry samples, detail, are shed and counted)."""
        reading = self._clock.read()
        await self._log.append(
            [
                Append(
                    stream=HARDWARE_STREAM,
                    events=events,
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ],
            observation=True,
        )

    def _resume_interval(self) -> None:
        """Fold the samples of the interval in progress back in (a restart inside it). Only the
        recent past is read: a month of samples decoded to keep a minute's would make every start
        pay for the whole history. The margin covers a server clock stepped since a sample."""
        if self._store is None:
            return
        now = self._clock.server_time()
        current = self._aggregator.start_of(now)
        since = self._store.first_seq_since(current - _RESUME_MARGIN_S)
        types: tuple[str, ...] = ("hardware.telemetry.v1",)
        if self._member_aggregators:
            types += ("der.member_sampled.v1",)
        for record in self._store.read(since, types=types):
            event = record.event
            if isinstance(event, TelemetrySampled) and current <= event.at_s < now:
                self._aggregator.add(Telemetry(**msgspec.structs.asdict(event)).samples())
            elif isinstance(event, DerMemberSampled) and current <= event.at_s < now:
                aggregator = self._member_aggregators.get(event.der)
                if aggregator is not None:
                    aggregator.add(_der_samples(member_telemetry(event)))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._resume_interval()
        async with self._to_controls:
            await self._read_nameplate()
            task_status.started()
            next_sample = self._schedule.next_deadline(self._clock.server_time())
            while True:
                now = self._clock.server_time()
                # The server clock can step back when its offset is adopted (PROTOCOL.md §2.2): an
                # instant planned on the old reading is then further away than a whole period, and
                # waiting for it would pause sampling and the closed loop for the size of the step.
                if next_sample - now > self._config.sample_period_s:
                    next_sample = self._schedule.next_deadline(now)
                longest = max(self._config.control_period_s, self._config.reassert_s)
                if self._next_apply is not None and self._next_apply - now > longest:
                    self._next_apply = now
                deadline = (
                    next_sample if self._next_apply is None else min(next_sample, self._next_apply)
                )
                with anyio.move_on_after(max(deadline - now, 0.0)):
                    self._current = await self._limits.take()
                    self._verdict_owed = True
                    self._next_apply = self._clock.server_time()
                now = self._clock.server_time()
                if self._prices is not None and self._prices.fresh:
                    await self._pass_prices(self._prices.take_nowait(), now)
                apply_due = self._next_apply is not None and now >= self._next_apply
                if now >= next_sample:
                    # The loop instants lie on the sampling grid: one device read serves both.
                    reading = await self._read(now)
                    if apply_due:
                        await self._apply(now, reading)
                    await self._sample(now, reading)
                    next_sample = self._schedule.next_deadline(now)
                elif apply_due:
                    await self._apply(now, None)

    async def _pass_prices(self, prices: PricesInForce, now: float) -> None:
        """Hand the prices in force to the driver, if it takes them; a failure is recorded like any
        other device failure and the next change is passed again."""
        if not isinstance(self._driver, PriceAware):
            return
        try:
            with within(self._config.io_timeout_s):
                await self._driver.prices_changed(prices)
        except (DriverError, ModbusError, TimeoutError, OSError) as exc:
            await self._device_failed("prices", exc, now)
        else:
            self._device_ok("prices")

    async def _read_nameplate(self) -> None:
        now = self._clock.server_time()
        try:
            with within(self._config.io_timeout_s):
                plate = await self._driver.read_nameplate()
        except _DEVICE_ERRORS as exc:
            self._failures += 1
            await self._device_failed("read nameplate", exc, now)
            return
        self._device_ok("read nameplate")
        self._nameplate = plate
        self._publish_der()
        fields = msgspec.structs.asdict(plate)
        await self._record(
            NameplateRead(
                at_s=now, dispatchable=tuple(sorted(self._driver.dispatchable_modes())), **fields
            )
        )

    async def _apply(self, now: float, reading: Telemetry | None) -> None:
        """One control period: ``reading`` is the sample taken at ``now`` (if any), which the
        driver's closed loop uses instead of reading the meter a second time."""
        assert self._current is not None
        command = self._current
        reading = await self._start_ramps(command, now, reading)
        ramps = {m: ramp for m, (_, ramp) in self._ramps.items() if ramp is not None}
        settings = _at(command.settings, ramps, now)
        self._applies += 1
        try:
            with within(self._config.io_timeout_s):
                report = await self._driver.apply(settings, now=now, reading=reading)
        except _DEVICE_ERRORS as exc:
            self._failures += 1
            await self._device_failed("apply limits", exc, now)
            self._last_written = None  # the next successful write is recorded: the recovery
            await self._owe_verdict(ok=False, detail=f"{type(exc).__name__}: {exc}")
            self._next_apply = _next_on_grid(now, self._config.control_period_s)
            return
        self._device_ok("apply limits")
        if report.wrote:
            self._writes += 1
        # Recorded: every write, new limits, an owed verdict, and whether the DER's range can
        # meet the site limits when that changes (the load or PV moved past what it can cover: a
        # dispute turns on when the site limit stopped being achievable) — at most once a sample
        # period, so a site hovering at the edge does not flood the log.
        if (
            report.wrote
            or settings != self._last_written
            or self._verdict_owed
            or (
                report.site_limit_met != self._last_site_met
                and now - self._last_applied_s >= self._config.sample_period_s
            )
        ):
            await self._record(
                LimitsApplied(
                    at_s=now,
                    settings=settings,
                    applied=tuple(sorted(report.applied)),
                    not_applicable=tuple(sorted(report.not_applicable)),
                    setpoint_w=report.setpoint_w,
                    wrote=report.wrote,
                    clamps=tuple(report.clamps),
                    site_limit_met=report.site_limit_met,
                )
            )
            self._last_written = settings
            self._last_site_met = report.site_limit_met
            self._last_applied_s = now
        if self._effective is not command:
            # The device took new limits: what DERStatus falls back on changed with them.
            self._effective = command
            self._publish_status(now)
        await self._owe_verdict(ok=True)
        needs_loop = bool(settings.modes() & CLOSED_LOOP_MODES) or any(
            r.end_s > now for r in ramps.values()
        )
        # On the period's grid (as the samples are on theirs), not ``now`` + period: when the
        # periods agree the loop instant is a sampling instant, so the actor wakes once and reads
        # the device once for both (the first apply after new limits is still immediate).
        self._next_apply = _next_on_grid(
            now, self._config.control_period_s if needs_loop else self._config.reassert_s
        )

    async def _start_ramps(
        self, command: ApplyLimits, now: float, reading: Telemetry | None
    ) -> Telemetry | None:
        """PROTOCOL.md §4 rule 11: a limit's ramp starts from where the DER is, not from the old
        limit (a 10 kW limit on a 5 kW DER handing over to 1 kW would otherwise spend half its ramp
        constraining nothing). Each newly planned ramp of a limit mode is moved, at its slope, to
        start from the DER's measured output (a fresh reading, unless ``reading`` is of ``now``),
        or from its rating when the reading fails; where it started is recorded
        (``hardware.ramp_started.v1``). Returns the reading, for the closed loop to reuse."""
        previous = self._ramps
        self._ramps = {m: pair for m, pair in previous.items() if command.ramps.get(m) == pair[0]}
        new = {m: r for m, r in command.ramps.items() if m not in self._ramps}
        for mode, planned in list(new.items()):
            if planned.end_s <= now:  # over already (limits re-published, a restart): the target
                self._ramps[mode] = (planned, None)
                del new[mode]
        if not new:
            return reading
        if any(m in LIMIT_MODES for m in new) and (reading is None or reading.at_s != now):
            reading = await self._read(now)
        events: list[Event] = []
        for mode, planned in sorted(new.items()):
            if mode not in LIMIT_MODES:
                self._ramps[mode] = (planned, planned)
                continue
            held = previous.get(mode)
            applied = (
                held[1].value_at(now)
                if held is not None and held[1] is not None
                else _number(self._last_written, mode)
            )
            measured = (
                None
                if reading is None
                else measured_for(
                    mode, site_w=reading.site_w, der_w=reading.der_w, max_w=self._max_w()
                )
            )
            rating = self._rating_for(mode)
            start = start_from(planned, now, applied=applied, measured=measured, rating=rating)
            ramp = planned.rebased(start, now)
            self._ramps[mode] = (planned, ramp)
            events.append(
                RampStarted(
                    at_s=now,
                    mode=mode,
                    planned=planned.value_at(now),
                    applied=applied,
                    measured=measured,
                    rating=rating,
                    from_value=start,
                    to_value=planned.to_value,
                    end_s=now if ramp is None else ramp.end_s,
                )
            )
        if events:
            await self._record(*events)
        return reading

    def _max_w(self) -> float | None:
        if self._nameplate is None:
            return None
        return self._nameplate.rating().max_w or None

    def _rating_for(self, mode: Mode) -> float | None:
        """The most the DER can do in a limit mode's unit (``None``: its nameplate is unknown)."""
        if mode is Mode.MAX_LIMIT_PCT:
            return 100.0
        if self._nameplate is None:
            return None
        rating = self._nameplate.rating()
        if mode in (Mode.EXPORT_LIMIT_W, Mode.GENERATION_LIMIT_W):
            return rating.max_discharge_w
        return rating.max_charge_w

    async def _owe_verdict(self, *, ok: bool, detail: str = "") -> None:
        if self._verdict_owed:
            self._verdict_owed = False
            seq = self._current.seq if self._current is not None else None
            await self._to_controls.send(WriteOutcome(ok=ok, detail=detail, seq=seq))

    async def _read(self, now: float) -> Telemetry | None:
        """The sample's device read (``None`` when it failed, which is recorded)."""
        if self._nameplate is None:
            await self._read_nameplate()  # it failed at start: the DER info PUTs need it
        try:
            with within(min(self._config.io_timeout_s, self._config.sample_period_s)):
                telemetry = await self._driver.read_telemetry(now=now)
        except _DEVICE_ERRORS as exc:
            self._failures += 1
            await self._device_failed("read telemetry", exc, now)
            return None
        self._device_ok("read telemetry")
        self._read_seq = None if self._effective is None else self._effective.seq
        return telemetry

    def _publish_status(self, now: float) -> None:
        """PROTOCOL.md §2.7: the device's status, with the control in force as the fallback for
        what it cannot report, to the DER status actor — once a sample was attempted (the first
        DERStatus waits for the first reading)."""
        if not self._read_once:
            return
        settings = None if self._effective is None else self._effective.settings
        connect = None if settings is None else settings.connect
        energize = None if settings is None else settings.energize
        if self._status is not None:
            self._status.put(
                DeviceStatus(
                    at_s=now,
                    telemetry=self._telemetry,
                    reachable=self._reachable,
                    connect=connect,
                    energize=energize,
                    control_seq=self._sampled_seq,
                )
            )
        for member in self._member_statuses():
            mailbox = self._member_status.get(member.der)
            if mailbox is not None:
                # Its own reading and whether it answered: a DER that stopped answering is
                # reported as it last was, with the fault bit (``der_info.status_with_sources``).
                mailbox.put(
                    DeviceStatus(
                        at_s=now,
                        telemetry=member.telemetry,
                        reachable=member.reachable,
                        connect=connect,
                        energize=energize,
                        control_seq=self._sampled_seq,
                    )
                )

    def _summarise_members(self, now: float) -> None:
        """Each DER's own readings summarised per post interval, for its own mirror."""
        if not self._member_aggregators:
            return
        for member in self._member_statuses():
            aggregator = self._member_aggregators.get(member.der)
            if aggregator is None:
                continue
            closed = aggregator.close_due(now)
            t = member.telemetry
            if t is not None and t.at_s == now:
                try:
                    closed += aggregator.add(_der_samples(t))
                except LateSample:
                    pass  # as for the site: a gap in the readings, never a second reading
            if closed:
                try:
                    self._member_summaries[member.der].send_nowait(closed)
                except (anyio.WouldBlock, anyio.BrokenResourceError):
                    self._dropped += len(closed)

    async def _record_members(self, now: float) -> None:
        """A site of several DER: each DER's reading (detail), and a change of whether it takes
        part in the split, of why not, or of what it reports of its connection and state
        (``der.member_status.v1``: the evidence behind its DERStatus)."""
        events: list[Event] = []
        for member in self._member_statuses():
            if self._config.record_telemetry:
                sampled = _member_sampled(now, member)
                if sampled is not None:
                    events.append(sampled)
            t = member.telemetry
            status = DerMemberStatus(
                at_s=now,
                der=member.der,
                available=member.available,
                reachable=member.reachable,
                reason=member.reason,
                connected=None if t is None else t.connected,
                state=None if t is None else t.state,
            )
            last = self._members.get(member.der)
            if last is None or msgspec.structs.replace(status, at_s=last.at_s) != last:
                events.append(status)
                self._members[member.der] = status
        if events:
            await self._record(*events)

    async def _sample(self, now: float, telemetry: Telemetry | None) -> None:
        self._read_once = True
        self._reachable = telemetry is not None
        self._sampled_seq = self._read_seq
        closed = self._aggregator.close_due(now)
        if telemetry is not None:
            self._samples += 1
            self._telemetry = telemetry
            self._publish_der()
            try:
                closed += self._aggregator.add(telemetry.samples())
            except LateSample:
                # The server clock stepped back behind an interval already summarised: the sample
                # is recorded, but it cannot join a summary that was already handed on (a gap in
                # the readings, never a second reading for the same interval).
                self._late += 1
            events: list[Event] = []
            if self._config.record_telemetry:
                # Detail, shed when the log is short of space (unless it rides with a change).
                events.append(_sampled(telemetry))
            last = self._device_status
            if (
                last is None
                or telemetry.state != last.state
                or telemetry.connected != last.connected
                or telemetry.storage_connected != last.storage_connected
                or telemetry.operating != last.operating
            ):
                reported = DeviceStatusChanged(
                    at_s=now,
                    state=telemetry.state,
                    connected=telemetry.connected,
                    storage_connected=telemetry.storage_connected,
                    operating=telemetry.operating,
                )
                events.append(reported)
                self._device_status = reported
            if telemetry.alarms != self._alarms:
                events.append(
                    AlarmsChanged(
                        at_s=now,
                        raised=tuple(a for a in telemetry.alarms if a not in self._alarms),
                        cleared=tuple(a for a in self._alarms if a not in telemetry.alarms),
                        active=telemetry.alarms,
                    )
                )
                self._alarms = telemetry.alarms
            if events:
                await self._record(*events)
        await self._record_members(now)
        self._summarise_members(now)
        self._publish_status(now)
        if closed and self._summaries is not None:
            try:
                self._summaries.send_nowait(closed)
            except (anyio.WouldBlock, anyio.BrokenResourceError):
                self._dropped += len(closed)  # the mirror is stuck or gone; control must go on


def _der_samples(t: Telemetry) -> list[Sample]:
    """A DER's own readings (the site meter's are the site's)."""
    return [s for s in t.samples() if s.point is MeasurementPoint.DER]


def member_telemetry(event: DerMemberSampled) -> Telemetry:
    """A DER's reading as its ``der.member_sampled.v1`` recorded it."""
    return Telemetry(
        at_s=event.at_s,
        der_w=event.der_w,
        der_var=event.der_var,
        soc_pct=event.soc_pct,
        stored_wh=event.stored_wh,
    )


def _member_sampled(now: float, member: MemberStatus) -> DerMemberSampled | None:
    t = member.telemetry
    if t is None or t.at_s != now:
        return None

    def finite(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    return DerMemberSampled(
        at_s=now,
        der=member.der,
        der_w=finite(t.der_w),
        der_var=finite(t.der_var),
        soc_pct=finite(t.soc_pct),
        stored_wh=finite(t.stored_wh),
    )


def _at(settings: ControlSettings, ramps: dict[Mode, Ramp], now: float) -> ControlSettings:
    """The limits with each ramping mode at its point on the trajectory (PROTOCOL.md §4 rule 11)."""
    if not ramps:
        return settings
    changes = {
        mode.value: ramp.value_at(now)
        for mode, ramp in ramps.items()
        if _number(settings, mode) is not None
    }
    return msgspec.structs.replace(settings, **changes) if changes else settings


def _number(settings: ControlSettings | None, mode: Mode) -> float | None:
    """The mode's numeric value in ``settings`` (``None``: unset, or not a number)."""
    value = None if settings is None else getattr(settings, mode.value)
    if isinstance(value, bool) or not isinstance(value, float | int):
        return None
    return float(value)


def _next_on_grid(now: float, period_s: float) -> float:
    """The first multiple of ``period_s`` strictly after ``now`` (as ``SampleSchedule``)."""
    return (math.floor(now / period_s) + 1) * period_s


def _unreachable(operation: str, exc: BaseException, now: float) -> DeviceUnreachable:
    return DeviceUnreachable(
        at_s=now, operation=operation, error_type=type(exc).__name__, error=str(exc)
    )


def _sampled(t: Telemetry) -> TelemetrySampled:
    def finite(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    return TelemetrySampled(
        at_s=t.at_s,
        site_w=finite(t.site_w),
        site_var=finite(t.site_var),
        site_v=finite(t.site_v),
        site_hz=finite(t.site_hz),
        der_w=finite(t.der_w),
        der_var=finite(t.der_var),
        der_v=finite(t.der_v),
        soc_pct=finite(t.soc_pct),
        stored_wh=finite(t.stored_wh),
        connected=t.connected,
    )
