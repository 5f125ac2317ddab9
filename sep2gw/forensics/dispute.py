"""What the dispute report concludes from a log: the site's identity as recorded, every mode in
force as stretches, a judgement of each mode against what was measured, the reasons the log holds
when a mode was not met, and a verdict per supplier and overall.

Modes are judged against what the log measured (``events.telemetry`` signs: site power positive =
export, DER power positive = discharge):

- limits (CSIP-AUS dynamic operating envelopes, ``sep2gw.forensics.compliance``): export and
  import on the site meter, generation and load on the DER; ``max_limit_pct`` (IEEE 2030.5
  opModMaxLimW) on the DER against that percent of the nameplate's setMaxW;
- targets: the one the gateway pursues (``fixed_w_pct`` before ``target_w`` before
  ``storage_target_w``, as ``statemachines.site_limit`` does): DER power within the tolerance of it;
  a target held back by a limit in force is met (a limit outranks a target) and said so;
- ``connect`` / ``energize`` false (IEEE 2030.5 opModConnect / opModEnergize): DER power within
  the tolerance of 0 W; true asks nothing measurable;
- every other mode (curves, power factor, reactive power) is charted but not judged: the forensic
  model keeps no measurement of it, and the report says so.

A sample is off when it misses the mode by more than the tolerance once the mode has held its
value for the grace time (the same rule as ``compliance.summarise``). Each off sample is given the
reasons the log holds at its instant: comms with the server down, the latest battery write's
clamps (``hardware.limits_applied.v1``: battery full or empty, the DER's rating, a disconnect, a
site limit not met by the DER's range), the DER unreachable. Time in force that no sample covers
is not judged; it is put down to the gateway not running when it was not, else to missing
telemetry. Nothing is invented: what the log does not record is reported as not recorded.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

import msgspec

from events.control_events import ResponseIntended
from events.der_model import Mode
from events.envelope import Recorded
from events.errors import EventLogError
from events.hardware_events import LimitsApplied, NameplateRead
from events.registration_events import StepDone
from events.runtime_events import GatewayStarted
from events.store import EventStore
from sep2gw.forensics.compliance import ComplianceSettings, compliance_series, hold_limit
from sep2gw.forensics.model import Forensics
from transport.identity import IdentityError, sfdi_from_lfdi

__all__ = [
    "JUDGED_MODES",
    "DayTally",
    "Judgement",
    "SiteIdentity",
    "Stretch",
    "Verdict",
    "judge",
    "mode_stretches",
    "overall_verdict",
    "site_identity",
    "supplier_verdicts",
]

Kind = Literal["limit", "target", "off"]
VerdictWord = Literal["compliant", "not compliant", "not assessable"]

#: How each judged mode is measured: (kind, point, sign); measured = sign × (site_w or der_w).
JUDGED_MODES: Final[dict[Mode, tuple[Kind, str, float]]] = {
    Mode.EXPORT_LIMIT_W: ("limit", "site", 1.0),
    Mode.IMPORT_LIMIT_W: ("limit", "site", -1.0),
    Mode.GENERATION_LIMIT_W: ("limit", "der", 1.0),
    Mode.LOAD_LIMIT_W: ("limit", "der", -1.0),
    Mode.MAX_LIMIT_PCT: ("limit", "der", 1.0),
    Mode.FIXED_W_PCT: ("target", "der", 1.0),
    Mode.TARGET_W: ("target", "der", 1.0),
    Mode.STORAGE_TARGET_W: ("target", "der", 1.0),
    Mode.CONNECT: ("off", "der", 1.0),
    Mode.ENERGIZE: ("off", "der", 1.0),
}
#: The target the gateway pursues when several are in force (``site_limit._requested``).
_TARGET_ORDER: Final = (Mode.FIXED_W_PCT, Mode.TARGET_W, Mode.STORAGE_TARGET_W)
_LIMIT_FIELDS: Final = {
    Mode.EXPORT_LIMIT_W: ("export_limit_w", "export_since_s"),
    Mode.IMPORT_LIMIT_W: ("import_limit_w", "import_since_s"),
    Mode.GENERATION_LIMIT_W: ("generation_limit_w", "generation_since_s"),
    Mode.LOAD_LIMIT_W: ("load_limit_w", "load_since_s"),
}
#: How long before an off sample a ``hardware.device_unreachable.v1`` still explains it.
UNREACHABLE_WINDOW_S: Final = 60.0
#: How near a state-of-charge bound a battery counts as at it (``site_limit.SOC_EDGE_PCT``).
_SOC_EDGE_PCT: Final = 0.5
NOT_RECORDED: Final = "not recorded"
NOT_YET_WRITTEN: Final = (
    "the battery had not been written since the mode took this value (the DER's response time: "
    "see --grace-s)"
)


# -- identity --------------------------------------------------------------------------------------


class SiteIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who the log is about, only as far as its records say (``None``: not recorded)."""

    lfdi: str | None = None
    sfdi: int | None = None
    nmi: str | None = None
    server_url: str | None = None
    device_capability: str | None = None
    end_device: str | None = None
    software_versions: tuple[str, ...] = ()
    device: str | None = None
    max_w: float | None = None
    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    soc_min_pct: float | None = None
    soc_max_pct: float | None = None


