"""The dispute report: one self-contained HTML file (inline CSS and SVG, no scripts, no external
resource of any kind), readable offline years later.

It answers the dispute in the order an analyst asks: did the log verify; the verdict, overall and
per control or program default (compliant, not compliant, not assessable), with the reasons the log
holds where a mode was not met (``sep2gw.forensics.dispute``); the site as the log records it
(LFDI, SFDI, software version…; "not recorded" where it does not); a chart of every mode in force
commanded against the power measured, the state of charge and a lane per mode
(``sep2gw.forensics.chart``), the whole log and, for a long one, day by day (``<details>``, no
script); then the compliance of every mode per supplier, the controls, the Responses, the server
faults and the gateway's runs. The page scales to any width.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, timedelta, tzinfo
from html import escape
from typing import Final

from events.times import utc_datetime, zoned
from sep2gw.forensics.chart import Window, render_chart
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.dispute import (
    NOT_RECORDED,
    Judgement,
    SiteIdentity,
    Verdict,
    gateway_down,
    judge,
    mode_stretches,
    overall_verdict,
    supplier_verdicts,
)
from sep2gw.forensics.model import Forensics
from sep2gw.forensics.render import ForensicTimeline
from sep2gw.timeline import describe_blocks, describe_learned, describe_settings, rate_name, short

__all__ = ["CSS", "render_report"]

#: The report's style sheet (the fleet page shares it).
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:16px;color:#222;overflow-wrap:anywhere}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
.scroll{overflow-x:auto;max-width:100%}
svg.chart{display:block;width:100%;height:auto;max-width:1800px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{background:#e7f6e7;border:1px solid #7c7;padding:10px}
.bad{background:#fde2e2;border:3px solid #c00;padding:10px;font-weight:bold;color:#900}
.na{background:#f3f3f3;border:1px solid #999;padding:10px}
.verdict-ok{background:#e7f6e7;border:2px solid #393;padding:10px}
.verdict-bad{background:#fde2e2;border:2px solid #c00;padding:10px;color:#900}
.over{color:#b00;font-weight:bold}code{font-size:12px}
td.v-compliant{background:#e7f6e7}td.v-not-compliant{background:#fde2e2;font-weight:bold}
td.v-not-assessable{background:#f3f3f3}
details{margin:6px 0}summary{cursor:pointer}
"""

#: Longer than this, the log is also charted day by day (in the site's zone)…
PER_DAY_AFTER_S = 26 * 3600.0
#: …up to this many days (longer: ``sep2gw replay --from/--to`` for a window).
MAX_DAYS = 62


def render_report(
    model: Forensics,
    *,
    source: str,
    zone: tzinfo | None,
    settings: ComplianceSettings,
    identity: SiteIdentity | None = None,
) -> str:
    """The report of ``model`` (see the module docstring); ``identity`` as the log records it
    (``dispute.site_identity``; ``None``: nothing recorded)."""
    identity = identity or SiteIdentity()
    tl = ForensicTimeline(zone)
    tl.ids = model.ids
    judgements = judge(model, identity, settings)
    verdicts = supplier_verdicts(model, judgements)
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>sep2gw dispute report: {escape(source)}</title><style>{CSS}</style></head><body>",
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
    out.append(_verdict(model, verdicts, settings, tl))
    out.append(_identity(identity, zone))
    out.append(_versions(model, tl))
    out.append("<h2>Modes in force, commanded and measured</h2>")
    out.append(_charts(model, identity, zone, tl))
    out.append(_compliance(judgements, settings, tl))
    out.append(_controls_table(model, tl))
    out.append(_responses_table(model, tl))
    out.append(_prices_table(model, tl))
    out.append(_server_faults_table(model, tl))
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


def _who(source: str) -> str:
    kind, _, ident = source.partition(":")
    return f"control {ident}" if kind == "control" else f"default of program {ident}"


def _seconds(s: float) -> str:
    return f"{s:,.0f} s" if s >= 10 else f"{s:.1f} s"


_VERDICT_CLASS = {"compliant": "verdict-ok", "not compliant": "verdict-bad", "not assessable": "na"}


