"""The dispute report: one self-contained HTML file (inline CSS and SVG, no scripts, no external
resource of any kind), readable offline years later.

It opens with the integrity verdict, then a chart of the commanded limits against the measured site
and DER power with control periods as bands and Responses as markers, then the tables of controls,
Responses and compliance (seconds and energy over each limit, per supplier).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import tzinfo
from html import escape
from typing import Final

from events.times import not_a_date, utc_datetime
from sep2gw.forensics.compliance import ComplianceSettings, SourceSummary
from sep2gw.forensics.model import Forensics
from sep2gw.forensics.render import ForensicTimeline
from sep2gw.timeline import describe_blocks, describe_learned, describe_settings, rate_name, short

__all__ = ["render_report"]

_W, _H = 1100, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 40, 40
_MAX_BUCKETS = 1200

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#e7f6e7;border:1px solid #7c7;padding:10px}
.bad{background:#fde2e2;border:3px solid #c00;padding:10px;font-weight:bold;color:#900}
.over{color:#b00;font-weight:bold}code{font-size:12px}
"""


def render_report(
    model: Forensics,
    *,
    source: str,
    zone: tzinfo | None,
    settings: ComplianceSettings,
    summary: Sequence[SourceSummary],
) -> str:
    tl = ForensicTimeline(zone)
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>sep2gw dispute report: {escape(source)}</title><style>{_CSS}</style></head><body>",
        "<h1>sep2gw dispute report</h1>",
        f"<p>Log <code>{escape(source)}</code>: {model.records:,} records",
    ]
    if model.first_s is not None and model.last_s is not None:
        out.append(
            f", server time {escape(tl.stamp(model.first_s))} .. {escape(tl.stamp(model.last_s))}"
        )
    zone_name = "UTC (no --tz given)" if zone is None else str(zone)
    out.append(f". Local times in brackets are in {escape(zone_name)}.</p>")
    out.append(_integrity(model))
    out.append(_versions(model, tl))
    out.append("<h2>Commanded limits and measured power</h2>")
    out.append(_chart(model, tl))
    out.append(_controls_table(model, tl))
    out.append(_responses_table(model, tl))
    out.append(_prices_table(model, tl))
    out.append(_server_faults_table(model, tl))
    out.append(_compliance(summary, settings, tl))
    out.append(_runs(model, tl))
    out.append("</body></html>\n")
    return "".join(out)


def _integrity(model: Forensics) -> str:
    report = model.report
    assert report is not None
    if report.ok:
        return (
            "<p class='ok' id='integrity'>The log verified: every record decodes, the sequence is "
            "gapless and the hash chain recomputes from the first record to the head. "
            f"{escape(report.describe())}</p>"
        )
    notes = "".join(f"<br>{escape(n)}" for n in model.forced_skipped)
    return (
        "<p class='bad' id='integrity'>THE LOG DID NOT VERIFY. "
        f"{escape(report.describe())}. This report was produced with --force: it folds records that "
        f"may have been altered and proves nothing about what the site did.{notes}</p>"
    )


def _stamp(tl: ForensicTimeline, t: float | None) -> str:
    return "" if t is None or math.isnan(t) else escape(tl.stamp(t))


def _axis_label(t: float) -> str:
    utc = utc_datetime(t)
    return escape(not_a_date(t)) if utc is None else f"{utc:%m-%d %H:%M:%S}Z"


def _buckets(
    t: Sequence[float], v: Sequence[float], t0: float, span: float
) -> list[tuple[float, float]]:
    """Min and max of each time bucket, in time order: the chart's shape at any log length."""
    if len(t) <= 2 * _MAX_BUCKETS:
        return [(a, b) for a, b in zip(t, v, strict=True) if not math.isnan(b)]
    width = span / _MAX_BUCKETS
    points: list[tuple[float, float]] = []
    current = -1
    lo = hi = (0.0, math.nan)
    for a, b in zip(t, v, strict=True):
        if math.isnan(b):
            continue
        k = int((a - t0) / width)
        if k != current:
            if current >= 0:
                points.extend(sorted({lo, hi}))
            current, lo, hi = k, (a, b), (a, b)
        else:
            if b < lo[1]:
                lo = (a, b)
            if b > hi[1]:
                hi = (a, b)
    if current >= 0:
        points.extend(sorted({lo, hi}))
    return points


