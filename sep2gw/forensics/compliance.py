"""Compliance: the commanded limits against the measured power, sample by sample.

Each telemetry sample stands for the time until the next one (sample and hold), capped at
``max_hold_s`` so a gap in the telemetry (the gateway down, the meter unreachable) is never counted
as compliant or not. The commanded limit at a sample is the limit recorded in force then
(``control.limits_in_force``), on its ramp when one was planned towards it (§4 rule 11).

Where each limit is measured (CSIP-AUS dynamic operating envelopes; ``events.telemetry`` signs):

- ``export_limit_w``: site power (positive = export at the connection point);
- ``import_limit_w``: minus site power;
- ``generation_limit_w``: DER power (positive = discharge/injection at the DER terminals);
- ``load_limit_w``: minus DER power.

A sample is *over* a limit when the measured power exceeds the limit by more than ``tolerance_w``
and the limit has held its value for at least ``grace_s`` (the DER's response time; 0 by default:
a sample taken as a limit changes is judged against the new limit); its seconds count as seconds
over, and its excess above the limit (the whole excess, not only the part beyond the tolerance)
times its seconds as energy over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

import msgspec

from events.control_events import RampPlanned
from events.der_model import Mode
from sep2gw.forensics.model import Forensics

__all__ = [
    "COMPLIANCE_MODES",
    "DEFAULT_TOLERANCE_W",
    "ComplianceRow",
    "ComplianceSettings",
    "SourceSummary",
    "compliance_series",
    "summarise",
]

#: (mode, which measurement, sign): measured = sign × (site_w or der_w).
COMPLIANCE_MODES: Final = (
    (Mode.EXPORT_LIMIT_W, "site", 1.0),
    (Mode.IMPORT_LIMIT_W, "site", -1.0),
    (Mode.GENERATION_LIMIT_W, "der", 1.0),
    (Mode.LOAD_LIMIT_W, "der", -1.0),
)
DEFAULT_TOLERANCE_W: Final = 50.0


class ComplianceSettings(msgspec.Struct, frozen=True, kw_only=True):
    """``tolerance_w``: excess not counted as over; ``grace_s``: how long after a limit took its
    value an excess is not counted (the DER's response time; 0: judged at once); ``max_hold_s``:
    the longest a sample stands for (``None``: three times the median sample interval)."""

    tolerance_w: float = DEFAULT_TOLERANCE_W
    grace_s: float = 0.0
    max_hold_s: float | None = None


class ComplianceRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One sample with the limits commanded then; ``*_since_s`` is when the limit took this value
    and supplier; ``*_over_w`` is the excess above the limit (0 when within it, ``None`` when no
    such limit was in force or nothing was measured)."""

    at_s: float
    hold_s: float
    site_w: float | None
    der_w: float | None
    export_limit_w: float | None = None
    export_source: str | None = None
    export_since_s: float | None = None
    export_over_w: float | None = None
    import_limit_w: float | None = None
    import_source: str | None = None
    import_since_s: float | None = None
    import_over_w: float | None = None
    generation_limit_w: float | None = None
    generation_source: str | None = None
    generation_since_s: float | None = None
    generation_over_w: float | None = None
    load_limit_w: float | None = None
    load_source: str | None = None
    load_since_s: float | None = None
    load_over_w: float | None = None


class SourceSummary(msgspec.Struct, kw_only=True):
    """Compliance of one mode while one supplier (``control:<mRID>`` or ``default:<program>``) set it."""

    mode: Mode
    source: str
    samples: int = 0
    seconds: float = 0.0
    seconds_over: float = 0.0
    energy_over_wh: float = 0.0
    max_over_w: float = 0.0
    first_over_s: float | None = None
    limit_min_w: float = math.inf
    limit_max_w: float = -math.inf


def hold_limit(model: Forensics, settings: ComplianceSettings) -> float:
    if settings.max_hold_s is not None:
        return settings.max_hold_s
    t = model.sample_t
    gaps = sorted(b - a for a, b in zip(t, t[1:], strict=False) if b > a)
    return 3 * gaps[len(gaps) // 2] if gaps else 5.0


def compliance_series(
    model: Forensics, settings: ComplianceSettings | None = None
) -> Iterator[ComplianceRow]:
    """The per-sample series, in sample order."""
    settings = settings or ComplianceSettings()
    cap = hold_limit(model, settings)
    nominal = cap / 3
    times, sites, ders = model.sample_t, model.sample_site, model.sample_der
    limits = model.limits
    ramps: dict[Mode, list[RampPlanned]] = {}
    for ramp in model.ramps:
        ramps.setdefault(ramp.mode, []).append(ramp)
    since = _since(model)
    period_index = -1
    count = len(times)
    for i in range(count):
        t = times[i]
        while period_index + 1 < len(limits) and limits[period_index + 1].start_s <= t:
            period_index += 1
        period = limits[period_index] if period_index >= 0 else None
        hold = min(times[i + 1] - t, cap) if i + 1 < count else nominal
        site = None if math.isnan(sites[i]) else sites[i]
        der = None if math.isnan(ders[i]) else ders[i]
        fields: dict[str, float | str | None] = {}
        for mode, point, sign in COMPLIANCE_MODES:
            prefix = _PREFIX[mode]
            limit: float | None = None
            if period is not None and (raw := getattr(period.settings, mode.value)) is not None:
                limit = _on_ramp(ramps.get(mode, ()), float(raw), period.start_s, t)
                fields[f"{prefix}_source"] = period.sources.get(mode)
                fields[f"{prefix}_since_s"] = since[period_index].get(mode)
            measured = site if point == "site" else der
            if limit is not None and measured is not None:
                fields[f"{prefix}_over_w"] = max(0.0, sign * measured - limit)
            fields[f"{prefix}_limit_w"] = limit
        yield ComplianceRow(at_s=t, hold_s=max(hold, 0.0), site_w=site, der_w=der, **fields)  # type: ignore[arg-type]


def _since(model: Forensics) -> list[dict[Mode, float]]:
    """For each limit period, when each judged mode took the value (and supplier) it has in it."""
    out: list[dict[Mode, float]] = []
    previous: dict[Mode, tuple[object, str | None, float]] = {}
    for period in model.limits:
        current: dict[Mode, float] = {}
        for mode, _, _ in COMPLIANCE_MODES:
            value = getattr(period.settings, mode.value)
            if value is None:
                previous.pop(mode, None)
                continue
            key = (value, period.sources.get(mode))
            held = previous.get(mode)
            start = held[2] if held is not None and held[:2] == key else period.start_s
            previous[mode] = (*key, start)
            current[mode] = start
        out.append(current)
    return out


def _on_ramp(ramps: Sequence[RampPlanned], limit: float, since_s: float, t: float) -> float:
    """The limit on the ramp planned towards it at the change that put it in force (§4 rule 11)."""
    for ramp in reversed(ramps):
        if ramp.start_s > t:
            continue
        if ramp.at_s >= since_s and ramp.to_value == limit and t < ramp.end_s:
            fraction = (t - ramp.start_s) / (ramp.end_s - ramp.start_s)
            return float(ramp.from_value + (ramp.to_value - ramp.from_value) * fraction)
        break
    return limit


_PREFIX: Final = {
    Mode.EXPORT_LIMIT_W: "export",
    Mode.IMPORT_LIMIT_W: "import",
    Mode.GENERATION_LIMIT_W: "generation",
    Mode.LOAD_LIMIT_W: "load",
}
_FIELDS: Final = {
    mode: (f"{p}_limit_w", f"{p}_source", f"{p}_over_w", f"{p}_since_s")
    for mode, p in _PREFIX.items()
}


def summarise(
    rows: Iterable[ComplianceRow], settings: ComplianceSettings | None = None
) -> list[SourceSummary]:
    """Seconds and energy over each limit, per mode and supplier, in order of first appearance."""
    settings = settings or ComplianceSettings()
    tolerance, grace = settings.tolerance_w, settings.grace_s
    out: dict[tuple[Mode, str], SourceSummary] = {}
    for row in rows:
        for mode, (limit_f, source_f, over_f, since_f) in _FIELDS.items():
            limit = getattr(row, limit_f)
            over = getattr(row, over_f)
            if limit is None or over is None:
                continue
            source = getattr(row, source_f) or "?"
            summary = out.get((mode, source))
            if summary is None:
                summary = out[(mode, source)] = SourceSummary(mode=mode, source=source)
            summary.samples += 1
            summary.seconds += row.hold_s
            summary.limit_min_w = min(summary.limit_min_w, limit)
            summary.limit_max_w = max(summary.limit_max_w, limit)
            since = getattr(row, since_f)
            if over > tolerance and (since is None or row.at_s - since >= grace):
                summary.seconds_over += row.hold_s
                summary.energy_over_wh += over * row.hold_s / 3600.0
                summary.max_over_w = max(summary.max_over_w, over)
                if summary.first_over_s is None:
                    summary.first_over_s = row.at_s
    return list(out.values())
