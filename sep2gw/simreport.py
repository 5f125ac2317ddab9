"""What a simulated world tells people: its summary, and, when an invariant broke, a failure report
(issue 8, scope 4) with the seed, the scenario, the first violated invariant with its simulated time,
the log around it (one readable line per record, as ``sep2gw.timeline`` writes them) and the exact
command that reproduces it.

Also :func:`scenario_toml`, which writes a scenario back as TOML that ``parse_scenario`` reads to
the same value (the swarm saves the random scenarios it runs so a failure can be replayed).
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import msgspec

from events.envelope import Recorded
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.mirror_events import ReadingPosted
from events.registration_events import Polled, Posted
from events.registry import every_version
from sep2gw.invariants import INVARIANTS, Violation
from sep2gw.rules import rule
from sep2gw.simserver import Scenario
from sep2gw.simserver.notification_audit import NotificationCounts
from sep2gw.timeline import Timeline
from sep2gw.world import WorldResult, check, price_checks
from transport.sep2 import resources as r

__all__ = [
    "WorldSummary",
    "energy_curtailed_kwh",
    "failure_report",
    "reproduce_command",
    "scenario_toml",
    "summarize",
]

#: Records of the log shown before and after the violation in a failure report.
EXCERPT_BEFORE = 25
EXCERPT_AFTER = 5
_TELEMETRY_TAG = str(TelemetrySampled.__struct_config__.tag)


class WorldSummary(msgspec.Struct, kw_only=True):
    scenario: str
    seed: int
    sim_seconds: float
    boots: int
    responses: dict[str, list[int]]  # mRID (hex) -> statuses the server accepted, in order
    energy_curtailed_kwh: float
    polls: int  # GETs the server answered
    posts: int  # MirrorReadingSet POSTs the server accepted
    records: int
    head_hash: str
    invariants_held: dict[str, int]
    violations: list[Violation]
    #: Responses accepted again after an answer the gateway never got (see sep2gw.invariants).
    ambiguous_deliveries: int = 0
    #: The server's subscription audit (issue 19 point 3): subscriptions accepted and refused,
    #: notifications made, delivered (each copy), dropped, duplicated, given up.
    notifications: dict[str, int] = {}

    def lines(self) -> list[str]:
        status = "VIOLATED" if self.violations else "all invariants held"
        out = [
            f"world {self.scenario!r} seed {self.seed}: {self.sim_seconds / 3600:.2f} h simulated, "
            f"{self.boots} gateway start(s), {self.records} records, head {self.head_hash[:16]}…",
            "  responses: "
            + (
                ", ".join(f"{m.lstrip('0') or '0'}={s}" for m, s in sorted(self.responses.items()))
                or "none"
            ),
            f"  energy curtailed {self.energy_curtailed_kwh:.3f} kWh, {self.polls} polls, "
            f"{self.posts} reading posts",
            f"  invariants: {status} ("
            + ", ".join(f"{name} ×{n}" for name, n in self.invariants_held.items() if n)
            + ")",
        ]
        if self.notifications.get("accepted") or self.notifications.get("refused"):
            n = self.notifications
            out.append(
                f"  subscriptions: {n['accepted']} accepted, {n['refused']} refused; notifications: "
                f"{n['made']} made, {n['delivered']} delivered, {n['dropped']} dropped, "
                f"{n['duplicated']} duplicated, {n['gave_up']} given up"
            )
        if self.ambiguous_deliveries:
            out.append(
                f"  {self.ambiguous_deliveries} Response(s) delivered twice after a lost answer "
                f"(retried: {rule(16)}; not a violation)"
            )
        out += [f"  VIOLATED {v.invariant}: {v.detail}" for v in self.violations]
        return out


def energy_curtailed_kwh(result: WorldResult) -> float:
    """Energy the battery did not deliver because of the utility's controls: for each telemetry
    sample, how far its output fell short of what it would have done on its own (self-consumption,
    within its ratings), over the sample period."""
    sim = result.battery
    if sim is None:
        return 0.0
    b = sim.battery
    total_wh = 0.0
    last: float | None = None
    for record in result.store.read(types=(_TELEMETRY_TAG,)):
        event = record.event
        assert isinstance(event, TelemetrySampled)
        if event.der_w is None:
            continue
        dt = 0.0 if last is None else min(event.at_s - last, 10.0)
        last = event.at_s
        free = sim.load_w(event.at_s) - sim.pv_w(event.at_s)
        free = min(max(free, -min(b.max_charge_w, b.max_w)), min(b.max_discharge_w, b.max_w))
        total_wh += max(0.0, free - event.der_w) * dt / 3600.0
    return total_wh / 1000.0


def summarize(result: WorldResult) -> WorldSummary:
    server = result.server
    responses: dict[str, list[int]] = {}
    for q in server.requests:
        if q.method == "POST" and q.status == 201 and isinstance(q.body, r.Response):
            responses.setdefault(f"{int(q.body.subject):032X}", []).append(q.body.status or 0)
    head = result.store.head()
    violations = check(result)
    held = dict(result.monitor.checks) if result.monitor is not None else {}
    if "log verifies" in held and not any(v.invariant == "log verifies" for v in violations):
        held["log verifies"] += 1
    prices = "prices in force were the server's"
    if prices in held and not any(v.invariant == prices for v in violations):
        held[prices] += price_checks(result)[1]
    return WorldSummary(
        scenario=result.scenario,
        seed=result.seed,
        sim_seconds=result.seconds,
        boots=result.boots,
        responses=responses,
        energy_curtailed_kwh=energy_curtailed_kwh(result),
        polls=sum(1 for q in server.requests if q.method == "GET" and q.status == 200),
        posts=sum(1 for q in server.requests if q.method == "POST" and q.path.startswith("/mup/")),
        records=head.seq,
        head_hash=head.hash.hex(),
        invariants_held={name: held.get(name, 0) for name in INVARIANTS},
        violations=violations,
        ambiguous_deliveries=0 if result.monitor is None else result.monitor.ambiguous_deliveries,
        notifications=_notifications(result),
    )


def _notifications(result: WorldResult) -> dict[str, int]:
    counts = NotificationCounts(
        result.server.state.subscription_audit, result.server.notifier.attempts
    )
    return {
        "accepted": counts.accepted,
        "refused": counts.refused,
        "made": counts.made,
        "delivered": counts.delivered,
        "dropped": counts.dropped,
        "duplicated": counts.duplicated,
        "gave_up": counts.gave_up,
    }


def reproduce_command(scenario_path: str | Path | None, seed: int, site: Path | None = None) -> str:
    """The command that runs the same world again (``None``: the built-in demo)."""
    words = ["python3", "-m", "sep2gw", "sim"]
    if scenario_path is not None:
        words.append(str(scenario_path))
    words += ["--seed", str(seed)]
    if site is not None:
        words += ["--site", str(site)]
    return shlex.join(words)


def failure_report(
    result: WorldResult,
    violation: Violation,
    *,
    scenario_path: str | Path | None,
    site: Path | None = None,
) -> str:
    """Seed, scenario, the first violated invariant and when, the log around it, and the command
    that reproduces it."""
    timeline = Timeline()
    at = violation.at_s
    records = list(result.store.read())
    if at is None:
        index = len(records)
    else:
        index = next((i for i, rec in enumerate(records) if rec.server_time > at), len(records))
    lines = [
        "=" * 78,
        f"INVARIANT VIOLATED: {violation.invariant}",
        f"  {violation.detail}",
        f"  when: {timeline.stamp(at)} (t+{at - result.server.start:.1f} s of the scenario)"
        if at is not None
        else "  when: found after the run",
        f"  world: scenario {result.scenario!r}"
        + (f" ({scenario_path})" if scenario_path else " (built-in demo)")
        + f", seed {result.seed}, {result.boots} gateway start(s)",
        f"  log around it (records {max(0, index - EXCERPT_BEFORE) + 1}..{index + EXCERPT_AFTER}):",
    ]
    lines += [
        f"    {'>' if i == index - 1 else ' '} #{rec.seq:<6} {text}"
        for i, rec in enumerate(records)
        if max(0, index - EXCERPT_BEFORE) <= i < index + EXCERPT_AFTER
        and (text := _line(timeline, rec)) is not None
    ]
    lines += [f"  reproduce: {reproduce_command(scenario_path, result.seed, site)}", "=" * 78]
    return "\n".join(lines)


#: Periodic records the excerpt leaves out when the timeline has no line for them.
_ROUTINE = every_version(TelemetrySampled, LimitsApplied, ReadingPosted, Polled, Posted)


def _line(timeline: Timeline, record: Recorded) -> str | None:
    text = timeline.line(record)
    tag = str(record.event.__struct_config__.tag)
    if text is None and tag not in _ROUTINE:  # the rest get their tag: the excerpt is short
        text = f"{timeline.stamp(record.server_time)}  {tag}"
    return text


# ------------------------------------------------------------------------------------ scenario TOML
def scenario_toml(scenario: Scenario) -> str:
    """``scenario`` as TOML that parses back to an equal value (defaults omitted)."""
    data = msgspec.to_builtins(scenario)
    assert isinstance(data, dict)
    out: list[str] = []
    for key, value in data.items():
        if value is not None and not isinstance(value, dict | list):  # None: an absent section
            out.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"\n[{key}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None]
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                out.append(f"\n[[{key}]]")
                out += [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML cannot hold {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")