_IDENTITY_TAGS: Final = (
    "runtime.gateway_started.v1",
    "registration.step_done.v1",
    "hardware.nameplate.v1",
)


def site_identity(store: EventStore) -> SiteIdentity:
    """The site's identity from the records that carry it: the LFDI the gateway put in its
    Responses (the SFDI derived from it, IEEE 2030.5 §6.3.3), the DeviceCapability and EndDevice
    the registration walk found, each run's software version, the DER's nameplate. The log records
    neither the NMI nor the server's URL: those stay ``None``."""
    fields: dict[str, Any] = {}
    versions: list[str] = []
    for record in _read(store, _IDENTITY_TAGS):
        e = record.event
        if isinstance(e, GatewayStarted):
            if e.software_version not in versions:
                versions.append(e.software_version)
        elif isinstance(e, StepDone) and e.href:
            if e.step == "device_capability":
                fields["device_capability"] = e.href
            elif e.step == "end_device":
                fields["end_device"] = e.href
        elif isinstance(e, NameplateRead):
            parts = [p for p in (e.manufacturer, e.model) if p]
            if e.serial:
                parts.append(f"serial {e.serial}")
            fields["device"] = " ".join(parts) or None
            for name in ("max_w", "max_charge_w", "max_discharge_w", "soc_min_pct", "soc_max_pct"):
                fields[name] = getattr(e, name)
    for record in _read(store, ("response.intended.v1",)):
        lfdi = record.event.lfdi if isinstance(record.event, ResponseIntended) else None
        if lfdi:
            fields["lfdi"] = lfdi
            try:
                fields["sfdi"] = sfdi_from_lfdi(lfdi)
            except IdentityError:
                pass
        break
    return SiteIdentity(software_versions=tuple(versions), **fields)


def _read(store: EventStore, tags: Sequence[str]) -> Iterable[Recorded]:
    """The records of ``tags``; none when they cannot be read (a forced report of a damaged
    file): the identity is then not recorded rather than guessed."""
    try:
        return list(store.read(types=tags))
    except (EventLogError, msgspec.MsgspecError):
        return ()


# -- modes in force --------------------------------------------------------------------------------


class Stretch(msgspec.Struct, kw_only=True):
    """One mode held one value from one supplier over ``[start_s, end_s)``."""

    mode: Mode
    source: str | None
    value: Any
    start_s: float
    end_s: float


def mode_stretches(model: Forensics) -> dict[Mode, list[Stretch]]:
    """Every mode recorded in force (``control.limits_in_force.v1``), as stretches of one value
    from one supplier, in time order; the last runs to the end of the log."""
    out: dict[Mode, list[Stretch]] = {}
    open_: dict[Mode, Stretch] = {}
    end = model.last_s if model.last_s is not None else 0.0
    for period in model.limits:
        for mode in Mode:
            value = getattr(period.settings, mode.value)
            current = open_.get(mode)
            source = period.sources.get(mode)
            if current is not None and (
                value is None or (value, source) != (current.value, current.source)
            ):
                current.end_s = period.start_s
                del open_[mode]
                current = None
            if value is not None and current is None:
                stretch = Stretch(
                    mode=mode, source=source, value=value, start_s=period.start_s, end_s=end
                )
                open_[mode] = stretch
                out.setdefault(mode, []).append(stretch)
    for stretch in open_.values():
        stretch.end_s = max(end, stretch.start_s)
    return {mode: out[mode] for mode in Mode if mode in out}


