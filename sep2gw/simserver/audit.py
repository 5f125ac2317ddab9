"""What a strict CSIP-AUS test server audits in a client's traffic (issue 14, "What to build" 4).

Pure functions over what the simulated utility recorded (``SimUtilityServer.requests``, the
actions it applied) and, for curtailment, the site's measurements: each returns the
:class:`Finding` s of one audit, empty when the client passed it. :mod:`sep2gw.expect` runs the
audits a scenario's ``[expect.audit]`` section names and reports each finding as a violation
(``audit.<name>``), so a world fails on them.

The audits, precisely:

``poll_cadence`` (PROTOCOL.md §2 step 7, §4 rule 15)
    Every resource the client depends on — each one it read at least once (first pages only) —
    is re-read at the ``pollRate`` the server advertises for it (:func:`rate_key`: its own, else
    its list's, else the DeviceCapability's): consecutive reads at least ``pollRate - slack``
    apart (an extra poll) and at most ``late_factor * pollRate + slack`` (a miss), and the last
    read no longer than that before the end of the run. A gap that touches a disturbance (the
    server failing, slow or refusing TLS, a crash of the gateway, a clock step, a change of
    programs or PIN) is not judged; while a rate changes, the gap is judged against every rate
    in force during it. Reading a list again around a POST to it (looking for what was just
    created) is part of creating, not an extra poll.

``der_info`` (§2 step 7)
    Every DERCapability, DERSettings, DERStatus and DERAvailability the client PUT carries every
    element the schema makes mandatory (``minOccurs`` ≥ 1 in :mod:`transport.sep2.schema_order`)
    and the ones the CSIP-AUS profile requires (:data:`PROFILE_REQUIRED`) — from its first PUT.

``duplicate_puts`` (§2 step 7)
    A DER information document is not PUT again, unchanged (timestamps aside), within one DER
    information cycle (the DERList's ``pollRate``) of the same document being accepted.

``reading_lateness`` (§2 step 8)
    Each reading interval reaches the server in the first post cycle after it closes: its first
    POST no later than ``grace_s`` after the interval's end (intervals whose deadline falls in a
    disturbance are judged by the backlog expectations instead).

``curtailment`` (§4 rule 11, §5)
    When a control the server serves lowers an export or generation limit below what the site
    (export: site meter) or the DER (generation) measured just before its start, the measured
    power reaches the limit (within ``tolerance_w``) within the time the control's ``rampTms``
    or the gradient the client declared (its last accepted DERSettings' ``setGradW`` of
    ``setMaxW``, from the measured power) allows, plus ``tolerance_s``.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec

from sep2gw.simserver.server import RecordedRequest
from transport.sep2 import resources as r
from transport.sep2.schema_order import TYPES

__all__ = [
    "AUDITS",
    "DER_INFO_TYPES",
    "PROFILE_REQUIRED",
    "Finding",
    "LimitStep",
    "RateTimeline",
    "audit_curtailment",
    "audit_der_info",
    "audit_duplicate_puts",
    "audit_poll_cadence",
    "audit_reading_lateness",
    "mandatory_elements",
    "rate_key",
]

#: The audits by name (the keys of ``[expect.audit]``).
AUDITS: Final = ("poll_cadence", "der_info", "duplicate_puts", "reading_lateness", "curtailment")

#: DER information documents the client PUTs (§2 step 7).
DER_INFO_TYPES: Final = (r.DERCapability, r.DERSettings, r.DERStatus, r.DERAvailability)

#: Elements the CSIP-AUS profile requires beyond the schema's minOccurs (PROTOCOL.md §2 step 7:
#: DERStatus reports the connection and operational mode from its first PUT; the DOE modes are
#: declared in DERCapability and DERSettings).
PROFILE_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "DERCapability": ("doeModesSupported",),
    "DERSettings": ("setMaxW", "doeModesEnabled"),
    "DERStatus": ("genConnectStatus", "operationalModeStatus"),
    "DERAvailability": (),
}

#: Fields that say *when*, not *what*: an otherwise identical document is a duplicate.
_TIMESTAMPS: Final = frozenset({"href", "readingTime", "updatedTime", "dateTime"})


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One failed audit: which, when (server epoch seconds) and what."""

    audit: str
    at_s: float
    detail: str


# ---------------------------------------------------------------------------- poll cadence

