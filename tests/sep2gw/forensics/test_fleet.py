"""The log for a fleet (issue 19 point 4): forensics per site in a fleet log directory, and the
fleet summary — which sites were compliant when, per day in the site's zone, worst first; damaged,
foreign and live logs reported in their row while the others are still summarised."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from events.log_lock import LogHolder, LogLock
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.fleetlogs import read_fleet_dir
from sep2gw.forensics import analyse
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.dispute import judge, overall_verdict, site_identity, supplier_verdicts
from sep2gw.forensics.fleet import (
    DayOf,
    fleet_identity,
    identity_of,
    summarise_fleet,
)
from sep2gw.forensics.render import parse_zone
from tests.sep2gw.forensics.worlds import FLEET, fleet_dir


@pytest.fixture(scope="session")
def fleet(world_logs: dict[str, Path]) -> Path:
    return fleet_dir(next(iter(world_logs.values())).parent)


@pytest.fixture
def copy(fleet: Path, tmp_path: Path) -> Path:
    """A copy of the fleet directory a test may damage."""
    return Path(shutil.copytree(fleet, tmp_path / "fleet"))


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def _damage(log: Path) -> None:
    """Alter one measurement after the fact: the record still decodes, its hash no longer holds."""
    with contextlib.closing(sqlite3.connect(log)) as db:
        seq, body = db.execute(
            "SELECT seq, body FROM events WHERE type = 'hardware.telemetry.v1' ORDER BY seq LIMIT 1"
        ).fetchone()
        text = body.decode() if isinstance(body, bytes) else body
        altered = text.replace('"site_w":', '"site_w":1', 1).encode()
        db.execute("UPDATE events SET body = ? WHERE seq = ?", (altered, seq))
        db.commit()


# -- per site --------------------------------------------------------------------------------------


def test_each_forensic_command_reads_a_site_of_the_fleet(
    fleet: Path, world_logs: dict[str, Path]
) -> None:
    """The same output as the site's log file given directly (the fleet path aside)."""
    for args in (["replay", "--at", "2025-11-26T00:05:40Z"], ["explain", "A2"]):
        code, direct, _ = _run(args[0], str(world_logs["demo"]), *args[1:])
        code_fleet, via_fleet, _ = _run(args[0], str(fleet), *args[1:], "--site", "depot-north")
        assert code == code_fleet == OK
        site_log = str(fleet / "depot-north.sep2gw")
        assert via_fleet.replace(site_log, "<log>") == direct.replace(
            str(world_logs["demo"]), "<log>"
        )


def test_log_commands_read_a_site_of_the_fleet(fleet: Path) -> None:
    code, out, _ = _run("log", "verify", str(fleet), "--site", "warehouse-7")
    assert code == OK and "warehouse-7.sep2gw: intact" in out
    code, out, _ = _run("log", "tail", str(fleet), "--site", "nmi-4103", "-n", "1")
    assert code == OK and "runtime.gateway_stopped.v1" in out
    code, out, _ = _run("log", "inspect", str(fleet), "--site", "nmi-4107", "--json")
    assert code == OK and json.loads(out)["path"].endswith("nmi-4107.sep2gw")


def test_export_reads_a_site_of_the_fleet(fleet: Path) -> None:
    code, out, _ = _run("export", str(fleet), "--site", "nmi-4103", "--format", "csv")
    assert code == OK and out.startswith("seq,")


@pytest.mark.parametrize(
    "args",
    [["replay"], ["explain", "A2"], ["log", "verify"], ["log", "inspect"], ["export"]],
)
def test_commands_that_need_one_site_refuse_a_fleet_naming_its_sites(
    fleet: Path, args: list[str]
) -> None:
    code, out, err = _run(
        *args[:1],
        *(args[1:2] if args[0] == "log" else []),
        str(fleet),
        *(args[1:] if args[0] != "log" else []),
    )
    assert code == BAD_INPUT
    assert "fleet log directory of 4 sites: name one with --site" in err
    assert "depot-north, nmi-4103, nmi-4107, warehouse-7" in err
    assert out == ""