def _verdict(
    model: Forensics,
    verdicts: Sequence[Verdict],
    settings: ComplianceSettings,
    tl: ForensicTimeline,
) -> str:
    """The overall verdict, then one per supplier with what it rests on and the reasons the log
    holds where a mode was not met."""
    word = overall_verdict(verdicts)
    judged = [j for v in verdicts for j in v.judgements]
    off = [j for j in judged if j.verdict == "not compliant"]
    if word == "not compliant":
        why = "; ".join(
            f"{escape(j.mode.value)} of {escape(_who(j.source))}: "
            f"{_seconds(j.seconds_off - j.seconds_excused)} off"
            for j in off
        )
    elif word == "compliant":
        why = "every mode judged was kept to within the tolerance"
    else:
        why = "no mode in force could be judged against a measurement in this log"
    caveat = (
        " (the log did not verify: this verdict rests on records that may have been altered)"
        if not model.verified
        else ""
    )
    parts = [
        "<h2>Verdict</h2>",
        f"<p class='{_VERDICT_CLASS[word]}' id='verdict' data-verdict='{word}'>Overall: "
        f"<b>{word.upper()}</b>{caveat}: {why}. Tolerance {settings.tolerance_w:g} W, grace "
        f"{settings.grace_s:g} s.</p>",
        "<div class='scroll'><table id='verdicts'><tr><th>supplier</th><th>modes</th>"
        "<th>verdict</th><th>what it rests on</th></tr>",
    ]
    for v in verdicts:
        modes = "<br>".join(
            f"{escape(j.mode.value)} {escape(', '.join(j.values))}" for j in v.judgements
        )
        details = [escape(v.note)] if v.note else []
        details += [_judgement_words(j, tl) for j in v.judgements]
        cls = "v-" + v.word.replace(" ", "-")
        parts.append(
            f"<tr data-source='{escape(v.source)}' data-verdict='{v.word}'>"
            f"<td>{escape(_who(v.source))}</td><td>{modes}</td><td class='{cls}'>{v.word}</td>"
            f"<td>{'<br>'.join(details)}</td></tr>"
        )
    parts.append("</table></div>")
    return "".join(parts)


def _judgement_words(j: Judgement, tl: ForensicTimeline) -> str:
    head = f"{escape(j.mode.value)}: "
    if j.kind is None:
        return head + f"not judged: {escape(j.why_not_judged)}"
    if j.samples == 0:
        text = head + "no sample measured while in force"
    else:
        real = j.seconds_off - j.seconds_excused
        if real > 1e-9:
            text = (
                head + f"{_seconds(real)} off of {_seconds(j.seconds)} judged "
                f"({j.energy_off_wh:.3f} Wh, largest {j.max_off_w:,.0f} W), first "
                f"{_stamp(tl, j.first_off_s)}"
            )
        else:
            text = head + f"kept to over {_seconds(j.seconds)} judged"
            if j.seconds_excused > 0:
                text += (
                    f" (not reached for {_seconds(j.seconds_excused)}: held back by a limit in "
                    "force, which outranks a target)"
                )
    if j.reasons and j.seconds_off - j.seconds_excused > 1e-9:
        text += "; reasons the log holds: " + "; ".join(
            f"{escape(r)} ({_seconds(s)})" for r, s in j.reasons.items()
        )
    if j.unjudged:
        text += "; not judged: " + "; ".join(
            f"{escape(r)} ({_seconds(s)})" for r, s in j.unjudged.items()
        )
    return text


def _identity(identity: SiteIdentity, zone: tzinfo | None) -> str:
    """The site as the log records it; what it does not record is said to be not recorded."""

    def cell(value: object) -> str:
        if value is None or value == ():
            return f"<i>{NOT_RECORDED}</i>"
        if isinstance(value, tuple):
            return escape(", ".join(str(v) for v in value))
        return escape(str(value))

    rows = (
        ("LFDI", cell(identity.lfdi)),
        ("SFDI", cell(identity.sfdi)),
        ("NMI", cell(identity.nmi)),
        ("server URL", cell(identity.server_url)),
        ("DeviceCapability path", cell(identity.device_capability)),
        ("EndDevice path", cell(identity.end_device)),
        ("gateway software version", cell(identity.software_versions)),
        ("DER (nameplate)", cell(identity.device)),
        ("DER setMaxW", cell(None if identity.max_w is None else f"{identity.max_w:,.0f} W")),
        (
            "site time zone",
            f"<i>{NOT_RECORDED}</i> (times shown in "
            + ("UTC" if zone is None else escape(str(zone)) + ", as given with --tz")
            + ")",
        ),
    )
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return (
        "<h2>Site</h2><div class='scroll'><table id='identity'>"
        f"{body}</table></div><p>The SFDI is derived from the LFDI (IEEE 2030.5 §6.3.3); "
        "everything else is as the log records it.</p>"
    )