_RATE_PATHS: Final = (
    (re.compile(r"/dcap"), "dcap"),
    (re.compile(r"/tm"), "time"),
    (re.compile(r"/edev(/[0-9]+)?"), "edev"),
    (re.compile(r"/edev/[0-9]+/rg"), "reg"),
    (re.compile(r"/edev/[0-9]+/fsa(/[0-9]+)?"), "fsa"),
    (re.compile(r"/edev/[0-9]+/fsa/[0-9]+/derp"), "derp"),
    (re.compile(r"(/edev/[0-9]+)?/derp/[0-9]+(/dderc|/derc|/actderc)?"), "derp"),
    (re.compile(r"/edev/[0-9]+/der(/[0-9]+)?"), "der"),
    (re.compile(r"/mup(/[0-9]+)?"), "mup"),
)


def rate_key(path: str) -> str | None:
    """Which advertised pollRate governs re-reading ``path`` (PROTOCOL.md §2 step 7: the
    resource's own, else its list's, else the DeviceCapability's), as the simulated server
    names its rates; ``None``: not a resource the client polls."""
    for pattern, key in _RATE_PATHS:
        if pattern.fullmatch(path):
            return key
    return None


class RateTimeline:
    """The pollRate the server advertised for each key over time: ``initial`` seconds for every
    key, then each ``(at, key, seconds)`` change (``key`` ``"all"``: every key)."""

    def __init__(self, initial: float, changes: Iterable[tuple[float, str, float]] = ()) -> None:
        self.initial = initial
        self.changes = sorted(changes, key=lambda c: c[0])

    def at(self, key: str, t: float) -> float:
        rate = self.initial
        for when, which, seconds in self.changes:
            if when > t:
                break
            if which in (key, "all"):
                rate = seconds
        return rate

    def during(self, key: str, a: float, b: float) -> list[float]:
        """Every rate in force for ``key`` at some instant of ``[a, b]``."""
        rates = [self.at(key, a)]
        rates += [s for when, which, s in self.changes if a < when <= b and which in (key, "all")]
        return rates


def _touches(a: float, b: float, windows: Sequence[tuple[float, float]], slack: float) -> bool:
    return any(start - slack <= b and a <= end + slack for start, end in windows)


def _first_page(q: RecordedRequest) -> bool:
    query = q.target.partition("?")[2]
    params = dict(part.partition("=")[::2] for part in query.split("&") if part)
    return params.get("s", "0") == "0"


def audit_poll_cadence(
    requests: Sequence[RecordedRequest],
    *,
    rates: RateTimeline,
    disturbances: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
    slack_s: float = 1.0,
    late_factor: float = 1.5,
) -> list[Finding]:
    """PROTOCOL.md §2 step 7 and §4 rule 15: every resource the client read in
    ``[start_s, end_s]`` is re-read at its advertised pollRate, neither missed nor over-polled."""
    polls: dict[str, list[float]] = defaultdict(list)
    posts: dict[str, list[float]] = defaultdict(list)  # creating in a list is not polling it
    for q in requests:
        if q.method == "POST":
            posts[q.path].append(q.time)
        if (
            q.method == "GET"
            and q.status == 200
            and start_s <= q.time <= end_s
            and rate_key(q.path) is not None
            and _first_page(q)
        ):
            polls[q.path].append(q.time)
    findings: list[Finding] = []
    for path, times in sorted(polls.items()):
        key = rate_key(path)
        assert key is not None
        for a, b in zip(times, [*times[1:], None], strict=True):
            last = b is None
            until = end_s if b is None else b
            if _touches(a, until, disturbances, slack_s):
                continue
            candidates = rates.during(key, a - rates.at(key, a), until)
            low, high = min(candidates) - slack_s, max(candidates) * late_factor + slack_s
            gap = until - a
            creating = any(a - slack_s <= t <= until + slack_s for t in posts[path])
            if not last and gap < low and not creating:
                findings.append(
                    Finding(
                        audit="poll_cadence",
                        at_s=until,
                        detail=f"{path} read again {gap:.1f} s after +{a - start_s:g} s; "
                        f"pollRate is {_rates(candidates)} s (an extra poll)",
                    )
                )
            elif gap > high:
                what = "never read again" if last else f"read again only {gap:.1f} s later"
                findings.append(
                    Finding(
                        audit="poll_cadence",
                        at_s=a + high,
                        detail=f"{path} read at +{a - start_s:g} s, then {what}"
                        + (f" (to the end, {gap:.1f} s)" if last else "")
                        + f"; pollRate is {_rates(candidates)} s (a missed poll)",
                    )
                )
    return findings


