"""The fleet summary: which sites were compliant when (issue 19 point 4).

A fleet's logs are one file per site in one directory (decision 0022a, ``sep2gw.fleetlogs``). The
summary reads them one at a time, each as the single-site report does (verified and folded in one
pass, ``model.analyse``; judged mode by mode and supplier by supplier, ``dispute.judge``), keeps
only a small :class:`SiteSummary` of each (its verdict overall and per day in the site's zone,
its identity, the seconds off) and lets the model go before the next: memory is one site's model
plus a few hundred bytes per site, however many sites there are. With ``workers`` > 1 the sites
are shared out to that many processes (each again one model at a time).

A file that cannot be summarised is reported in its row, never as a traceback, and the others are
still summarised: a damaged log (does not verify; summarised only with ``force``, said so), a
foreign or unreadable file, a log a gateway is writing right now (summarised as far as it is
written, said so).

Verdicts per day (``dispute.judge(days=…)``), for each site and each day its log covers:

- *not compliant*: some mode judged that day was missed beyond the tolerance (after the grace,
  less the time a limit in force held a target back), the rule of the single-site verdict;
- *compliant*: some mode was judged that day and none was missed;
- *not assessable*: the log covers the day but judged nothing in it.

The fleet table counts, per day, the sites compliant, not compliant, and without a verdict (not
assessable, no log covering the day, or a log that could not be summarised): *no data*.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from html import escape
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from events.errors import EventLogError
from events.log_lock import holder_of
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from events.store import EventStore
from events.times import utc_datetime, zoned
from sep2gw.fleetlogs import FleetDir, Ignored, SiteLog
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.dispute import (
    Judgement,
    SiteIdentity,
    judge,
    overall_verdict,
    site_identity,
    supplier_verdicts,
)
from sep2gw.forensics.model import FoldFailed, analyse

__all__ = [
    "FLEET_IDENTITY_TAG",
    "DayOf",
    "FleetDay",
    "FleetSummary",
    "SiteDay",
    "SiteSummary",
    "fleet_identity",
    "fleet_lines",
    "identity_of",
    "render_fleet_html",
    "summarise_fleet",
    "summarise_site",
]

#: The record a fleet writes at the head of each site's log (contract point 2, helper A's
#: ``events/fleet_events.py``). Read by tag, defensively: a log without it (a single-site log)
#: falls back to what its other records say and the file name.
FLEET_IDENTITY_TAG: Final = "fleet.site_identity.v1"

DayWord = Literal["compliant", "not compliant", "not assessable"]
SiteState = Literal["summarised", "refused", "unreadable"]
#: Rank of a site in the "worst first" order: by verdict, then by the days and seconds off.
_RANK: Final = {
    "not compliant": 0,
    "refused": 1,
    "unreadable": 1,
    "not assessable": 2,
    "compliant": 3,
}
#: How many suppliers found not compliant a site's row names.
_MAX_SUPPLIERS: Final = 5


class DayOf:
    """An instant's calendar day in ``zone`` (``YYYY-MM-DD``; UTC when ``None``), with the day's
    bounds cached: samples come in time order, so a new date is worked out once per day."""

    def __init__(self, zone: tzinfo | None) -> None:
        self.zone = zone or UTC
        self._start = math.inf
        self._end = -math.inf
        self._key = ""

    def __call__(self, t: float) -> str:
        if self._start <= t < self._end:
            return self._key
        utc = utc_datetime(t)
        local = zoned(utc, self.zone) if utc is not None else None
        if local is None:
            return "not a date"
        day = local.date()
        self._start = _midnight(day, self.zone)
        self._end = _midnight(day + timedelta(days=1), self.zone)
        self._key = day.isoformat()
        return self._key

    def span(self, t0: float, t1: float) -> list[str]:
        """Every day from the one holding ``t0`` to the one holding ``t1``."""
        first, last = self(t0), self(t1)
        if "not a date" in (first, last):
            return [d for d in dict.fromkeys((first, last))]
        out: list[str] = []
        day = date.fromisoformat(first)
        end = date.fromisoformat(last)
        while day <= end:
            out.append(day.isoformat())
            day += timedelta(days=1)
        return out


def _midnight(day: date, zone: tzinfo) -> float:
    return datetime.combine(day, time(0), tzinfo=zone).timestamp()


# -- identity --------------------------------------------------------------------------------------


def fleet_identity(store: EventStore) -> dict[str, Any] | None:
    """The newest ``fleet.site_identity.v1`` of a log as its fields (fleet, site, lfdi, sfdi, nmi,
    aggregator_lfdi, server_url), read by tag so that it needs no catalogue entry; ``None`` when
    the log holds none (a single-site log) or it cannot be read as an object."""
    execute = getattr(store, "execute", None)
    if execute is None:
        return None
    try:
        row = execute(
            "SELECT body FROM events WHERE type = ? ORDER BY seq DESC LIMIT 1",
            (FLEET_IDENTITY_TAG,),
        ).fetchone()
    except Exception:  # an old or foreign schema: no identity record, not a failure
        return None
    if row is None:
        return None
    try:
        body = msgspec.json.decode(row[0])
    except msgspec.MsgspecError:
        return None
    if not isinstance(body, dict):
        return None
    return {
        k: v
        for k in ("fleet", "site", "lfdi", "sfdi", "nmi", "aggregator_lfdi", "server_url")
        if isinstance(v := body.get(k), str | int) and not isinstance(v, bool)
    }


def identity_of(store: EventStore) -> tuple[SiteIdentity, dict[str, Any] | None]:
    """The site's identity as the dispute report shows it (``dispute.site_identity``), completed
    from the fleet's identity record when the log holds one: its NMI, server URL and LFDI/SFDI
    (the record is the fleet's statement of which site the log is; the Responses' LFDI is what the
    gateway sent)."""
    identity = site_identity(store)
    fleet = fleet_identity(store)
    if fleet is None:
        return identity, None
    changes: dict[str, Any] = {}
    if fleet.get("nmi"):
        changes["nmi"] = str(fleet["nmi"])
    if fleet.get("server_url"):
        changes["server_url"] = str(fleet["server_url"])
    if fleet.get("lfdi") and identity.lfdi is None:
        changes["lfdi"] = str(fleet["lfdi"])
    sfdi = fleet.get("sfdi")
    if identity.sfdi is None and sfdi is not None and str(sfdi).isdigit():
        changes["sfdi"] = int(sfdi)
    return msgspec.structs.replace(identity, **changes), fleet


# -- one site --------------------------------------------------------------------------------------


class SiteDay(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One site on one day: its verdict and the seconds judged and off (see the module doc)."""

    day: str
    verdict: DayWord
    seconds_judged: float
    seconds_off: float


class SiteSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One site of a fleet, as its log says; ``state`` summarised, refused (it did not verify) or
    unreadable (not a sep2gw log, damaged beyond reading), with ``problem`` saying why."""

    site: str
    log: str
    state: SiteState
    verdict: DayWord | None = None
    problem: str = ""
    verified: bool = False
    writing: str | None = None
    lfdi: str | None = None
    sfdi: int | None = None
    nmi: str | None = None
    aggregator_lfdi: str | None = None
    fleet: str | None = None
    named_site: str | None = None
    records: int = 0
    first_s: float | None = None
    last_s: float | None = None
    #: seconds judged and off, summed over the modes judged (two modes judged for a minute: 120 s)
    seconds_judged: float = 0.0
    seconds_off: float = 0.0
    energy_off_wh: float = 0.0
    not_compliant: tuple[str, ...] = ()
    days: tuple[SiteDay, ...] = ()
    report: str | None = None

    @property
    def rank(self) -> str:
        return self.verdict if self.state == "summarised" and self.verdict else self.state

    @property
    def days_not_compliant(self) -> int:
        return sum(1 for d in self.days if d.verdict == "not compliant")


def summarise_site(
    log: SiteLog,
    *,
    zone: tzinfo | None,
    settings: ComplianceSettings,
    force: bool = False,
    report_dir: Path | None = None,
) -> SiteSummary:
    """Verify and fold one site's log, judge it per day, and keep only its summary; with
    ``report_dir``, also write its dispute report there as ``<site>.html`` (the model is in
    memory only while this runs). Never raises for what is wrong with the file."""
    path = log.path
    writing = holder_of(path)
    base: dict[str, Any] = {"site": log.site, "log": str(path), "writing": writing}
    try:
        store = SqliteEventStore(path, CATALOGUE, readonly=True, follow=writing is not None)
    except EventLogError as exc:
        return SiteSummary(state="unreadable", problem=str(exc), **base)
    except OSError as exc:
        return SiteSummary(state="unreadable", problem=f"{path}: {exc.strerror or exc}", **base)
    with store:
        try:
            return _summarised(
                store, log, base, zone=zone, settings=settings, force=force, report_dir=report_dir
            )
        except (EventLogError, FoldFailed) as exc:
            return SiteSummary(state="unreadable", problem=str(exc), **base)
        except Exception as exc:  # one site's failure never stops the others' summary
            return SiteSummary(
                state="unreadable",
                problem=f"internal error while summarising it ({type(exc).__name__}: {exc}); "
                "please report it",
                **base,
            )


def _summarised(
    store: SqliteEventStore,
    log: SiteLog,
    base: dict[str, Any],
    *,
    zone: tzinfo | None,
    settings: ComplianceSettings,
    force: bool,
    report_dir: Path | None,
) -> SiteSummary:
    """``summarise_site`` on the opened log (``base``: the fields known so far, completed here)."""
    path = log.path
    model = analyse(store, force=force)
    identity, fleet = identity_of(store)
    assert model.report is not None
    base.update(
        lfdi=identity.lfdi,
        sfdi=identity.sfdi,
        nmi=identity.nmi,
        records=model.records,
        first_s=model.first_s,
        last_s=model.last_s,
    )
    if fleet is not None:
        base.update(
            aggregator_lfdi=fleet.get("aggregator_lfdi") or None,
            fleet=fleet.get("fleet") or None,
            named_site=fleet.get("site") or None,
        )
    if not model.verified and not force:
        return SiteSummary(
            state="refused",
            problem=f"the log did not verify: {model.report.describe()} (--force to go on)",
            **base,
        )
    day_of = DayOf(zone)
    judgements = judge(model, identity, settings, days=day_of)
    verdicts = supplier_verdicts(model, judgements)
    report = None
    unwritten = ""
    if report_dir is not None:
        from sep2gw.forensics.report import render_report

        html = render_report(
            model, source=str(path), zone=zone, settings=settings, identity=identity
        )
        target = report_dir / f"{log.site}.html"
        try:
            target.write_text(html, encoding="utf-8")
            report = target.name
        except OSError as exc:
            unwritten = f"its report was not written ({target}: {exc.strerror or exc})"
    judged = [j for j in judgements if j.kind is not None]
    days = _days(judged, day_of, model.first_s, model.last_s)
    not_compliant = tuple(v.source for v in verdicts if v.word == "not compliant")
    problem = "" if model.verified else f"DID NOT VERIFY (forced): {model.report.describe()}"
    problem = "; ".join(p for p in (problem, unwritten) if p)
    return SiteSummary(
        state="summarised",
        verdict=overall_verdict(verdicts),
        problem=problem,
        verified=model.verified,
        seconds_judged=sum(j.seconds for j in judged),
        seconds_off=sum(max(0.0, j.seconds_off - j.seconds_excused) for j in judged),
        energy_off_wh=sum(j.energy_off_wh for j in judged if j.verdict == "not compliant"),
        not_compliant=not_compliant,
        days=tuple(days),
        report=report,
        **base,
    )


def _days(
    judged: Iterable[Judgement], day_of: DayOf, first_s: float | None, last_s: float | None
) -> list[SiteDay]:
    """A verdict for every day the log covers (the module doc's rules)."""
    tallies: dict[str, list[float]] = {}
    for j in judged:
        for day, tally in j.by_day.items():
            into = tallies.setdefault(day, [0.0, 0.0])
            into[0] += tally.seconds
            into[1] += max(0.0, tally.off_s)
            if tally.samples and not into[0]:
                into[0] = 1e-9  # judged, if only for an instant
    covered = day_of.span(first_s, last_s) if first_s is not None and last_s is not None else []
    out: list[SiteDay] = []
    for day in sorted(set(covered) | set(tallies)):
        judged_s, off_s = tallies.get(day, (0.0, 0.0))
        word: DayWord = (
            "not compliant" if off_s > 1e-9 else "compliant" if judged_s > 0 else "not assessable"
        )
        out.append(SiteDay(day=day, verdict=word, seconds_judged=judged_s, seconds_off=off_s))
    return out


# -- the fleet -------------------------------------------------------------------------------------


class FleetDay(msgspec.Struct, frozen=True, kw_only=True):
    """One day across the fleet: how many sites were compliant, not, or have no verdict; the
    sites not compliant worst first (most seconds off)."""

    day: str
    compliant: int
    not_compliant: int
    no_data: int
    not_compliant_sites: tuple[str, ...]


class FleetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A fleet directory summarised: the sites worst first, the days, the files set aside."""

    directory: str
    zone: str
    tolerance_w: float
    grace_s: float
    sites: tuple[SiteSummary, ...]
    days: tuple[FleetDay, ...]
    ignored: tuple[Ignored, ...] = ()

    def count(self, rank: str) -> int:
        return sum(1 for s in self.sites if s.rank == rank)


def _worst_first(site: SiteSummary) -> tuple[int, int, float, float, str]:
    return (
        _RANK[site.rank],
        -site.days_not_compliant,
        -site.seconds_off,
        -site.energy_off_wh,
        site.site,
    )


SiteDone = Callable[[SiteSummary, int, int], None]


def summarise_fleet(
    fleet: FleetDir,
    *,
    zone: tzinfo | None,
    settings: ComplianceSettings,
    force: bool = False,
    report_dir: Path | None = None,
    workers: int = 1,
    on_site: SiteDone | None = None,
) -> FleetSummary:
    """Every site of ``fleet`` summarised one at a time (``workers`` processes when > 1), then the
    fleet's days; ``on_site`` hears of each site as it is done (progress)."""
    total = len(fleet.sites)
    sites: list[SiteSummary] = []
    for done, summary in enumerate(
        _each_site(fleet.sites, zone, settings, force, report_dir, workers), 1
    ):
        sites.append(summary)
        if on_site is not None:
            on_site(summary, done, total)
    sites.sort(key=_worst_first)
    return FleetSummary(
        directory=str(fleet.path),
        zone="UTC" if zone is None else str(zone),
        tolerance_w=settings.tolerance_w,
        grace_s=settings.grace_s,
        sites=tuple(sites),
        days=tuple(_fleet_days(sites)),
        ignored=fleet.ignored,
    )


def _each_site(
    logs: tuple[SiteLog, ...],
    zone: tzinfo | None,
    settings: ComplianceSettings,
    force: bool,
    report_dir: Path | None,
    workers: int,
) -> Iterator[SiteSummary]:
    def one(log: SiteLog) -> SiteSummary:
        return summarise_site(log, zone=zone, settings=settings, force=force, report_dir=report_dir)

    if workers <= 1 or len(logs) < 2:
        for log in logs:
            yield one(log)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [(log, zone, settings, force, report_dir) for log in logs]
        yield from pool.map(_summarise_job, jobs, chunksize=max(1, len(logs) // (workers * 8)))


def _summarise_job(
    job: tuple[SiteLog, tzinfo | None, ComplianceSettings, bool, Path | None],
) -> SiteSummary:
    log, zone, settings, force, report_dir = job
    return summarise_site(log, zone=zone, settings=settings, force=force, report_dir=report_dir)


def _fleet_days(sites: list[SiteSummary]) -> list[FleetDay]:
    """Per day, the sites compliant / not compliant / with no verdict (``sites`` worst first)."""
    by_day: dict[str, dict[str, SiteDay]] = {}
    order = {site.site: i for i, site in enumerate(sites)}
    for site in sites:
        for d in site.days:
            by_day.setdefault(d.day, {})[site.site] = d
    out: list[FleetDay] = []
    for day in sorted(by_day):
        seen = by_day[day]
        compliant = sum(1 for d in seen.values() if d.verdict == "compliant")
        # most seconds off that day first; a tie in the fleet's worst-first order
        bad = sorted(
            (-d.seconds_off, order[name], name)
            for name, d in seen.items()
            if d.verdict == "not compliant"
        )
        out.append(
            FleetDay(
                day=day,
                compliant=compliant,
                not_compliant=len(bad),
                no_data=len(sites) - compliant - len(bad),
                not_compliant_sites=tuple(name for _, _, name in bad),
            )
        )
    return out


# -- text ------------------------------------------------------------------------------------------


def _seconds(s: float) -> str:
    return f"{s:,.0f} s" if s >= 10 or s == 0 else f"{s:.1f} s"


def _who(site: SiteSummary) -> str:
    parts = []
    if site.nmi:
        parts.append(f"NMI {site.nmi}")
    if site.lfdi:
        parts.append(f"LFDI {site.lfdi[:16]}…")
    if site.named_site and site.named_site != site.site:
        parts.append(f"the log names itself {site.named_site!r}")
    return f" ({', '.join(parts)})" if parts else ""


def site_line(site: SiteSummary) -> str:
    """One site in words: its verdict and what it rests on, or why it has none."""
    if site.state != "summarised":
        word = "REFUSED" if site.state == "refused" else "UNREADABLE"
        return f"{site.site}: {word}: {site.problem}"
    assert site.verdict is not None
    text = (
        f"{site.site}: {site.verdict.upper() if site.verdict == 'not compliant' else site.verdict}"
    )
    if site.verdict == "not compliant":
        text += (
            f" on {site.days_not_compliant} of {len(site.days)} day(s), "
            f"{_seconds(site.seconds_off)} off ({site.energy_off_wh:.3f} Wh) by "
            + ", ".join(site.not_compliant[:_MAX_SUPPLIERS])
            + (
                f" and {len(site.not_compliant) - _MAX_SUPPLIERS} more"
                if len(site.not_compliant) > _MAX_SUPPLIERS
                else ""
            )
        )
    elif site.verdict == "compliant":
        kept = sum(1 for d in site.days if d.verdict == "compliant")
        text += f" on {kept} of {len(site.days)} day(s)"
    else:
        text += ": no mode in force could be judged against a measurement"
    text += _who(site)
    if site.problem:
        text += f"; {site.problem}"
    if site.writing is not None:
        text += f"; a gateway is writing it ({site.writing}): as far as written"
    return text


def fleet_lines(summary: FleetSummary) -> list[str]:
    """The fleet summary in words: counts, then day by day, then the sites worst first."""
    n = len(summary.sites)
    out = [
        f"{summary.directory}: a fleet of {n} site(s); days in {summary.zone}; tolerance "
        f"{summary.tolerance_w:g} W, grace {summary.grace_s:g} s",
        f"  {summary.count('not compliant')} not compliant, {summary.count('compliant')} "
        f"compliant, {summary.count('not assessable')} not assessable, "
        f"{summary.count('refused') + summary.count('unreadable')} not summarised",
        "",
        f"  {'day':<12}{'compliant':>10}{'not':>6}{'no data':>9}  not compliant (worst first)",
    ]
    for day in summary.days:
        names = ", ".join(day.not_compliant_sites[:5])
        if len(day.not_compliant_sites) > 5:
            names += f" and {len(day.not_compliant_sites) - 5} more"
        out.append(
            f"  {day.day:<12}{day.compliant:>10}{day.not_compliant:>6}{day.no_data:>9}  {names}".rstrip()
        )
    out.append("")
    out.append("sites, worst first:")
    out.extend(f"  {site_line(s)}" for s in summary.sites)
    for item in summary.ignored:
        out.append(f"note: {item.name} set aside: {item.why}")
    return out


# -- HTML ------------------------------------------------------------------------------------------

_VERDICT_CELL: Final = {
    "compliant": "v-compliant",
    "not compliant": "v-not-compliant",
    "not assessable": "v-not-assessable",
}


def render_fleet_html(summary: FleetSummary) -> str:
    """The fleet page: counts, a table per day, then a site × day matrix worst first, each site
    linking to its own dispute report (the single-site report, beside this page)."""
    from sep2gw.forensics.report import CSS

    n = len(summary.sites)
    title = f"sep2gw fleet report: {summary.directory}"
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{CSS}{_FLEET_CSS}</style></head><body>",
        "<h1>sep2gw fleet report</h1>",
        f"<p>Fleet log directory <code>{escape(summary.directory)}</code>: {n} site(s). Days are "
        f"calendar days in {escape(summary.zone)}. Tolerance {summary.tolerance_w:g} W, grace "
        f"{summary.grace_s:g} s. Each site's verdict is its dispute report's (linked).</p>",
        "<p id='counts'>"
        f"<span data-count='not compliant'>{summary.count('not compliant')} not compliant</span>, "
        f"<span data-count='compliant'>{summary.count('compliant')} compliant</span>, "
        f"<span data-count='not assessable'>{summary.count('not assessable')} not assessable"
        "</span>, <span data-count='not summarised'>"
        f"{summary.count('refused') + summary.count('unreadable')} not summarised</span>.</p>",
        "<h2>Day by day</h2>",
        _days_chart(summary),
        "<div class='scroll'><table id='days'><tr><th>day</th>"
        "<th>compliant</th><th>not compliant</th><th>no data</th>"
        "<th>not compliant (worst first)</th></tr>",
    ]
    reports = {s.site: s.report for s in summary.sites if s.report is not None}
    for day in summary.days:
        links = ", ".join(_site_link(reports, name) for name in day.not_compliant_sites)
        out.append(
            f"<tr data-day='{day.day}'><td>{day.day}</td><td class='n'>{day.compliant}</td>"
            f"<td class='n{' over' if day.not_compliant else ''}'>{day.not_compliant}</td>"
            f"<td class='n'>{day.no_data}</td><td>{links}</td></tr>"
        )
    out.append("</table></div>")
    days = [d.day for d in summary.days]
    out.append(
        "<h2>Sites, worst first</h2><div class='scroll'><table id='sites'><tr><th>site</th>"
        "<th>NMI</th><th>LFDI</th><th>verdict</th><th>seconds off</th><th>energy off</th>"
        + "".join(f"<th>{escape(d)}</th>" for d in days)
        + "<th>notes</th></tr>"
    )
    for site in summary.sites:
        per_day = {d.day: d for d in site.days}
        cells = []
        for d in days:
            seen = per_day.get(d)
            if seen is None:
                cells.append("<td class='v-not-assessable' title='no log covers this day'></td>")
            else:
                cells.append(
                    f"<td class='{_VERDICT_CELL[seen.verdict]}' data-verdict='{seen.verdict}' "
                    f"title='{d}: {seen.verdict}'>{_day_cell(seen)}</td>"
                )
        verdict = site.verdict if site.state == "summarised" else site.state
        cls = _VERDICT_CELL.get(verdict or "", "v-not-compliant")
        notes = site.problem
        if site.named_site and site.named_site != site.site:
            notes = (notes + "; " if notes else "") + f"the log names itself {site.named_site!r}"
        if site.writing is not None:
            notes = (notes + "; " if notes else "") + f"a gateway is writing it ({site.writing})"
        out.append(
            f"<tr data-site='{escape(site.site)}' data-verdict='{escape(str(verdict))}'>"
            f"<td>{_site_link(reports, site.site)}</td><td>{escape(site.nmi or '')}</td>"
            f"<td><code>{escape(site.lfdi or '')}</code></td><td class='{cls}'>{verdict}</td>"
            f"<td class='n'>{_seconds(site.seconds_off)}</td>"
            f"<td class='n'>{site.energy_off_wh:.3f} Wh</td>{''.join(cells)}"
            f"<td class='notes'>{escape(notes)}</td></tr>"
        )
    out.append("</table></div>")
    if summary.ignored:
        out.append("<h2>Files set aside</h2><ul id='ignored'>")
        out.extend(
            f"<li><code>{escape(i.name)}</code>: {escape(i.why)}</li>" for i in summary.ignored
        )
        out.append("</ul>")
    out.append("</body></html>\n")
    return "".join(out)


#: The site × day matrix stays one line a site (it scrolls sideways); the notes wrap.
_FLEET_CSS: Final = (
    "#sites td,#sites th,#days td,#days th{white-space:nowrap;overflow-wrap:normal}"
    "#sites td.notes{white-space:normal;min-width:24em}"
)


#: (count field, colour, legend) of the day chart's stacked bars, bottom up.
_BARS: Final = (
    ("not_compliant", "#c00", "not compliant"),
    ("compliant", "#393", "compliant"),
    ("no_data", "#bbb", "no data"),
)


def _days_chart(summary: FleetSummary) -> str:
    """Sites per day as stacked bars (not compliant at the bottom, where the eye starts), one bar a
    day, inline SVG scaled to the page; each segment's count in its tooltip."""
    days = summary.days
    total = len(summary.sites)
    if not days or total == 0:
        return ""
    plot_h, left, top, bottom = 160.0, 44.0, 24.0, 34.0
    step = max(6.0, min(48.0, 960.0 / len(days)))
    width = max(left + step * len(days) + 12, 380.0)  # the legend fits
    height = top + plot_h + bottom
    out = [
        f"<svg class='chart' id='days-chart' viewBox='0 0 {width:.0f} {height:.0f}' "
        f"role='img' aria-label='sites per day by verdict' style='max-width:{width:.0f}px'>",
        f"<text x='{left}' y='14' font-size='11'>"
        + " ".join(f"<tspan fill='{colour}'>■</tspan> {legend}" for _, colour, legend in _BARS)
        + "</text>",
        f"<line x1='{left}' y1='{top + plot_h}' x2='{left + step * len(days):.0f}' y2='{top + plot_h}' "
        "stroke='#444'/>",
        f"<text x='{left - 6}' y='{top + 4}' font-size='11' text-anchor='end'>{total}</text>",
        f"<text x='{left - 6}' y='{top + plot_h}' font-size='11' text-anchor='end'>0</text>",
    ]
    label_every = max(1, math.ceil(44 / step))  # a label is ~36 px wide
    for i, day in enumerate(days):
        x = left + i * step
        y = top + plot_h
        for field, colour, legend in _BARS:
            count: int = getattr(day, field)
            if not count:
                continue
            h = plot_h * count / total
            y -= h
            out.append(
                f"<rect x='{x + 1:.1f}' y='{y:.1f}' width='{step - 2:.1f}' height='{h:.1f}' "
                f"fill='{colour}'><title>{day.day}: {count} {legend}</title></rect>"
            )
        if i % label_every == 0:
            out.append(
                f"<text x='{x + step / 2:.1f}' y='{top + plot_h + 16}' font-size='10' "
                f"text-anchor='middle'>{day.day[5:]}</text>"
            )
    out.append("</svg>")
    return "".join(out)


def _day_cell(day: SiteDay) -> str:
    """A day's cell, short (the colour says the verdict): seconds off, ok, or n/a."""
    if day.verdict == "not compliant":
        return f"{_seconds(day.seconds_off)} off"
    return "ok" if day.verdict == "compliant" else "n/a"


def _site_link(reports: dict[str, str], name: str) -> str:
    report = reports.get(name)
    if report is None:
        return escape(name)
    return f"<a href='sites/{escape(report)}'>{escape(name)}</a>"