def test_an_unknown_site_is_refused_suggesting_the_closest(fleet: Path) -> None:
    code, _, err = _run("replay", str(fleet), "--site", "nmi-4130")
    assert code == BAD_INPUT
    assert "--site nmi-4130: no such site" in err and "did you mean nmi-4107 or nmi-4103?" in err


def test_site_with_a_log_file_is_refused(world_logs: dict[str, Path]) -> None:
    code, _, err = _run("replay", str(world_logs["demo"]), "--site", "depot-north")
    assert code == BAD_INPUT and "is a log file, not a fleet log directory" in err


def test_one_site_report_still_needs_its_file(fleet: Path) -> None:
    code, _, err = _run("report", str(fleet), "--site", "depot-north")
    assert code == BAD_INPUT and "-o FILE" in err


# -- days ------------------------------------------------------------------------------------------


def test_days_are_calendar_days_in_the_site_zone() -> None:
    day = DayOf(parse_zone("Australia/Adelaide"))
    # 13:29:59 UTC is 23:59:59 in Adelaide (+10:30 in summer); a second later it is tomorrow
    assert day(1764163799.0) == "2025-11-26"
    assert day(1764163800.0) == "2025-11-27"
    assert day(1764163799.0) == "2025-11-26"  # the cache is left when the instant leaves its day
    assert DayOf(None)(1764163800.0) == "2025-11-26"
    assert day.span(1764115200.0, 1764115200.0 + 3 * 86400) == [
        "2025-11-26",
        "2025-11-27",
        "2025-11-28",
        "2025-11-29",
    ]


def test_days_follow_daylight_saving(tmp_path: Path) -> None:
    """Adelaide leaves daylight saving on 2026-04-05: that day is 25 hours long."""
    zone = parse_zone("Australia/Adelaide")
    day = DayOf(zone)
    start = datetime(2026, 4, 5, tzinfo=zone).timestamp()  # 00:00 +10:30; 03:00 is 02:00 +09:30
    assert day(start - 1) == "2026-04-04"
    assert day(start) == "2026-04-05"
    assert day(start + 25 * 3600 - 1) == "2026-04-05"
    assert day(start + 25 * 3600) == "2026-04-06"


def test_tallies_per_day_add_up_to_the_whole_judgement(world_logs: dict[str, Path]) -> None:
    """The restart world runs 12:00-12:10 UTC: at +11:55 it crosses midnight, split in two days."""
    with SqliteEventStore(world_logs["restart"], CATALOGUE, readonly=True) as store:
        model = analyse(store)
        identity = site_identity(store)
    judged = judge(model, identity, days=DayOf(parse_zone("+11:55")))
    days = {d for j in judged for d in j.by_day}
    assert days == {"2025-11-26", "2025-11-27"}
    for j in judged:
        assert sum(t.samples for t in j.by_day.values()) == j.samples
        assert sum(t.seconds for t in j.by_day.values()) == pytest.approx(j.seconds)
        assert sum(t.seconds_off for t in j.by_day.values()) == pytest.approx(j.seconds_off)
    # without days, the judgement is what it was
    plain = judge(model, identity)
    assert [(j.mode, j.source, j.seconds, j.seconds_off) for j in plain] == [
        (j.mode, j.source, j.seconds, j.seconds_off) for j in judged
    ]
    assert all(not j.by_day for j in plain)


# -- the fleet summary -----------------------------------------------------------------------------


def _single_site_verdict(log: Path) -> str:
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        model = analyse(store)
        return overall_verdict(supplier_verdicts(model, judge(model, site_identity(store))))


def test_each_site_has_the_verdict_of_its_own_report_worst_first(fleet: Path) -> None:
    summary = summarise_fleet(
        read_fleet_dir(fleet), zone=parse_zone("Australia/Adelaide"), settings=ComplianceSettings()
    )
    assert [s.site for s in summary.sites] == ["warehouse-7", "depot-north", "nmi-4103", "nmi-4107"]
    for site in summary.sites:
        assert site.verdict == _single_site_verdict(fleet / f"{site.site}.sep2gw")
    # the same seconds off (15 s): the one further over the limit (more energy off) first
    worst, second = summary.sites[:2]
    assert worst.seconds_off == second.seconds_off and worst.energy_off_wh > second.energy_off_wh
    assert second.verdict == "not compliant" and second.seconds_off > 0
    assert second.not_compliant == (
        "control:DE0000000000000000000000000000A2",
        "control:DE0000000000000000000000000000B1",
    )
    [day] = summary.days
    assert (day.day, day.compliant, day.not_compliant, day.no_data) == ("2025-11-26", 2, 2, 0)
    assert set(day.not_compliant_sites) == {"depot-north", "warehouse-7"}
    assert [(i.name, "not a site log" in i.why) for i in summary.ignored] == [("README.txt", True)]