def _rates(rates: Sequence[float]) -> str:
    distinct = sorted(set(rates))
    return "/".join(f"{x:g}" for x in distinct)


# ------------------------------------------------------------------------- DER information


def mandatory_elements(type_name: str) -> tuple[str, ...]:
    """Elements of ``type_name`` the schema requires (``minOccurs`` ≥ 1, through its bases) and
    the CSIP-AUS profile adds (:data:`PROFILE_REQUIRED`), in schema order."""
    chain: list[str] = []
    name: str | None = type_name
    while name is not None:
        chain.append(name)
        name = TYPES[name][0]
    required = [
        member[0]
        for base in reversed(chain)
        for member in TYPES[base][1]
        if not member[2] and member[5] >= 1
    ]
    required += [e for e in PROFILE_REQUIRED.get(type_name, ()) if e not in required]
    return tuple(required)


def audit_der_info(requests: Sequence[RecordedRequest], *, start_s: float) -> list[Finding]:
    """PROTOCOL.md §2 step 7: every DER information document PUT is complete, from the first."""
    findings: list[Finding] = []
    for q in requests:
        body = q.body
        if q.method != "PUT" or not isinstance(body, DER_INFO_TYPES):
            continue
        name = type(body).__name__
        missing = [e for e in mandatory_elements(name) if getattr(body, e, None) is None]
        if missing:
            findings.append(
                Finding(
                    audit="der_info",
                    at_s=q.time,
                    detail=f"{name} PUT to {q.path} at +{q.time - start_s:g} s lacks "
                    + ", ".join(missing),
                )
            )
    return findings


def _content(value: Any) -> Any:
    """A document's fields, nested, without the ones that only say when."""
    if isinstance(value, msgspec.Struct):
        return {
            name: _content(getattr(value, name))
            for name in value.__struct_fields__
            if name not in _TIMESTAMPS
        }
    if isinstance(value, list | tuple):
        return [_content(v) for v in value]
    return value


def audit_duplicate_puts(
    requests: Sequence[RecordedRequest],
    *,
    rates: RateTimeline,
    start_s: float,
    slack_s: float = 1.0,
) -> list[Finding]:
    """PROTOCOL.md §2 step 7: DER information is re-PUT on change, not again unchanged within a
    cycle (the DERList's pollRate) of the same document being accepted."""
    accepted: dict[str, tuple[float, Any]] = {}
    findings: list[Finding] = []
    for q in requests:
        body = q.body
        if q.method != "PUT" or not isinstance(body, DER_INFO_TYPES):
            continue
        content = _content(body)
        previous = accepted.get(q.path)
        if previous is not None:
            at, before = previous
            cycle = rates.at("der", at)
            if before == content and q.time - at < cycle - slack_s:
                findings.append(
                    Finding(
                        audit="duplicate_puts",
                        at_s=q.time,
                        detail=f"{type(body).__name__} PUT to {q.path} at +{q.time - start_s:g} s "
                        f"unchanged since the one accepted at +{at - start_s:g} s (cycle "
                        f"{cycle:g} s)",
                    )
                )
        if 200 <= q.status < 300:
            accepted[q.path] = (q.time, content)
    return findings


# ------------------------------------------------------------------------------- readings


def _reading_sets(body: msgspec.Struct | None) -> list[tuple[int, r.MirrorReadingSet]]:
    readings: list[r.MirrorMeterReading] = []
    if isinstance(body, r.MirrorMeterReading):
        readings = [body]
    elif isinstance(body, r.MirrorMeterReadingList | r.MirrorUsagePoint):
        readings = list(body.MirrorMeterReading)
    return [(int(m.mRID), s) for m in readings for s in m.MirrorReadingSet]