# -- judgement -------------------------------------------------------------------------------------


class DayTally(msgspec.Struct, kw_only=True):
    """One mode from one supplier on one day (``judge(days=…)``): what was judged and found off."""

    samples: int = 0
    seconds: float = 0.0
    seconds_off: float = 0.0
    seconds_excused: float = 0.0

    @property
    def off_s(self) -> float:
        """Seconds off not explained by a limit holding a target back (the verdict's measure)."""
        return self.seconds_off - self.seconds_excused


class Judgement(msgspec.Struct, kw_only=True):
    """One mode while one supplier set it: how the measured power kept to it, and why not.

    ``seconds_off`` counts samples off the mode by more than the tolerance (after the grace);
    ``seconds_excused`` the part of those explained by a limit in force holding a target back;
    ``reasons`` maps each reason the log holds to the seconds it explains; ``unjudged`` maps why
    time in force was not covered by any sample to its seconds."""

    mode: Mode
    source: str
    kind: Kind | None
    values: list[str] = msgspec.field(default_factory=list)
    in_force_s: float = 0.0
    samples: int = 0
    seconds: float = 0.0
    seconds_off: float = 0.0
    seconds_excused: float = 0.0
    energy_off_wh: float = 0.0
    max_off_w: float = 0.0
    first_off_s: float | None = None
    reasons: dict[str, float] = msgspec.field(default_factory=dict)
    unjudged: dict[str, float] = msgspec.field(default_factory=dict)
    why_not_judged: str = ""
    #: ``judge(days=…)`` only: the same tallies per day (the key ``days`` gives a sample's instant).
    by_day: dict[str, DayTally] = msgspec.field(default_factory=dict)

    @property
    def verdict(self) -> VerdictWord:
        if self.kind is None or self.samples == 0:
            return "not assessable"
        if self.seconds_off - self.seconds_excused > 1e-9:
            return "not compliant"
        return "compliant"


class _Context:
    """What the reasons at an instant are read from, indexed once."""

    def __init__(self, model: Forensics, identity: SiteIdentity) -> None:
        self.model = model
        self.identity = identity
        self.write_t = [w.at_s for w in model.writes]
        self.unreachable_t = [e.at_s for _, e in model.unreachable]
        self.comms = [
            (p.lost_s, math.inf if p.restored_s is None else p.restored_s) for p in model.comms
        ]

    def write_at(self, t: float) -> LimitsApplied | None:
        i = bisect.bisect_right(self.write_t, t) - 1
        return self.model.writes[i].event if i >= 0 else None

    def reasons(
        self, t: float, mode: Mode, soc: float | None, since: float
    ) -> tuple[list[str], bool]:
        """The reasons the log holds for ``mode`` being missed at ``t`` (it took its value at
        ``since``), and whether a limit in force holding a target back explains it (then the
        target was met as far as it was allowed)."""
        reasons: list[str] = []
        excused = False
        if any(a <= t < b for a, b in self.comms):
            reasons.append("comms with the server down (the known schedule was kept)")
        write = self.write_at(t)
        if write is None or write.at_s < since:
            reasons.append(NOT_YET_WRITTEN)
        elif write is not None:
            if mode in write.not_applicable:
                reasons.append(f"{mode.value} not applicable on this device")
            site_mode = mode in (Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W)
            if site_mode and write.site_limit_met is False:
                reasons.append("the site limit was beyond the DER's range (site_limit_met false)")
            for clamp in write.clamps:
                parsed = parse_clamp(clamp)
                if parsed is None:
                    continue
                bound, applied = parsed
                if bound == mode.value:
                    continue  # the clamp that implements this very mode
                word, by_limit = self._bound_words(bound, applied, soc)
                if by_limit and JUDGED_MODES[mode][0] == "target":
                    excused = True
                if word not in reasons:
                    reasons.append(word)
        i = bisect.bisect_right(self.unreachable_t, t) - 1
        if i >= 0 and t - self.unreachable_t[i] <= UNREACHABLE_WINDOW_S:
            e = self.model.unreachable[i][1]
            reasons.append(f"DER unreachable ({e.operation}: {e.error_type})")
        if not reasons:
            reasons.append("no reason recorded in the log")
        return reasons, excused

    def _bound_words(self, bound: str, applied: float, soc: float | None) -> tuple[str, bool]:
        ident = self.identity
        if bound == "max_charge_w":
            full = (soc is not None and soc >= (ident.soc_max_pct or 100.0) - _SOC_EDGE_PCT) or (
                abs(applied) < 1e-9
            )
            return (
                ("battery full: it could not charge", False)
                if full
                else ("the DER's charge rating (max_charge_w)", False)
            )
        if bound == "max_discharge_w":
            empty = (soc is not None and soc <= (ident.soc_min_pct or 0.0) + _SOC_EDGE_PCT) or (
                abs(applied) < 1e-9
            )
            return (
                ("battery empty: it could not discharge", False)
                if empty
                else ("the DER's discharge rating (max_discharge_w)", False)
            )
        if bound == "max_w":
            return "the DER's rating (setMaxW)", False
        if bound in ("connect", "energize"):
            return f"the DER was told {bound} false: it could only hold 0 W", False
        return f"held to {bound} in force (a limit outranks a target)", True


