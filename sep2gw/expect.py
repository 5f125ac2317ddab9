"""Check a finished world against its scenario's ``[expect]`` section (issue 8, scope 2).

The keys and what each demands are documented in :mod:`sep2gw.simserver.expectations`. Evidence
comes from two places only: what the simulated utility *accepted* (Responses, readings, mirrors,
DERSettings, every request it saw) and what the gateway's log *decided* (limits in force, ramps,
halts, faults). Each failed expectation is one :class:`sep2gw.world.Violation` whose invariant
names the key (``expect.responses``) and whose detail says what was expected and what happened.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import msgspec

from events.control_events import ControlScheduled, LimitsInForceChanged, RampPlanned
from events.der_model import Mode
from events.hardware_events import RampStarted, TelemetrySampled
from events.link_events import CsipAusFault, CsipAusVersionSettled
from events.pricing_events import PriceInForce
from events.registration_events import RegistrationHalted
from sep2gw.forensics.compliance import (
    COMPLIANCE_MODES,
    ComplianceRow,
    ComplianceSettings,
    compliance_series,
    summarise,
)
from sep2gw.forensics.model import analyse
from sep2gw.simserver import (
    ClockSkew,
    CrashGateway,
    FailRequests,
    RemoveProgram,
    RestoreProgram,
    Scenario,
    SetPin,
    SetPollRate,
    SlowResponses,
    TlsFail,
)
from sep2gw.simserver.audit import (
    Finding,
    LimitStep,
    RateTimeline,
    audit_curtailment,
    audit_der_info,
    audit_duplicate_puts,
    audit_poll_cadence,
    audit_reading_lateness,
)
from sep2gw.simserver.expectations import (
    LIMIT_MODES,
    AuditExpect,
    ComplianceExpect,
    CsipAusExpect,
    DerStatusAt,
    Expect,
    TelemetryExpect,
)
from sep2gw.simserver.notification_audit import notification_findings
from sep2gw.simserver.server import RecordedRequest
from sep2gw.world import Violation, WorldResult
from transport.sep2 import resources as r

__all__ = ["check_expectations", "disturbances", "reading_intervals", "run_audits"]

_TOLERANCE_W = 0.01


def check_expectations(scenario: Scenario, result: WorldResult) -> list[Violation]:
    """Every expectation of ``scenario`` that ``result`` does not meet (empty: all met)."""
    expect = scenario.expect
    if expect is None:
        return []
    violations: list[Violation] = []
    _responses(expect, result, violations)
    _price_responses(expect, result, violations)
    _prices(expect, result, violations)
    _response_times(expect, result, violations)
    _adjacent(expect, result, violations)
    _limits(expect, result, violations)
    if expect.telemetry is not None:
        _telemetry(expect.telemetry, result, violations)
    _requests(expect, result, violations)
    _poll_intervals(expect, result, violations)
    _ramps(expect, result, violations)
    _der_settings(expect, result, violations)
    _der_status_fields(expect, result, violations)
    _der_status(expect, result, violations)
    if expect.compliance:
        _compliance(expect.compliance, result, violations)
    _storage(expect, result, violations)
    _halted(expect, result, violations)
    _log_events(expect, result, violations)
    if expect.csipaus is not None:
        _csipaus(expect.csipaus, result, violations)
    if expect.notifications is not None:
        server = result.server
        violations.extend(
            Violation(invariant="expect.notifications", detail=detail)
            for detail in notification_findings(
                expect.notifications,
                server.state.subscription_audit,
                server.notifier.attempts,
                server.applied,
                start=server.start,
                end=server.start + result.seconds,
            )
        )
    if expect.audit is not None:
        violations.extend(
            Violation(invariant=f"audit.{f.audit}", detail=f.detail, at_s=f.at_s)
            for f in run_audits(expect.audit, result)
        )
    return violations


def _responses(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rules 2-9, 14 and 16: the statuses the utility accepted per mRID, in order."""
    for mrid, wanted in expect.responses.items():
        got = result.server.response_statuses(mrid)
        if got != wanted:
            out.append(
                Violation(
                    invariant="expect.responses",
                    detail=f"mRID {mrid}: expected {wanted}, the server accepted {got}",
                )
            )