def _charts(
    model: Forensics, identity: SiteIdentity, zone: tzinfo | None, tl: ForensicTimeline
) -> str:
    if model.first_s is None or model.last_s is None or model.last_s <= model.first_s:
        return "<p>Nothing to chart.</p>"
    t0, t1 = model.first_s, model.last_s
    site_zone = zone or UTC
    if utc_datetime(t0) is None or utc_datetime(t1) is None:
        site_zone = UTC
    stretches = mode_stretches(model)
    down = gateway_down(model)

    def stamp(t: float) -> str:
        return tl.stamp(t)

    parts = [
        render_chart(
            model,
            Window(start_s=t0, end_s=t1, title="the whole log"),
            stretches=stretches,
            identity=identity,
            zone=site_zone,
            stamp=stamp,
            down=down,
        )
    ]
    if not any(not math.isnan(v) for v in model.sample_soc):
        parts.append(
            "<p id='no-soc'>State of charge: <i>not recorded</i> in this log (no telemetry sample "
            "carries it).</p>"
        )
    parts.append(
        "<p>Power panel: every mode in force in W (limits, targets, percent modes by the "
        "nameplate) against the site and DER power measured, and the setpoint the gateway wrote. "
        "Dots above it: Responses (green acknowledged, red not). Lanes below: one per mode in "
        "force, a band per value and supplier (grey: a program's default; for connect and "
        "energize green true, red false); the last lane shows the gateway not running (black) and "
        "comms down (grey). Axis times are in "
        + ("UTC" if zone is None else escape(str(zone)))
        + "; hover a band or dot for details.</p>"
    )
    if t1 - t0 > MAX_DAYS * 86400.0:
        parts.append(
            f"<p>The log spans more than {MAX_DAYS} days: it is not charted day by day; "
            "<code>sep2gw replay LOG --from T --to T</code> shows any window.</p>"
        )
    elif t1 - t0 > PER_DAY_AFTER_S:
        for window in _days(t0, t1, site_zone):
            parts.append(
                f"<details class='day'><summary>{escape(window.title)}</summary>"
                + render_chart(
                    model,
                    window,
                    stretches=stretches,
                    identity=identity,
                    zone=site_zone,
                    stamp=stamp,
                    down=down,
                )
                + "</details>"
            )
    return "".join(parts)


def _days(t0: float, t1: float, zone: tzinfo) -> list[Window]:
    """The log cut at local midnights: one window per day it touches (none when its times are
    not calendar dates, or it spans more than ``MAX_DAYS``)."""
    if t1 - t0 > MAX_DAYS * 86400.0:
        return []
    out: list[Window] = []
    start = t0
    while start < t1:
        utc = utc_datetime(start)
        local = None if utc is None else zoned(utc, zone)
        if local is None or local.year >= 9999:
            return []
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        end = min(midnight.timestamp(), t1)
        out.append(Window(start_s=start, end_s=end, title=f"day {local:%Y-%m-%d} ({zone})"))
        start = end
    return out


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
    judgements: Sequence[Judgement], settings: ComplianceSettings, tl: ForensicTimeline
) -> str:
    rows = [
        "<h2>Compliance</h2>",
        "<p>Each telemetry sample stands for the time until the next sample (at most "
        f"{'three median sample intervals' if settings.max_hold_s is None else f'{settings.max_hold_s:g} s'}). "
        "Export and import limits are compared with the site meter; generation, load and "
        "percent limits, targets and fixed setpoints, and connect or energize false (0 W) with the "
        "DER's own power. A sample is off a mode when it misses it by more than "
        f"<b>{settings.tolerance_w:g} W</b> (the stated tolerance) "
        + (
            f"once the mode has held its value for <b>{settings.grace_s:g} s</b> (the DER's "
            "response time)"
            if settings.grace_s
            else "from the instant the mode is in force (no grace for the DER's response time)"
        )
        + "; energy off counts its whole miss for the time the sample stands for. A target held "
        "back by a limit in force is not off (a limit outranks a target). The reasons are what "
        "the log holds at each off sample: comms, the battery's write and its clamps, the DER "
        "unreachable.</p>",
        "<div class='scroll'><table id='compliance'><tr><th>mode</th><th>supplied by</th>"
        "<th>value</th><th>seconds in force</th><th>samples</th><th>seconds off</th>"
        "<th>energy off (Wh)</th><th>largest miss (W)</th><th>first off</th>"
        "<th>reasons the log holds</th><th>not judged</th><th>verdict</th></tr>",
    ]
    for j in judgements:
        real = j.seconds_off - j.seconds_excused
        cls = " class='n over'" if real > 1e-9 else " class='n'"
        reasons = "<br>".join(f"{escape(r)}: {_seconds(s)}" for r, s in j.reasons.items())
        unjudged = "<br>".join(f"{escape(r)}: {_seconds(s)}" for r, s in j.unjudged.items())
        if j.kind is None:
            unjudged = escape(j.why_not_judged)
        rows.append(
            f"<tr data-mode='{escape(j.mode.value)}' data-source='{escape(j.source)}' "
            f"data-verdict='{j.verdict}'>"
            f"<td>{escape(j.mode.value)}</td><td>{escape(_who(j.source))}</td>"
            f"<td class='n'>{escape(', '.join(j.values))}</td>"
            f"<td class='n'>{j.in_force_s:,.0f}</td><td class='n'>{j.samples:,}</td>"
            f"<td{cls}>{real:,.1f}</td><td{cls}>{j.energy_off_wh:.3f}</td>"
            f"<td class='n'>{j.max_off_w:,.0f}</td><td>{_stamp(tl, j.first_off_s)}</td>"
            f"<td>{reasons}</td><td>{unjudged}</td>"
            f"<td class='v-{j.verdict.replace(' ', '-')}'>{j.verdict}</td></tr>"
        )
    rows.append("</table></div>")
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