def test_a_day_without_a_log_is_no_data_for_that_site(fleet: Path) -> None:
    """At +11:55 the restart site's log covers two days; the others' logs only the first."""
    summary = summarise_fleet(
        read_fleet_dir(fleet), zone=parse_zone("+11:55"), settings=ComplianceSettings()
    )
    days = {d.day: d for d in summary.days}
    assert set(days) == {"2025-11-26", "2025-11-27"}
    second = days["2025-11-27"]
    assert second.compliant + second.not_compliant == 1 and second.no_data == 3


def test_a_damaged_log_is_refused_in_its_row_and_the_others_summarised(copy: Path) -> None:
    _damage(copy / "nmi-4103.sep2gw")
    (copy / "foreign.sep2gw").write_text("not a database", encoding="utf-8")
    summary = summarise_fleet(read_fleet_dir(copy), zone=None, settings=ComplianceSettings())
    by_site = {s.site: s for s in summary.sites}
    assert by_site["nmi-4103"].state == "refused"
    assert "did not verify" in by_site["nmi-4103"].problem
    assert by_site["foreign"].state == "unreadable"
    assert "not a sep2gw event log" in by_site["foreign"].problem
    assert by_site["depot-north"].verdict == "not compliant"
    assert by_site["nmi-4107"].verdict == "compliant"
    [day] = summary.days
    assert day.no_data == 2  # the two without a verdict count as no data on every day
    # forced, the damaged one is summarised and says so
    forced = summarise_fleet(
        read_fleet_dir(copy), zone=None, settings=ComplianceSettings(), force=True
    )
    damaged = next(s for s in forced.sites if s.site == "nmi-4103")
    assert damaged.state == "summarised" and not damaged.verified
    assert damaged.problem.startswith("DID NOT VERIFY (forced)")


def test_report_of_a_fleet_prints_the_summary_and_exits_3_for_a_refused_log(copy: Path) -> None:
    code, out, err = _run("report", str(copy))
    assert code == OK, err
    assert "a fleet of 4 site(s)" in out and "2 not compliant, 2 compliant" in out
    assert "note: README.txt set aside" in out
    _damage(copy / "nmi-4107.sep2gw")
    code, out, err = _run("report", str(copy))
    assert code == CHECK_FAILED
    assert "nmi-4107: REFUSED: the log did not verify" in out
    assert "depot-north: NOT COMPLIANT" in out
    assert "1 site log(s) refused or unreadable: nmi-4107" in err
    assert "Traceback" not in out + err


def test_report_json_is_the_summary_for_machines(fleet: Path) -> None:
    code, out, _ = _run("report", str(fleet), "--json", "--tz", "Australia/Adelaide")
    assert code == OK
    doc = json.loads(out)
    assert doc["zone"] == "Australia/Adelaide"
    assert [s["site"] for s in doc["sites"]][:2] == ["warehouse-7", "depot-north"]
    assert doc["days"][0]["not_compliant"] == 2
    assert doc["sites"][0]["days"][0]["verdict"] == "not compliant"


def test_the_pool_gives_the_same_summary(fleet: Path) -> None:
    settings = ComplianceSettings()
    alone = summarise_fleet(read_fleet_dir(fleet), zone=None, settings=settings)
    pooled = summarise_fleet(read_fleet_dir(fleet), zone=None, settings=settings, workers=2)
    assert pooled == alone


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows: list[dict[str, str | None]] = []
        self.tags: set[str] = set()
        self.sources: list[str] = []
        self.bars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))
        if tag == "tr" and "data-site" in found:
            self.rows.append(found)
        if found.get("src"):
            self.sources.append(str(found["src"]))
        if tag == "rect":
            self.bars += 1