def _chart(model: Forensics, tl: ForensicTimeline) -> str:
    if model.first_s is None or model.last_s is None or model.last_s <= model.first_s:
        return "<p>Nothing to chart.</p>"
    t0, t1 = model.first_s, model.last_s
    span = t1 - t0
    site = _buckets(model.sample_t, model.sample_site, t0, span)
    der = _buckets(model.sample_t, model.sample_der, t0, span)
    steps: dict[str, list[tuple[float, float | None]]] = {"export": [], "import": []}
    for period in model.limits:
        steps["export"].append((period.start_s, period.settings.export_limit_w))
        imp = period.settings.import_limit_w
        steps["import"].append((period.start_s, None if imp is None else -imp))
    values = [v for _, v in site] + [v for _, v in der]
    values += [v for s in steps.values() for _, v in s if v is not None]
    lo, hi = (min(values), max(values)) if values else (-1.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(t: float) -> float:
        return _LEFT + (t - t0) / span * pw

    def y(v: float) -> float:
        return _TOP + (hi - v) / (hi - lo) * ph

    svg = [
        f"<svg role='img' viewBox='0 0 {_W} {_H}' width='{_W}' height='{_H}' "
        "font-family='sans-serif' font-size='11'>",
        f"<rect x='{_LEFT}' y='{_TOP}' width='{pw}' height='{ph}' fill='#fff' stroke='#999'/>",
    ]
    colours = ("#ffe9b3", "#d6e9ff", "#e3f5d8", "#f3dcf5", "#fbd9d3")
    for i, band in enumerate(_bands(model)):
        mrid, start, end = band
        xa, xb = x(max(start, t0)), x(min(end, t1))
        svg.append(
            f"<rect class='band' x='{xa:.1f}' y='{_TOP}' width='{max(xb - xa, 1):.1f}' "
            f"height='{ph}' fill='{colours[i % len(colours)]}' opacity='0.7'>"
            f"<title>control {escape(mrid)} in force {_stamp(tl, start)} .. {_stamp(tl, end)}</title></rect>"
            f"<text x='{xa + 2:.1f}' y='{_TOP + 12 + 12 * (i % 3)}'>{escape(short(mrid))}</text>"
        )
    for k in range(6):
        v = lo + (hi - lo) * k / 5
        svg.append(
            f"<line x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#eee'/>"
            f"<text x='{_LEFT - 4}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:.0f} W</text>"
        )
    svg.append(
        f"<line x1='{_LEFT}' x2='{_W - _RIGHT}' y1='{y(0):.1f}' y2='{y(0):.1f}' stroke='#888'/>"
    )
    for k in range(5):
        t = t0 + span * k / 4
        svg.append(
            f"<text x='{x(t):.1f}' y='{_H - _BOTTOM + 16}' text-anchor='middle'>"
            f"{_axis_label(t)}</text>"
        )
    for down in model.comms:
        end = down.restored_s if down.restored_s is not None else t1
        xa, xb = x(max(down.lost_s, t0)), x(min(end, t1))
        svg.append(
            f"<rect class='comms-down' x='{xa:.1f}' y='{_TOP + ph - 8}' "
            f"width='{max(xb - xa, 1):.1f}' height='8' fill='#888'>"
            f"<title>comms with the server down {_stamp(tl, down.lost_s)} .. "
            f"{_stamp(tl, down.restored_s)}</title></rect>"
        )
    for name, colour, dash in (
        ("export", "#c00", ""),
        ("import", "#06c", " stroke-dasharray='6 3'"),
    ):
        path = _step_path(steps[name], t1, x, y)
        if path:
            svg.append(
                f"<path class='limit-{name}' d='{path}' fill='none' stroke='{colour}' "
                f"stroke-width='2'{dash}/>"
            )
    for cls, points, colour in (("site", site, "#222"), ("der", der, "#2a2")):
        if points:
            coords = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in points)
            svg.append(
                f"<polyline class='{cls}' points='{coords}' fill='none' stroke='{colour}' "
                "stroke-width='1'/>"
            )
    for row in sorted(model.responses.values(), key=lambda r: r.intended_seq):
        at = (
            row.acked_s
            if row.acked_s is not None
            else (row.sent_s[-1] if row.sent_s else row.intended_s)
        )
        fill = "#2a2" if row.acked_s is not None else "#c00"
        svg.append(
            f"<circle class='response' cx='{x(at):.1f}' cy='{_TOP - 8}' r='4' fill='{fill}'>"
            f"<title>Response {int(row.status)} for {escape(row.mrid)}: {escape(row.outcome)} "
            f"{_stamp(tl, at)}</title></circle>"
        )
    legend = (
        ("#c00", "export limit (W)"),
        ("#06c", "import limit (as negative W)"),
        ("#222", "site power (+ export)"),
        ("#2a2", "DER power (+ discharge)"),
    )
    for i, (colour, label) in enumerate(legend):
        lx = _LEFT + 10 + i * 230
        svg.append(
            f"<line x1='{lx}' x2='{lx + 20}' y1='{_H - 8}' y2='{_H - 8}' stroke='{colour}' "
            f"stroke-width='2'/><text x='{lx + 24}' y='{_H - 4}'>{escape(label)}</text>"
        )
    svg.append("</svg>")
    return (
        "".join(svg)
        + "<p>Bands: periods a control supplied a limit in force. Dots above the chart: Responses "
        "(green acknowledged, red not acknowledged). Grey strip at the bottom: comms with the "
        "server down. Axis times are server time (UTC); hover for details.</p>"
    )