_CLAMP_REPR: Final = re.compile(r"applied=(?P<applied>[-+0-9.einfa]+).*?bound='(?P<bound>[^']*)'")


def parse_clamp(clamp: object) -> tuple[str, float] | None:
    """(bound, applied W) of one recorded clamp: a mapping or struct with ``bound`` and
    ``applied``, or the ``Clamp(...)`` text ``hardware.limits_applied.v1`` carried before clamps
    were structured."""
    bound = getattr(clamp, "bound", None)
    applied = getattr(clamp, "applied", None)
    if isinstance(clamp, dict):
        bound, applied = clamp.get("bound"), clamp.get("applied")
    if isinstance(bound, str) and isinstance(applied, int | float):
        return bound, float(applied)
    if isinstance(clamp, str):
        match = _CLAMP_REPR.search(clamp)
        if match:
            try:
                return match["bound"], float(match["applied"])
            except ValueError:
                return match["bound"], math.nan
    return None


def judge(
    model: Forensics,
    identity: SiteIdentity,
    settings: ComplianceSettings | None = None,
    *,
    days: Callable[[float], str] | None = None,
) -> list[Judgement]:
    """Every mode in force, per supplier, judged sample by sample (see the module docstring);
    with ``days`` (an instant's day, e.g. ``DayOf`` in the site's zone), also tallied per day in
    ``Judgement.by_day`` (the fleet summary: which sites were compliant when)."""
    settings = settings or ComplianceSettings()
    stretches = mode_stretches(model)
    out: dict[tuple[Mode, str], Judgement] = {}
    for mode, items in stretches.items():
        kind = JUDGED_MODES.get(mode, (None, "", 0.0))[0]
        for s in items:
            source = s.source or "?"
            j = out.get((mode, source))
            if j is None:
                j = out[(mode, source)] = Judgement(mode=mode, source=source, kind=kind)
                if kind is None:
                    j.why_not_judged = "the log keeps no measurement this mode is judged by"
            shown = value_text(mode, s.value)
            if shown not in j.values:
                j.values.append(shown)
            j.in_force_s += max(0.0, s.end_s - s.start_s)
            if mode in (Mode.CONNECT, Mode.ENERGIZE) and s.value is True:
                j.kind = None
                j.why_not_judged = f"{mode.value} true asks nothing measurable of the DER"
            if kind in ("limit", "target") and mode in (Mode.MAX_LIMIT_PCT, Mode.FIXED_W_PCT):
                if _percent_base(identity, mode, 1.0) is None:
                    j.kind = None
                    j.why_not_judged = "the log records no nameplate rating to take a percent of"
    _judge_samples(model, identity, settings, stretches, out, days)
    _unjudged_time(model, stretches, out, hold_limit(model, settings))
    return list(out.values())