def audit_reading_lateness(
    requests: Sequence[RecordedRequest],
    *,
    disturbances: Sequence[tuple[float, float]],
    start_s: float,
    grace_s: float = 10.0,
) -> list[Finding]:
    """PROTOCOL.md §2 step 8: each interval is posted in the first cycle after it closes (its
    first POST at most ``grace_s`` after its end)."""
    first: dict[tuple[str, int, int], tuple[float, int]] = {}
    for q in requests:
        if q.method != "POST" or not q.path.startswith("/mup"):
            continue
        for mrid, reading_set in _reading_sets(q.body):
            period = reading_set.timePeriod
            if period is not None:
                first.setdefault((q.path, mrid, period.start), (q.time, period.duration))
    late: dict[str, list[str]] = defaultdict(list)  # path -> late intervals (one per period)
    first_late: dict[str, float] = {}  # path -> when the first late interval arrived
    for (path, _, interval), (posted, duration) in sorted(
        first.items(), key=lambda item: (item[0][0], item[0][2], item[0][1])
    ):
        close = interval + duration
        deadline = close + grace_s
        if posted <= deadline or _touches(close, deadline, disturbances, 0.0):
            continue
        note = f"+{interval - start_s:g}..+{close - start_s:g} s posted at +{posted - start_s:g} s"
        if note not in late[path]:
            late[path].append(note)
            first_late[path] = min(first_late.get(path, posted), posted)
    return [
        Finding(
            audit="reading_lateness",
            at_s=first_late[path],
            detail=f"{path}: {len(notes)} interval(s) posted more than {grace_s:g} s after they "
            f"closed: {'; '.join(notes[:3])}" + (" …" if len(notes) > 3 else ""),
        )
        for path, notes in sorted(late.items())
    ]


# ----------------------------------------------------------------------------- curtailment


class LimitStep(msgspec.Struct, frozen=True, kw_only=True):
    """A limit the server asks for from ``at_s`` to ``until_s`` (server epoch seconds): ``mode``
    (``opModExpLimW`` at the site meter, ``opModGenLimW`` at the DER), ``limit_w``, and the
    control's ``rampTms`` in seconds, if it carries one; ``label`` names it in findings."""

    label: str
    mode: str
    at_s: float
    until_s: float
    limit_w: float
    ramp_s: float | None = None


def _gradient_w_per_s(settings: Sequence[tuple[float, r.DERSettings]], at: float) -> float | None:
    """W/s the client declared it ramps at (its last accepted DERSettings at or before ``at``:
    ``setGradW`` hundredths of a percent of ``setMaxW`` per second); ``None``: none declared."""
    last = None
    for when, doc in settings:
        if when <= at:
            last = doc
    if last is None or not last.setGradW or last.setMaxW is None:
        return None
    max_w = last.setMaxW.value * 10.0**last.setMaxW.multiplier
    return last.setGradW / 10_000 * max_w


def audit_curtailment(
    steps: Sequence[LimitStep],
    *,
    samples: Sequence[tuple[float, float | None, float | None]],
    settings: Sequence[tuple[float, r.DERSettings]],
    start_s: float,
    tolerance_s: float = 10.0,
    tolerance_w: float = 100.0,
) -> list[Finding]:
    """PROTOCOL.md §4 rule 11 and §5: a new lower limit is reached within the ramp time its
    ``rampTms`` or the declared gradient implies from the measured power, plus ``tolerance_s``.
    ``samples``: ``(time, site W, DER W)``, W positive exporting / discharging."""
    findings: list[Finding] = []
    for step in steps:
        column = 1 if step.mode == "opModExpLimW" else 2
        before = [s[column] for s in samples if s[0] < step.at_s and s[column] is not None]
        if not before:
            continue
        measured = float(before[-1])  # type: ignore[arg-type]
        excess = measured - step.limit_w
        if excess <= tolerance_w:
            continue  # already within the new limit: nothing to curtail
        if step.ramp_s is not None:
            allowed, why = step.ramp_s, f"rampTms {step.ramp_s:g} s"
        else:
            gradient = _gradient_w_per_s(settings, step.at_s)
            allowed = 0.0 if gradient is None else excess / gradient
            why = (
                "no setGradW declared (a step)"
                if gradient is None
                else f"{excess:.0f} W at the declared {gradient:g} W/s"
            )
        deadline = step.at_s + allowed + tolerance_s
        if deadline >= step.until_s:
            continue  # the limit ends before it could be judged
        reached = next(
            (
                t
                for t, *values in samples
                if t >= step.at_s
                and values[column - 1] is not None
                and float(values[column - 1]) <= step.limit_w + tolerance_w  # type: ignore[arg-type]
            ),
            math.inf,
        )
        if reached > deadline:
            took = "never" if reached == math.inf else f"after {reached - step.at_s:.0f} s"
            findings.append(
                Finding(
                    audit="curtailment",
                    at_s=deadline,
                    detail=f"{step.label}: {step.mode} {step.limit_w:g} W from "
                    f"+{step.at_s - start_s:g} s (measured {measured:.0f} W before) reached "
                    f"{took}; allowed {allowed:.0f} s ({why}) + {tolerance_s:g} s",
                )
            )
    return findings