def _step_path(
    steps: list[tuple[float, float | None]],
    end: float,
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> str:
    parts: list[str] = []
    for i, (t, v) in enumerate(steps):
        if v is None:
            continue
        until = steps[i + 1][0] if i + 1 < len(steps) else end
        parts.append(f"M{x(t):.1f},{y(v):.1f}H{x(until):.1f}")
    return "".join(parts)


def _bands(model: Forensics) -> list[tuple[str, float, float]]:
    """(mRID, from, to) for each stretch a control supplied some mode of the limits in force."""
    bands: list[tuple[str, float, float]] = []
    open_: dict[str, float] = {}
    for period in model.limits:
        suppliers = {s[8:] for s in period.sources.values() if s.startswith("control:")}
        for mrid in list(open_):
            if mrid not in suppliers:
                bands.append((mrid, open_.pop(mrid), period.start_s))
        for mrid in suppliers:
            open_.setdefault(mrid, period.start_s)
    end = model.last_s if model.last_s is not None else 0.0
    bands.extend((mrid, start, end) for mrid, start in open_.items())
    return sorted(bands, key=lambda b: b[1])


def _controls_table(model: Forensics, tl: ForensicTimeline) -> str:
    rows = [
        "<h2>Controls</h2><table id='controls'><tr><th>mRID</th><th>program</th><th>modes</th>"
        "<th>received</th><th>effective period</th><th>outcome</th><th>Responses</th></tr>"
    ]
    state = model.controls
    for mrid, rec in state.records.items():
        c = rec.control
        program = state.programs.get(c.program_id)
        answered = ", ".join(
            f"{int(r.status)}{'' if r.acked_s is not None else ' (' + r.outcome + ')'}"
            for r in sorted(model.responses.values(), key=lambda r: r.intended_seq)
            if r.mrid == mrid
        )
        effective = (
            f"{_stamp(tl, rec.effective_start_s)} .. {_stamp(tl, rec.end_s)}"
            if rec.effective_end_s
            else ""
        )
        rows.append(
            f"<tr><td><code>{escape(mrid)}</code></td><td>{escape(short(c.program_id))}"
            f"{' (primacy ' + str(program.primacy) + ')' if program else ''}</td>"
            f"<td>{escape(describe_settings(c.settings))}</td><td>{_stamp(tl, rec.received_s)}</td>"
            f"<td>{effective}</td><td>{escape(rec.state)}</td><td>{escape(answered)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _responses_table(model: Forensics, tl: ForensicTimeline) -> str:
    rows = [
        "<h2>Responses</h2><table id='responses'><tr><th>mRID</th><th>status</th><th>intended</th>"
        "<th>sent</th><th>failures</th><th>acknowledged</th><th>outcome</th></tr>"
    ]
    for r in sorted(model.responses.values(), key=lambda r: r.intended_seq):
        fails = "; ".join(f"{_stamp(tl, at)} {escape(what)}" for at, what, _ in r.failures)
        sent = _stamp(tl, r.sent_s[0]) if r.sent_s else ""
        if len(r.sent_s) > 1:
            sent += f" ({len(r.sent_s)} attempts)"
        acked = "" if r.acked_s is None else f"{_stamp(tl, r.acked_s)} (HTTP {r.http_status})"
        rows.append(
            f"<tr><td><code>{escape(r.mrid)}</code></td><td>{int(r.status)} "
            f"{escape(r.status.name.lower())}</td><td>{_stamp(tl, r.intended_s)}</td>"
            f"<td>{sent}</td><td>{fails}</td><td>{acked}</td><td>{escape(r.outcome)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


_SCHEME: Final = re.compile(r"\bhttps?://")


def _unlinked(text: str) -> str:
    """``text`` with the scheme of every URI dropped (``csipaus.org/ns/v1.3``): the report names
    namespaces, it never links anywhere (no address a viewer could follow or fetch)."""
    return _SCHEME.sub("", text)


def _versions(model: Forensics, tl: ForensicTimeline) -> str:
    """The CSIP-AUS versions the gateway spoke and how each was learned (issue 18 point 2)."""
    if not model.versions:
        return ""
    items = "".join(
        f"<li data-seq='{seq}'>{_stamp(tl, v.at_s)}: CSIP-AUS <b>{escape(v.version)}</b> "
        f"(<code>{escape(_unlinked(v.namespace))}</code>): "
        f"{escape(_unlinked(describe_learned(v)))}</li>"
        for seq, v in model.versions
    )
    return f"<p>CSIP-AUS version spoken:</p><ul id='csipaus-versions'>{items}</ul>"


def _prices_table(model: Forensics, tl: ForensicTimeline) -> str:
    """IEEE 2030.5 Pricing: every change of the price in force the log recorded, per rate (the
    price the battery's runtime was told). Nothing when the server offered no tariff."""
    if not model.prices:
        return ""
    rows = [
        "<h2>Prices in force</h2><table id='prices'><tr><th>from</th><th>rate</th>"
        "<th>price</th><th>tier</th><th>interval</th></tr>"
    ]
    for seq, event in model.prices:
        rate = model.rates.get(event.rate_mrid)
        name = rate_name(rate) if rate is not None else short(event.rate_mrid)
        price = "none" if event.interval_mrid is None else describe_blocks(rate, event.blocks)
        rows.append(
            f"<tr data-seq='{seq}'><td>{_stamp(tl, event.at_s)}</td><td>{escape(name)}</td>"
            f"<td>{escape(price)}</td><td>{'' if event.tou_tier is None else event.tou_tier}</td>"
            f"<td><code>{escape(event.interval_mrid or '')}</code></td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _server_faults_table(model: Forensics, tl: ForensicTimeline) -> str:
    """The server faults the gateway recorded (lists cut at a cap, defaults and clocks refused),
    and how often the link held a resource back: every rejection is visible (issue 15 point 4)."""
    rows = [
        "<h2>Server faults</h2><table id='server-faults'><tr><th>time</th><th>kind</th>"
        "<th>resource</th><th>reason</th></tr>"
    ]
    for f in model.server_faults:
        rows.append(
            f"<tr data-seq='{f.seq}'><td>{_stamp(tl, f.at_s)}</td><td>{escape(f.kind)}</td>"
            f"<td><code>{escape(f.resource)}</code></td><td>{escape(_unlinked(f.reason))}</td></tr>"
        )
    rows.append("</table>")
    if not model.server_faults:
        rows.append("<p>None recorded.</p>")
    if model.holds:
        paths = sorted({hold.path for _, hold in model.holds})
        rows.append(
            f"<p>The link held resources back {len(model.holds):,} times (link errors, HTTP "
            f"errors or bodies that were not the resource): {escape(', '.join(paths))}. "
            "<code>sep2gw explain LOG --at T</code> says which hold covered an instant and why.</p>"
        )
    return "".join(rows)


def _compliance(
    summary: Sequence[SourceSummary], settings: ComplianceSettings, tl: ForensicTimeline
) -> str:
    rows = [
        "<h2>Compliance</h2>",
        "<p>Each telemetry sample stands for the time until the next sample (at most "
        f"{'three median sample intervals' if settings.max_hold_s is None else f'{settings.max_hold_s:g} s'}). "
        "Export and import limits are compared with the site meter, generation and load limits with "
        f"the DER's own power. A sample is over a limit when it exceeds it by more than "
        f"<b>{settings.tolerance_w:g} W</b> (the stated tolerance) "
        + (
            f"once the limit has held its value for <b>{settings.grace_s:g} s</b> (the DER's "
            "response time)"
            if settings.grace_s
            else "from the instant the limit is in force (no grace for the DER's response time)"
        )
        + "; energy over counts its whole excess above the limit for the time the sample stands "
        "for.</p>",
        "<table id='compliance'><tr><th>mode</th><th>supplied by</th><th>limit (W)</th>"
        "<th>samples</th><th>seconds in force</th><th>seconds over</th><th>energy over (Wh)</th>"
        "<th>largest excess (W)</th><th>first over</th></tr>",
    ]
    for s in summary:
        kind, _, ident = s.source.partition(":")
        who = f"control {ident}" if kind == "control" else f"default of program {ident}"
        limit = (
            f"{s.limit_min_w:.0f}"
            if s.limit_min_w == s.limit_max_w
            else f"{s.limit_min_w:.0f} .. {s.limit_max_w:.0f}"
        )
        cls = " class='n over'" if s.seconds_over > 0 else " class='n'"
        rows.append(
            f"<tr data-mode='{escape(s.mode.value)}' data-source='{escape(s.source)}'>"
            f"<td>{escape(s.mode.value)}</td><td>{escape(who)}</td><td class='n'>{limit}</td>"
            f"<td class='n'>{s.samples}</td><td class='n'>{s.seconds:.0f}</td>"
            f"<td{cls}>{s.seconds_over:.1f}</td><td{cls}>{s.energy_over_wh:.3f}</td>"
            f"<td class='n'>{s.max_over_w:.0f}</td><td>{_stamp(tl, s.first_over_s)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _runs(model: Forensics, tl: ForensicTimeline) -> str:
    parts = ["<h2>Gateway runs and comms</h2><ul>"]
    for run in model.runs:
        parts.append(
            f"<li>gateway ran {_stamp(tl, run.started_s)} .. "
            f"{_stamp(tl, run.stopped_s) or 'end of log'}"
            f"{' (' + escape(run.stop_reason) + ')' if run.stop_reason else ''}</li>"
        )
    for period in model.comms:
        parts.append(
            f"<li>comms lost {_stamp(tl, period.lost_s)} .. "
            f"{_stamp(tl, period.restored_s) or 'end of log'}</li>"
        )
    for seq, failure in model.actor_failures:
        parts.append(
            f"<li>record {seq}: actor {escape(failure.actor)} failed: "
            f"{escape(failure.error_type)}</li>"
        )
    parts.append(f"<li>{len(model.writes):,} battery writes and verdicts recorded</li>")
    parts.append("</ul>")
    parts.append(
        f"<p>Generated by sep2gw from the log alone ({model.records:,} records folded through the "
        "gateway's own controls and polling folds).</p>"
    )
    return "".join(parts)