def _percent_base(identity: SiteIdentity, mode: Mode, pct: float) -> float | None:
    if mode is Mode.MAX_LIMIT_PCT:
        return identity.max_w
    return identity.max_discharge_w if pct >= 0 else identity.max_charge_w


def _judge_samples(
    model: Forensics,
    identity: SiteIdentity,
    settings: ComplianceSettings,
    stretches: dict[Mode, list[Stretch]],
    out: dict[tuple[Mode, str], Judgement],
    days: Callable[[float], str] | None = None,
) -> None:
    ctx = _Context(model, identity)
    tolerance, grace = settings.tolerance_w, settings.grace_s
    pointers = dict.fromkeys(stretches, 0)
    soc = model.sample_soc
    # what is in force changes only at a stretch's edge: decided again only when one is crossed
    edges = sorted({e for items in stretches.values() for s in items for e in (s.start_s, s.end_s)})
    edge = 0
    judged: list[tuple[Mode, Stretch, Judgement, Kind, str, float]] = []
    for i, row in enumerate(compliance_series(model, settings)):
        t = row.at_s
        if edge < len(edges) and edges[edge] <= t:
            while edge < len(edges) and edges[edge] <= t:
                edge += 1
            judged = _in_force(model, stretches, pointers, out, t)
        for mode, stretch, j, kind, point, sign in judged:
            measured = row.site_w if point == "site" else row.der_w
            if measured is None:
                continue
            since = stretch.start_s
            if mode in _LIMIT_FIELDS:
                limit_field, since_field = _LIMIT_FIELDS[mode]
                wanted = getattr(row, limit_field)
                since = getattr(row, since_field) or since
                if wanted is None:
                    continue
                off = max(0.0, sign * measured - wanted)
            elif mode is Mode.MAX_LIMIT_PCT:
                base = _percent_base(identity, mode, float(stretch.value))
                assert base is not None
                off = max(0.0, measured - float(stretch.value) / 100.0 * base)
            elif kind == "target":
                wanted = float(stretch.value)
                if mode is Mode.FIXED_W_PCT:
                    base = _percent_base(identity, mode, wanted)
                    assert base is not None
                    wanted = wanted / 100.0 * base
                off = abs(measured - wanted)
            else:
                off = abs(measured)
            j.samples += 1
            j.seconds += row.hold_s
            tally = None
            if days is not None:
                day = days(t)
                tally = j.by_day.get(day)
                if tally is None:
                    tally = j.by_day[day] = DayTally()
                tally.samples += 1
                tally.seconds += row.hold_s
            if off > tolerance and t - since >= grace:
                j.seconds_off += row.hold_s
                j.energy_off_wh += off * row.hold_s / 3600.0
                j.max_off_w = max(j.max_off_w, off)
                if j.first_off_s is None:
                    j.first_off_s = t
                level = soc[i] if i < len(soc) and not math.isnan(soc[i]) else None
                reasons, excused = ctx.reasons(t, mode, level, since)
                if excused:
                    j.seconds_excused += row.hold_s
                if tally is not None:
                    tally.seconds_off += row.hold_s
                    if excused:
                        tally.seconds_excused += row.hold_s
                for reason in reasons:
                    j.reasons[reason] = j.reasons.get(reason, 0.0) + row.hold_s


def _in_force(
    model: Forensics,
    stretches: dict[Mode, list[Stretch]],
    pointers: dict[Mode, int],
    out: dict[tuple[Mode, str], Judgement],
    t: float,
) -> list[tuple[Mode, Stretch, Judgement, Kind, str, float]]:
    """The modes to judge at ``t``: those in force there that can be judged, of the targets only
    the one pursued (``pointers`` move forward: instants come in order)."""
    current: dict[Mode, Stretch] = {}
    for mode, items in stretches.items():
        k = pointers[mode]
        while k + 1 < len(items) and items[k + 1].start_s <= t:
            k += 1
        pointers[mode] = k
        if items[k].start_s <= t < items[k].end_s or (
            t == items[k].end_s == model.last_s and items[k].start_s <= t
        ):
            current[mode] = items[k]
    pursued = next((m for m in _TARGET_ORDER if m in current), None)
    judged = []
    for mode, stretch in current.items():
        j = out[(mode, stretch.source or "?")]
        if j.kind is None:
            continue
        kind, point, sign = JUDGED_MODES[mode]
        if kind == "target" and mode is not pursued:
            continue
        judged.append((mode, stretch, j, kind, point, sign))
    return judged


