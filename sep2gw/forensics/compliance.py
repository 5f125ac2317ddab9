"""Compliance: the commanded limits against the measured power, sample by sample.

Each telemetry sample stands for the time until the next one (sample and hold), capped at
``max_hold_s`` so a gap in the telemetry (the gateway down, the meter unreachable) is never counted
as compliant or not. The commanded limit at a sample is the limit recorded in force then
(``control.limits_in_force.v1``), on its ramp when one was planned towards it (§4 rule 11).

Where each limit is measured (CSIP-AUS dynamic operating envelopes; ``events.telemetry`` signs):

- ``export_limit_w``: site power (positive = export at the connection point);
- ``import_limit_w``: minus site power;
- ``generation_limit_w``: DER power (positive = discharge/injection at the DER terminals);
- ``load_limit_w``: minus DER power.

A sample is *over* a limit when the measured power exceeds the limit by more than ``tolerance_w``;
its seconds count as seconds over, and its excess above the limit (the whole excess, not only the
part beyond the tolerance) times its seconds as energy over.
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
    """``tolerance_w``: excess not counted as over; ``max_hold_s``: the longest a sample stands for
    (``None``: three times the median sample interval)."""

    tolerance_w: float = DEFAULT_TOLERANCE_W
    max_hold_s: float | None = None


class ComplianceRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One sample with the limits commanded then; ``*_over_w`` is the excess above the limit
    (0 when within it, ``None`` when no such limit was in force or nothing was measured)."""

    at_s: float
    hold_s: float
    site_w: float | None
    der_w: float | None
    export_limit_w: float | None
    export_source: str | None
    export_over_w: float | None
    import_limit_w: float | None
    import_source: str | None
    import_over_w: float | None
    generation_limit_w: float | None
    generation_source: str | None
    generation_over_w: float | None
    load_limit_w: float | None
    load_source: str | None
    load_over_w: float | None


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
    period_index = -1
    count = len(times)
    for i in range(count):
        t = times[i]
        while period_index + 1 < len(limits) and limits[period_index + 1].start_s <= t:
            period_index += 1
        period = limits[period_index] if period_index >= 0 else None
        hold = min(times[i + 1] - t, cap) if i + 1 < count else nominal
        hold = max(hold, 0.0)
        site = None if math.isnan(sites[i]) else sites[i]
        der = None if math.isnan(ders[i]) else ders[i]
        values: list[float | str | None] = []
        for mode, point, sign in COMPLIANCE_MODES:
            limit: float | None = None
            source: str | None = None
            if period is not None:
                raw = getattr(period.settings, mode.value)
                if raw is not None:
                    limit = _on_ramp(ramps.get(mode, ()), float(raw), period.start_s, t)
                    source = period.sources.get(mode)
            measured = site if point == "site" else der
            over = None if limit is None or measured is None else max(0.0, sign * measured - limit)
            values.extend((limit, source, over))
        yield ComplianceRow(
            at_s=t,
            hold_s=hold,
            site_w=site,
            der_w=der,
            export_limit_w=_f(values[0]),
            export_source=_s(values[1]),
            export_over_w=_f(values[2]),
            import_limit_w=_f(values[3]),
            import_source=_s(values[4]),
            import_over_w=_f(values[5]),
            generation_limit_w=_f(values[6]),
            generation_source=_s(values[7]),
            generation_over_w=_f(values[8]),
            load_limit_w=_f(values[9]),
            load_source=_s(values[10]),
            load_over_w=_f(values[11]),
        )


def _f(value: float | str | None) -> float | None:
    assert not isinstance(value, str)
    return value


def _s(value: float | str | None) -> str | None:
    assert value is None or isinstance(value, str)
    return value


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


_FIELDS: Final = {
    Mode.EXPORT_LIMIT_W: ("export_limit_w", "export_source", "export_over_w"),
    Mode.IMPORT_LIMIT_W: ("import_limit_w", "import_source", "import_over_w"),
    Mode.GENERATION_LIMIT_W: ("generation_limit_w", "generation_source", "generation_over_w"),
    Mode.LOAD_LIMIT_W: ("load_limit_w", "load_source", "load_over_w"),
}


def summarise(
    rows: Iterable[ComplianceRow], settings: ComplianceSettings | None = None
) -> list[SourceSummary]:
    """Seconds and energy over each limit, per mode and supplier, in order of first appearance."""
    tolerance = (settings or ComplianceSettings()).tolerance_w
    out: dict[tuple[Mode, str], SourceSummary] = {}
    for row in rows:
        for mode, (limit_f, source_f, over_f) in _FIELDS.items():
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
            if over > tolerance:
                summary.seconds_over += row.hold_s
                summary.energy_over_wh += over * row.hold_s / 3600.0
                summary.max_over_w = max(summary.max_over_w, over)
                if summary.first_over_s is None:
                    summary.first_over_s = row.at_s
    return list(out.values())