def _price_responses(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """The PriceResponses the utility accepted per interval mRID, in order (§4 rules 2-9, 16)."""
    accepted = result.server.state.price_responses
    for mrid, wanted in expect.price_responses.items():
        got = [body.status or 0 for _t, body in accepted if int(body.subject) == int(mrid, 16)]
        if got != wanted:
            out.append(
                Violation(
                    invariant="expect.price_responses",
                    detail=f"price interval {mrid}: expected {wanted}, the server accepted {got}",
                )
            )


def _prices(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """The price in force the log recorded at each offset (``pricing.price_in_force``)."""
    if not expect.prices:
        return
    start = result.server.start
    rates = {t.spec.id: f"{t.rate_mrid:032X}" for t in result.server.state.tariffs}
    records = [rec.event for rec in result.store.read() if isinstance(rec.event, PriceInForce)]
    for spec in expect.prices:
        rate = rates.get(spec.tariff) if spec.tariff is not None else None
        in_force: PriceInForce | None = None
        for event in records:
            if event.at_s <= start + spec.at_s and (rate is None or event.rate_mrid == rate):
                in_force = event
        got = (
            None
            if in_force is None or in_force.interval_mrid is None or not in_force.blocks
            else in_force.blocks[0].price
        )
        wanted = None if spec.none else spec.price
        if got != wanted:
            out.append(
                Violation(
                    invariant="expect.prices",
                    detail=f"at +{spec.at_s:g} s: expected price "
                    f"{'none' if wanted is None else wanted}, the log has "
                    f"{'none' if got is None else got} in force"
                    + ("" if in_force is None else f" (interval {in_force.interval_mrid})"),
                )
            )


def _response_times(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rules 6, 7, 9: Responses at the instants they are owed (when the server is reachable)."""
    start = result.server.start
    for spec in expect.response_times:
        times = [
            q.time - start
            for q in result.server.responses_for(spec.mrid)
            if q.status == 201 and isinstance(q.body, r.Response) and q.body.status == spec.status
        ]
        if not any(spec.at_s <= t <= spec.at_s + spec.tolerance_s for t in times):
            out.append(
                Violation(
                    invariant="expect.response_times",
                    detail=f"mRID {spec.mrid} status {spec.status}: expected at +{spec.at_s:g} s "
                    f"(+{spec.tolerance_s:g} s), accepted at {[f'+{t:g} s' for t in times]}",
                )
            )


def _adjacent(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rule 5: an adjacent event starts at its predecessor's *effective* end."""
    if not expect.adjacent:
        return
    scheduled: dict[int, ControlScheduled] = {}
    for rec in result.store.read():
        if isinstance(rec.event, ControlScheduled):
            scheduled[int(rec.event.mrid, 16)] = rec.event  # the last plan counts
    for pair in expect.adjacent:
        first, then = scheduled.get(int(pair.first, 16)), scheduled.get(int(pair.then, 16))
        if first is None or then is None:
            missing = pair.first if first is None else pair.then
            out.append(
                Violation(invariant="expect.adjacent", detail=f"{missing} was never scheduled")
            )
        elif then.effective_start_s != first.effective_end_s:
            start = result.server.start
            out.append(
                Violation(
                    invariant="expect.adjacent",
                    detail=f"{pair.then} starts at +{then.effective_start_s - start:g} s, "
                    f"{pair.first} ends at +{first.effective_end_s - start:g} s",
                )
            )


def _limits(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """What the controls actor had in force at each offset (its ``limits_in_force`` records)."""
    if not expect.limits:
        return
    start = result.server.start
    records = [
        rec.event for rec in result.store.read() if isinstance(rec.event, LimitsInForceChanged)
    ]
    for limit in expect.limits:
        instant = start + limit.at_s
        in_force = None
        for event in records:  # log order: the last decision made for a time at or before it
            if event.at_s <= instant:
                in_force = event
        for mode, wanted in limit.expected().items():
            field = LIMIT_MODES[mode]
            got = None if in_force is None else getattr(in_force.settings, field)
            if not _same(got, wanted):
                source = "" if in_force is None else in_force.sources.get(Mode(field), "")
                out.append(
                    Violation(
                        invariant="expect.limits",
                        detail=f"at +{limit.at_s:g} s {mode}: expected "
                        f"{'none' if wanted is None else wanted}, in force "
                        f"{'none' if got is None else got}"
                        + (f" (from {source})" if source else ""),
                    )
                )


def _same(got: object, wanted: float | bool | None) -> bool:
    if wanted is None or got is None or isinstance(wanted, bool) or isinstance(got, bool):
        return got is wanted or got == wanted
    if not isinstance(got, int | float):
        return False
    return abs(float(got) - float(wanted)) <= _TOLERANCE_W


def reading_intervals(result: WorldResult) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """(mirror path, MirrorMeterReading mRID) → the (start, duration) of every MirrorReadingSet
    the server accepted, in arrival order (duplicates kept)."""
    out: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for q in result.server.requests:
        if q.method != "POST" or q.status != 201 or not q.path.startswith("/mup/"):
            continue
        body = q.body
        readings = (
            list(body.MirrorMeterReading)
            if isinstance(body, r.MirrorMeterReadingList)
            else [body]
            if isinstance(body, r.MirrorMeterReading)
            else []
        )
        for reading in readings:
            for reading_set in reading.MirrorReadingSet:
                period = reading_set.timePeriod
                if period is not None:
                    out[(q.path, int(reading.mRID))].append((period.start, period.duration))
    return out


def _telemetry(expect: TelemetryExpect, result: WorldResult, out: list[Violation]) -> None:
    """§2 step 8: averages at the post rate, minute-aligned, each interval once, none lost."""
    start = result.server.start
    intervals = reading_intervals(result)

    def fail(detail: str) -> None:
        out.append(Violation(invariant="expect.telemetry", detail=detail))

    per_mirror: dict[str, set[int]] = defaultdict(set)
    for (mirror, _), periods in intervals.items():
        per_mirror[mirror].update(s for s, _ in periods)
    if expect.min_reading_posts is not None:
        if not per_mirror and expect.min_reading_posts > 0:
            fail(f"expected {expect.min_reading_posts} intervals per mirror, no readings accepted")
        for mirror, distinct in sorted(per_mirror.items()):
            if len(distinct) < expect.min_reading_posts:
                fail(
                    f"{mirror}: {len(distinct)} intervals accepted, "
                    f"expected at least {expect.min_reading_posts}"
                )
    for (path, mrid), periods in sorted(intervals.items()):
        where = f"{path} reading {mrid:X}"
        starts = [s for s, _ in periods]
        if expect.every_interval_once:
            twice = sorted({s for s in starts if starts.count(s) > 1})
            if twice:
                fail(f"{where}: intervals posted twice at +{[s - start for s in twice]} s")
            ordered = sorted(set(periods))
            for (a, da), (b, _) in zip(ordered, ordered[1:], strict=False):
                if b > a + da:
                    fail(
                        f"{where}: intervals from +{a + da - start:g} s to +{b - start:g} s missing"
                    )
        if expect.minute_aligned:
            off = sorted({s - start for s in starts if s % 60})
            if off:
                fail(f"{where}: intervals not on a whole minute at +{off} s")
        for rule in expect.post_intervals:
            wrong = sorted(
                {
                    (s - start, d)
                    for s, d in periods
                    if s >= start + rule.from_s and d != rule.interval_s
                }
            )
            if wrong:
                fail(
                    f"{where}: from +{rule.from_s:g} s intervals last {rule.interval_s} s, "
                    f"got (offset, seconds) {wrong[:5]}"
                )
        if expect.covered_from_s is not None and expect.covered_to_s is not None and periods:
            step = periods[-1][1]
            first = start + expect.covered_from_s
            grid = range(int(first + (-first) % step), int(start + expect.covered_to_s), step)
            missing = [t - start for t in grid if t not in set(starts)]
            if missing:
                fail(f"{where}: intervals at +{missing[:10]} s never reached the server")
    if expect.min_mirrors_created is not None:
        created = [
            q
            for q in result.server.requests
            if q.method == "POST" and q.path == "/mup" and q.status == 201
        ]
        if len(created) < expect.min_mirrors_created:
            fail(
                f"{len(created)} MirrorUsagePoints created, "
                f"expected at least {expect.min_mirrors_created}"
            )


def _window(
    requests: list[RecordedRequest], start: float, from_s: float, to_s: float | None
) -> list[RecordedRequest]:
    end = float("inf") if to_s is None else start + to_s
    return [q for q in requests if start + from_s <= q.time < end]


def _requests(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    start = result.server.start
    for spec in expect.requests:
        pattern = re.compile(spec.path)
        matching = [
            q
            for q in _window(result.server.requests, start, spec.from_s, spec.to_s)
            if q.method == spec.method
            and pattern.fullmatch(q.path)
            and (spec.status is None or q.status == spec.status)
        ]
        count = len(matching)
        if count < spec.min_count or (spec.max_count is not None and count > spec.max_count):
            bounds = f">= {spec.min_count}" + (
                "" if spec.max_count is None else f" and <= {spec.max_count}"
            )
            status = "" if spec.status is None else f" -> {spec.status}"
            out.append(
                Violation(
                    invariant="expect.requests",
                    detail=f"{spec.method} {spec.path}{status} in [+{spec.from_s:g}, "
                    f"+{'end' if spec.to_s is None else f'{spec.to_s:g}'}) s: {count} seen, "
                    f"expected {bounds}",
                )
            )


def _poll_intervals(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rule 15: each list polled at its pollRate, neither missed nor over-polled."""
    start = result.server.start
    for spec in expect.poll_intervals:
        pattern = re.compile(spec.path)
        by_path: dict[str, list[float]] = defaultdict(list)
        for q in _window(result.server.requests, start, spec.from_s, spec.to_s):
            if q.method == "GET" and pattern.fullmatch(q.path):
                by_path[q.path].append(q.time)
        if not by_path:
            out.append(
                Violation(invariant="expect.poll_intervals", detail=f"no GET of {spec.path} seen")
            )
        for path, times in sorted(by_path.items()):
            for a, b in zip(times, times[1:], strict=False):
                gap = b - a
                if gap < spec.min_s or (spec.max_s is not None and gap > spec.max_s):
                    out.append(
                        Violation(
                            invariant="expect.poll_intervals",
                            detail=f"{path}: polled {gap:g} s apart at +{a - start:g} s, "
                            f"expected {spec.min_s:g}..{spec.max_s if spec.max_s is not None else 'any'} s",
                        )
                    )


def _ramps(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rule 11: a ramp to the new limit over setGradW's or rampTms' time."""
    if not expect.ramps:
        return
    # (mode, to, seconds) of the core's plans and of the ramps the device started
    ramps: dict[str, list[tuple[str, float, float]]] = {"plan": [], "device": []}
    for rec in result.store.read():
        match rec.event:
            case RampPlanned(mode=mode, to_value=to, start_s=start, end_s=end):
                ramps["plan"].append((mode.value, to, end - start))
            case RampStarted(mode=mode, to_value=to, at_s=start, end_s=end):
                ramps["device"].append((mode.value, to, end - start))
    for spec in expect.ramps:
        field = LIMIT_MODES[spec.mode]
        found = [
            (to, seconds)
            for mode, to, seconds in ramps[spec.on]
            if mode == field and abs(to - spec.to) <= _TOLERANCE_W
        ]
        if not any(abs(seconds - spec.duration_s) <= spec.tolerance_s for _, seconds in found):
            seen = [(round(to, 2), round(seconds, 2)) for to, seconds in found]
            what = "planned" if spec.on == "plan" else "started on the device"
            out.append(
                Violation(
                    invariant="expect.ramps",
                    detail=f"{spec.mode} -> {spec.to:g} over {spec.duration_s:g} s not {what}; "
                    f"ramps to it (value, seconds): {seen}",
                )
            )


def _der_settings(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§4 rule 10 and §2 step 7: a changed default's setGradW is reflected in DERSettings."""
    start = result.server.start
    accepted = [
        q
        for q in result.server.requests
        if q.method == "PUT" and q.status in (200, 201, 204) and isinstance(q.body, r.DERSettings)
    ]
    for spec in expect.der_settings:
        before = [q.body for q in accepted if q.time <= start + spec.at_s]
        last = before[-1] if before else None
        for name, wanted in spec.fields.items():
            got = getattr(last, name, None) if last is not None else None
            if got != wanted:
                out.append(
                    Violation(
                        invariant="expect.der_settings",
                        detail=f"at +{spec.at_s:g} s {name}: expected {wanted}, last DERSettings "
                        + ("none accepted" if last is None else f"accepted has {got}"),
                    )
                )


def _accepted_status_puts(result: WorldResult) -> list[tuple[float, r.DERStatus]]:
    """The DERStatus documents the simulated utility accepted (2xx), with their server times."""
    return [
        (q.time, q.body)
        for q in result.server.requests
        if q.method == "PUT" and 200 <= q.status < 300 and isinstance(q.body, r.DERStatus)
    ]


def _der_status_fields(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§2 step 7: DERStatus follows the device — a PUT showing the change arrived in the window."""
    if not expect.der_status_fields:
        return
    start = result.server.start
    accepted = _accepted_status_puts(result)
    for spec in expect.der_status_fields:
        window = [body for t, body in accepted if start + spec.from_s <= t <= start + spec.to_s]
        if any(_status_fields(body, spec.fields) == spec.fields for body in window):
            continue
        seen = [_status_fields(body, spec.fields) for body in window]
        out.append(
            Violation(
                invariant="expect.der_status_fields",
                detail=f"+{spec.from_s:g}..+{spec.to_s:g} s: expected a DERStatus with "
                f"{spec.fields}, accepted {seen if seen else 'none'}",
            )
        )


def _der_status(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§2 step 7: DERStatus follows the device — the change reported within ``within_s``."""
    if not expect.der_status:
        return
    start = result.server.start
    accepted = _accepted_status_puts(result)
    for spec in expect.der_status:
        window = [
            (t, doc)
            for t, doc in accepted
            if start + spec.at_s <= t <= start + spec.at_s + spec.within_s
        ]
        if any(_reports(spec, doc) for _, doc in window):
            continue
        wanted = [f"{name}={str(value).lower()}" for name, (_, value) in spec.bits().items()]
        if spec.operational_mode is not None:
            wanted.append(f"operational_mode={spec.operational_mode}")
        seen = [f"+{t - start:g} s {_status_text(doc)}" for t, doc in window]
        out.append(
            Violation(
                invariant="expect.der_status",
                detail=f"no DERStatus with {', '.join(wanted)} accepted in "
                f"[+{spec.at_s:g}, +{spec.at_s + spec.within_s:g}] s; accepted there: "
                + (", ".join(seen) if seen else "none"),
            )
        )


def _status_fields(body: r.DERStatus, names: dict[str, int]) -> dict[str, int | None]:
    """The named fields of a DERStatus as numbers (a status type's ``value``)."""
    out: dict[str, int | None] = {}
    for name in names:
        field = getattr(body, name, None)
        value = getattr(field, "value", field)
        out[name] = None if value is None else int(value)
    return out


def _reports(spec: DerStatusAt, doc: r.DERStatus) -> bool:
    connect = doc.genConnectStatus
    for bit, wanted in spec.bits().values():
        if connect is None or bool(int(connect.value) >> bit & 1) != wanted:
            return False
    if spec.operational_mode is not None:
        mode = doc.operationalModeStatus
        if mode is None or mode.value != spec.operational_mode:
            return False
    return True


def _status_text(doc: r.DERStatus) -> str:
    connect = "none" if doc.genConnectStatus is None else f"{int(doc.genConnectStatus.value):#x}"
    mode = doc.operationalModeStatus
    return f"(genConnectStatus {connect}, operationalModeStatus {'none' if mode is None else mode.value})"


def _compliance(specs: list[ComplianceExpect], result: WorldResult, out: list[Violation]) -> None:
    """§5: limits met where they apply (the connection point or the DER), judged exactly as the
    dispute report judges them: the log's limits in force against its telemetry samples."""
    model = analyse(result.store)
    start = result.server.start
    for spec in specs:
        mode = Mode(LIMIT_MODES[spec.mode])
        settings = ComplianceSettings(tolerance_w=spec.tolerance_w, grace_s=spec.grace_s)
        until = math.inf if spec.to_s is None else start + spec.to_s
        rows = [
            row
            for row in compliance_series(model, settings)
            if start + spec.from_s <= row.at_s < until
        ]
        over = sum(s.seconds_over for s in summarise(rows, settings) if s.mode is mode)
        binding = _seconds_binding(rows, mode, spec.tolerance_w)
        window = f"+{spec.from_s:g}..{'end' if spec.to_s is None else f'+{spec.to_s:g}'} s"
        if over > spec.max_seconds_over:
            out.append(
                Violation(
                    invariant="expect.compliance",
                    detail=f"{spec.mode} in {window}: {over:g} s over the limit by more than "
                    f"{spec.tolerance_w:g} W (at most {spec.max_seconds_over:g} s allowed)",
                )
            )
        if binding < spec.min_seconds_binding:
            out.append(
                Violation(
                    invariant="expect.compliance",
                    detail=f"{spec.mode} in {window}: within {spec.tolerance_w:g} W of the limit "
                    f"for {binding:g} s, expected at least {spec.min_seconds_binding:g} s (the "
                    "limit never mattered)",
                )
            )


def _storage(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """CSIP-AUS v1.3 storage (``opModStorageTargetW``): the battery follows the storage target in
    force within its limits, judged on the DER's own samples (each held until the next)."""
    if not expect.storage:
        return
    samples = [
        (rec.event.at_s, rec.event.der_w)
        for rec in result.store.read()
        if isinstance(rec.event, TelemetrySampled) and rec.event.der_w is not None
    ]
    start = result.server.start
    for spec in expect.storage:
        begin, end = start + spec.from_s + spec.grace_s, start + spec.to_s
        off = 0.0
        seen = 0
        worst: tuple[float, float] | None = None
        for (at, der_w), (after, _) in zip(samples, [*samples[1:], (end, 0.0)], strict=True):
            if not begin <= at < end:
                continue
            seen += 1
            if abs(der_w - spec.der_w) > spec.tolerance_w:
                off += min(after, end) - at
                if worst is None or abs(der_w - spec.der_w) > abs(worst[1] - spec.der_w):
                    worst = (at - start, der_w)
        window = f"+{spec.from_s + spec.grace_s:g}..+{spec.to_s:g} s"
        if seen == 0:
            out.append(
                Violation(invariant="expect.storage", detail=f"no DER sample in {window}")
            )
        elif off > spec.max_seconds_off:
            assert worst is not None
            out.append(
                Violation(
                    invariant="expect.storage",
                    detail=f"in {window} the battery ran {off:g} s more than {spec.tolerance_w:g} W "
                    f"off {spec.der_w:g} W (at most {spec.max_seconds_off:g} s allowed); worst "
                    f"{worst[1]:g} W at +{worst[0]:g} s",
                )
            )


def _seconds_binding(rows: list[ComplianceRow], mode: Mode, tolerance_w: float) -> float:
    """Seconds the measured power ran within ``tolerance_w`` of (or above) the limit in force."""
    point, sign = next((p, sign) for m, p, sign in COMPLIANCE_MODES if m is mode)
    seconds = 0.0
    for row in rows:
        limit = getattr(row, mode.value)  # the row's limit fields are named as the modes
        measured = row.site_w if point == "site" else row.der_w
        if limit is not None and measured is not None and sign * measured >= limit - tolerance_w:
            seconds += row.hold_s
    return seconds


def _halted(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    """§2 step 4: on a PIN mismatch all traffic to the server stops."""
    if expect.halted is None:
        return
    halts = [rec.event for rec in result.store.read() if isinstance(rec.event, RegistrationHalted)]
    if not expect.halted:
        if halts:
            out.append(
                Violation(
                    invariant="expect.halted", detail=f"halted unexpectedly: {halts[0].reason}"
                )
            )
        return
    if not halts:
        out.append(Violation(invariant="expect.halted", detail="no registration.halted record"))
        return
    after = [q for q in result.server.requests if q.time > halts[0].at_s]
    if after:
        q = after[0]
        out.append(
            Violation(
                invariant="expect.halted",
                detail=f"{len(after)} requests after the halt, first {q.method} {q.path} "
                f"at +{q.time - result.server.start:g} s",
            )
        )


def _log_events(expect: Expect, result: WorldResult, out: list[Violation]) -> None:
    if not expect.log_events and not expect.no_log_events:
        return
    seen = {rec.type for rec in result.store.read_raw()}
    for name in expect.log_events:
        if name not in seen:
            out.append(Violation(invariant="expect.log_events", detail=f"no {name} record"))
    for name in expect.no_log_events:
        if name in seen:
            out.append(Violation(invariant="expect.no_log_events", detail=f"a {name} record"))


def _csipaus(expect: CsipAusExpect, result: WorldResult, out: list[Violation]) -> None:
    """Issue 18 points 2 and 3: the version the gateway ends up speaking, how it learned it, the
    discovery fallback it recorded (or none), and the CSIP-AUS server faults it recorded."""
    settled = [
        msgspec.json.decode(rec.body, type=CsipAusVersionSettled)
        for rec in result.store.read_raw()
        if rec.type == "link.csipaus_version.v1"
    ]
    faults = {
        msgspec.json.decode(rec.body, type=CsipAusFault).kind
        for rec in result.store.read_raw()
        if rec.type == "link.csipaus_fault.v1"
    }
    if not settled:
        out.append(Violation(invariant="expect.csipaus", detail="no link.csipaus_version.v1 record"))
        return
    last = settled[-1]
    if (last.version, last.learned) != (expect.version, expect.learned):
        out.append(
            Violation(
                invariant="expect.csipaus",
                detail=f"{last.version} learned by {last.learned}, expected {expect.version} "
                f"learned by {expect.learned}",
            )
        )
    fallbacks = [s.fallback for s in settled if s.fallback]
    if expect.fallback and not any(re.search(expect.fallback, f) for f in fallbacks):
        out.append(
            Violation(
                invariant="expect.csipaus",
                detail=f"no discovery fallback matching {expect.fallback!r} (recorded: "
                f"{fallbacks or 'none'})",
            )
        )
    if not expect.fallback and fallbacks:
        out.append(
            Violation(invariant="expect.csipaus", detail=f"discovery fell back: {fallbacks[0]}")
        )
    if faults != set(expect.faults):
        out.append(
            Violation(
                invariant="expect.csipaus",
                detail=f"CSIP-AUS faults {sorted(faults)}, expected {sorted(expect.faults)}",
            )
        )


def disturbances(result: WorldResult) -> list[tuple[float, float]]:
    """Windows (server epoch seconds) in which the server or the world disturbed the client — a
    failing, slow or TLS-refusing server, a gateway crash until its restart, a clock step, a
    change of programs or PIN, a Notification delivered — each followed by one poll cycle of
    recovery."""
    windows: list[tuple[float, float]] = []
    for at, action in result.server.applied:
        if isinstance(action, FailRequests | TlsFail):
            end = at + action.duration_s
        elif isinstance(action, SlowResponses):
            end = at + action.duration_s + action.delay_s
        elif isinstance(action, CrashGateway):
            end = at + action.down_s
        elif isinstance(action, ClockSkew | RemoveProgram | RestoreProgram | SetPin):
            end = at
        else:
            continue
        windows.append((at, end + max(result.server.state.poll_rates.values())))
    # A delivered Notification lets the gateway read its resource at once (issue 19 point 3).
    cycle = max(result.server.state.poll_rates.values())
    windows.extend((a.time, a.time + cycle) for a in result.server.notifier.delivered())
    return windows


def _rates(result: WorldResult) -> RateTimeline:
    changes = [
        (at, a.resource, float(a.seconds))
        for at, a in result.server.applied
        if isinstance(a, SetPollRate)
    ]
    return RateTimeline(float(result.server.state.scenario.server.poll_rate_s), changes)


def _limit_steps(result: WorldResult) -> list[LimitStep]:
    """The export and generation limits of the controls the server served, as the server planned
    them: not randomised, not deleted, superseded or cancelled before they started."""
    steps: list[LimitStep] = []
    for program in result.server.state.programs:
        for c in program.controls:
            if c.deleted or c.superseded_by is not None or c.randomize_start:
                continue
            until = c.start + c.duration
            if c.cancelled_at is not None:
                until = min(until, c.cancelled_at)
            if until <= c.start:
                continue
            for mode in ("opModExpLimW", "opModGenLimW"):
                power = getattr(c.base, mode)
                if power is None:
                    continue
                steps.append(
                    LimitStep(
                        label=f"control {c.mrid:X}",
                        mode=mode,
                        at_s=float(c.start),
                        until_s=float(until),
                        limit_w=power.value * 10.0**power.multiplier,
                        ramp_s=None if c.base.rampTms is None else c.base.rampTms / 100,
                    )
                )
    return steps


def run_audits(audit: AuditExpect, result: WorldResult) -> list[Finding]:
    """The server-side audits ``audit`` enables over ``result`` (``sep2gw.simserver.audit``)."""
    server = result.server
    start = server.start
    requests = server.requests
    end = start + result.seconds
    windows = disturbances(result)
    rates = _rates(result)
    findings: list[Finding] = []
    if audit.poll_cadence is not None:
        spec = audit.poll_cadence
        halts = [
            rec.event.at_s
            for rec in result.store.read()
            if isinstance(rec.event, RegistrationHalted)
        ]
        until = min([end, *halts, *([start + spec.to_s] if spec.to_s is not None else [])])
        findings += audit_poll_cadence(
            requests,
            rates=rates,
            disturbances=windows,
            start_s=start + spec.from_s,
            end_s=until,
            slack_s=spec.slack_s,
            late_factor=spec.late_factor,
        )
    if audit.der_info is not None:
        findings += audit_der_info(requests, start_s=start)
    if audit.duplicate_puts is not None:
        findings += audit_duplicate_puts(
            requests, rates=rates, start_s=start, slack_s=audit.duplicate_puts.slack_s
        )
    if audit.reading_lateness is not None:
        findings += audit_reading_lateness(
            requests,
            disturbances=windows,
            start_s=start,
            grace_s=audit.reading_lateness.grace_s,
        )
    if audit.curtailment is not None:
        samples = [
            (rec.event.at_s, rec.event.site_w, rec.event.der_w)
            for rec in result.store.read()
            if isinstance(rec.event, TelemetrySampled)
        ]
        settings = [
            (q.time, q.body)
            for q in requests
            if q.method == "PUT" and 200 <= q.status < 300 and isinstance(q.body, r.DERSettings)
        ]
        findings += audit_curtailment(
            _limit_steps(result),
            samples=samples,
            settings=settings,
            start_s=start,
            tolerance_s=audit.curtailment.tolerance_s,
            tolerance_w=audit.curtailment.tolerance_w,
        )
    return findings