def test_fleet_page_links_each_site_report_worst_first(fleet: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "fleet-report"
    code, out, err = _run("report", str(fleet), "-o", str(out_dir))
    assert code == OK, err
    assert f"wrote {out_dir / 'index.html'} and 4 site report(s)" in out
    page = _Page()
    page.feed((out_dir / "index.html").read_text(encoding="utf-8"))
    assert [r["data-site"] for r in page.rows] == [
        "warehouse-7",
        "depot-north",
        "nmi-4103",
        "nmi-4107",
    ]
    assert [r["data-verdict"] for r in page.rows] == [
        "not compliant",
        "not compliant",
        "compliant",
        "compliant",
    ]
    for site in FLEET:
        assert f"sites/{site}.html" in page.links
        report = (out_dir / "sites" / f"{site}.html").read_text(encoding="utf-8")
        assert "sep2gw dispute report" in report
    # the day chart: a bar segment per verdict with sites that day (one day: not compliant and
    # compliant, no site without a verdict)
    assert "svg" in page.tags and page.bars == 2
    # self-contained, like the site reports: no script, nothing fetched, no link leaves the folder
    assert "script" not in page.tags and page.sources == []
    assert all(link.startswith("sites/") for link in page.links)


def test_fleet_report_folder_must_be_new(fleet: Path, tmp_path: Path) -> None:
    (tmp_path / "old.html").write_text("x", encoding="utf-8")
    code, _, err = _run("report", str(fleet), "-o", str(tmp_path))
    assert code == BAD_INPUT and "is not an empty folder" in err


# -- identity --------------------------------------------------------------------------------------


def test_without_a_fleet_identity_record_the_site_is_its_file_name(fleet: Path) -> None:
    with SqliteEventStore(fleet / "nmi-4103.sep2gw", CATALOGUE, readonly=True) as store:
        assert fleet_identity(store) is None
        identity, record = identity_of(store)
    assert record is None and identity.nmi is None and identity.lfdi is not None
    summary = summarise_fleet(read_fleet_dir(fleet), zone=None, settings=ComplianceSettings())
    site = next(s for s in summary.sites if s.site == "nmi-4103")
    assert site.nmi is None and site.named_site is None and site.lfdi == identity.lfdi


def test_a_fleet_identity_record_gives_the_nmi(world_logs: dict[str, Path], tmp_path: Path) -> None:
    """Read by tag (helper A defines the type): a record in the log's table names the NMI."""
    log = tmp_path / "nmi-4103.sep2gw"
    log.write_bytes(world_logs["comms"].read_bytes())
    body = json.dumps(
        {
            "type": "fleet.site_identity.v1",
            "fleet": "vpp-sa",
            "site": "nmi-4103",
            "lfdi": "0" * 40,
            "sfdi": 3,
            "nmi": "4103000001",
            "aggregator_lfdi": "A" * 40,
            "server_url": "https://utility.example/dcap",
        }
    ).encode()
    with contextlib.closing(sqlite3.connect(log)) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(events)")]
        row = list(db.execute("SELECT * FROM events WHERE seq = 2").fetchone())
        row[columns.index("seq")] = 10**6
        row[columns.index("stream")] = "fleet"
        row[columns.index("version")] = 1
        row[columns.index("type")] = "fleet.site_identity.v1"
        row[columns.index("body")] = body
        db.execute(f"INSERT INTO events VALUES ({','.join('?' * len(row))})", row)
        db.commit()
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        record = fleet_identity(store)
        identity, _ = identity_of(store)
    assert record is not None and record["nmi"] == "4103000001"
    assert identity.nmi == "4103000001"
    assert identity.server_url == "https://utility.example/dcap"
    assert identity.lfdi != "0" * 40  # what the gateway sent in its Responses stays first


def test_a_live_log_is_summarised_as_far_as_written_and_status_says_running(copy: Path) -> None:
    holder = LogHolder(pid=os.getpid(), started=1764115200.0, host="gw1", program="sep2gw run")
    locks = [LogLock.acquire(copy / f"{site}.sep2gw", holder) for site in FLEET]
    try:
        summary = summarise_fleet(read_fleet_dir(copy), zone=None, settings=ComplianceSettings())
        assert all(s.writing is not None and s.state == "summarised" for s in summary.sites)
        code, out, err = _run("status", str(copy), "--check")
        assert code == OK, err
        assert "fleet of 4 sites: 4 running, 0 not running, 0 with problems" in out
        locks.pop().release()  # warehouse-7's gateway stops
        code, out, err = _run("status", str(copy), "--check")
        assert code == CHECK_FAILED
        assert "1 of 4 site(s) unhealthy: warehouse-7" in err
        assert "warehouse-7: not running (stopped" in out
    finally:
        for lock in locks:
            lock.release()


def test_status_of_a_fleet_reports_an_unreadable_log_in_its_line(copy: Path) -> None:
    (copy / "foreign.sep2gw").write_text("not a database", encoding="utf-8")
    code, out, err = _run("status", str(copy), "--json")
    assert code == OK, err
    doc = json.loads(out)
    by_site = {s["site"]: s for s in doc["sites"]}
    assert "not a sep2gw event log" in by_site["foreign"]["unreadable"]
    assert by_site["nmi-4103"]["registration"] == "registered"
    assert doc["counts"] == {"sites": 5, "running": 0, "with_problems": 1, "unhealthy": 5}
    code, out, _ = _run("status", str(copy), "--site", "nmi-4103")
    assert code == OK and out.startswith(f"{copy / 'nmi-4103.sep2gw'}: not running")


def test_parquet_export_of_a_fleet_names_each_site_by_its_file(fleet: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    code, out, err = _run("export", "--format", "parquet", str(fleet), "-o", str(tmp_path / "all"))
    assert code == OK, err
    assert "4 log(s)" in out
    assert sorted(p.name for p in (tmp_path / "all" / "records").iterdir()) == [
        f"site={site}" for site in sorted(FLEET)
    ]
    code, out, err = _run(
        "export",
        "--format",
        "parquet",
        str(fleet),
        "--site",
        "nmi-4107",
        "-o",
        str(tmp_path / "one"),
    )
    assert code == OK, err
    assert [p.name for p in (tmp_path / "one" / "records").iterdir()] == ["site=nmi-4107"]


def test_a_large_fleet_is_summarised_on_a_process_per_core(
    world_logs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From AUTO_POOL_FROM sites (one-day logs: 1.8x faster on 2 workers, docs/decisions/0022e)."""
    import sep2gw.forensics.fleet as fleet_module
    from sep2gw.commands.forensics import AUTO_POOL_FROM

    asked: list[int] = []
    summarise = fleet_module.summarise_fleet

    def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["workers"])
        return summarise(*args, **kwargs)

    monkeypatch.setattr(fleet_module, "summarise_fleet", spy)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(AUTO_POOL_FROM):
        os.link(world_logs["comms"], folder / f"site-{i:02}.sep2gw")
    code, out, err = _run("report", str(folder), "--json")
    assert code == OK, err
    doc = json.loads(out)
    assert [s["verdict"] for s in doc["sites"]] == ["compliant"] * AUTO_POOL_FROM
    os.unlink(folder / "site-00.sep2gw")
    assert _run("report", str(folder), "--json")[0] == OK
    assert _run("report", str(folder), "--workers", "1")[0] == OK
    assert asked == [2, 1, 1]


def test_a_failure_summarising_one_site_is_its_row_not_the_end(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong with one site's log, the others are summarised and it says what."""
    import sep2gw.forensics.fleet as fleet_module

    real = fleet_module.judge

    def judge(model: Any, identity: Any, *args: Any, **kwargs: Any) -> Any:
        if model.records == 470:  # the storage world's log (warehouse-7)
            raise RuntimeError("a bug")
        return real(model, identity, *args, **kwargs)

    monkeypatch.setattr(fleet_module, "judge", judge)
    summary = summarise_fleet(read_fleet_dir(fleet), zone=None, settings=ComplianceSettings())
    by_site = {s.site: s for s in summary.sites}
    assert by_site["warehouse-7"].state == "unreadable"
    assert by_site["warehouse-7"].problem.startswith(
        "internal error while summarising it (RuntimeError: a bug)"
    )
    assert [by_site[s].verdict for s in ("depot-north", "nmi-4103", "nmi-4107")] == [
        "not compliant",
        "compliant",
        "compliant",
    ]