def _unjudged_time(
    model: Forensics,
    stretches: dict[Mode, list[Stretch]],
    out: dict[tuple[Mode, str], Judgement],
    hold_s: float,
) -> None:
    """Time in force no sample stands for: the gateway down, else no telemetry recorded (when it
    adds up to more than the longest a sample stands for: the edges of a stretch are not gaps)."""
    down = gateway_down(model)
    for mode, items in stretches.items():
        for s in items:
            j = out[(mode, s.source or "?")]
            if j.kind is None:
                continue
            gone = sum(max(0.0, min(b, s.end_s) - max(a, s.start_s)) for a, b in down)
            if gone > 0:
                j.unjudged["the gateway was not running"] = (
                    j.unjudged.get("the gateway was not running", 0.0) + gone
                )
    for j in out.values():
        if j.kind is None:
            continue
        missing = j.in_force_s - j.seconds - sum(j.unjudged.values())
        if missing > hold_s:
            j.unjudged["no measurement recorded"] = missing


def gateway_down(model: Forensics) -> list[tuple[float, float]]:
    """The stretches of the log between one run's stop and the next run's start."""
    out: list[tuple[float, float]] = []
    runs = [r for r in model.runs if not math.isnan(r.started_s)]
    for before, after in zip(runs, runs[1:], strict=False):
        stopped = before.stopped_s
        if stopped is None:
            # killed: it stopped some time after its last record; the next start bounds it
            stopped = _last_sample_before(model, after.started_s)
        if stopped is not None and after.started_s > stopped:
            out.append((stopped, after.started_s))
    return out


def _last_sample_before(model: Forensics, t: float) -> float | None:
    i = bisect.bisect_left(model.sample_t, t) - 1
    return model.sample_t[i] if i >= 0 else None


def value_text(mode: Mode, value: object) -> str:
    """A mode's value for people: W and percent rounded, booleans as words."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        unit = " %" if mode.value.endswith("_pct") else " W" if mode.value.endswith("_w") else ""
        number = f"{value:.0f}" if float(value).is_integer() or unit == " W" else f"{value:.1f}"
        return f"{number}{unit}"
    if isinstance(value, str):
        return value
    return _struct_text(value)


def _struct_text(value: object) -> str:
    try:
        fields = msgspec.structs.asdict(value)  # type: ignore[arg-type]
    except TypeError:
        return str(value)
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items()
    )


# -- verdicts --------------------------------------------------------------------------------------


class Verdict(msgspec.Struct, kw_only=True):
    """The verdict on one supplier (``control:<mRID>`` or ``default:<program>``), or overall."""

    source: str
    word: VerdictWord
    judgements: list[Judgement]
    note: str = ""


def supplier_verdicts(model: Forensics, judgements: Sequence[Judgement]) -> list[Verdict]:
    """One verdict per control the log holds (in order of receipt) and per program default that
    supplied a mode: not compliant when any of its modes was not met, compliant when at least one
    was judged and all those judged were met, else not assessable (with why)."""
    by_source: dict[str, list[Judgement]] = {}
    for j in judgements:
        by_source.setdefault(j.source, []).append(j)
    out: list[Verdict] = []
    for mrid, rec in model.controls.records.items():
        source = f"control:{mrid}"
        items = by_source.pop(source, [])
        note = "" if items else f"never supplied a mode in force (outcome: {rec.state})"
        out.append(Verdict(source=source, word=_combine(items), judgements=items, note=note))
    for source, items in by_source.items():
        out.append(Verdict(source=source, word=_combine(items), judgements=items))
    return out


def _combine(items: Sequence[Judgement]) -> VerdictWord:
    words = {j.verdict for j in items}
    if "not compliant" in words:
        return "not compliant"
    if "compliant" in words:
        return "compliant"
    return "not assessable"


def overall_verdict(verdicts: Sequence[Verdict]) -> VerdictWord:
    return _combine([j for v in verdicts for j in v.judgements])
