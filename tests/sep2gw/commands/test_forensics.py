"""``sep2gw replay | explain | report | export``: integrity first, typed refusals, exports."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from pathlib import Path

import msgspec
import pytest

from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.commands.forensics import EXIT_BAD_ARGUMENT, EXIT_OK, EXIT_REFUSED, EXIT_UNREADABLE
from sep2gw.forensics.compliance import ComplianceRow
from tests.events.test_limits_applied_v1 import OLD_CATALOGUE, OLD_TEXT, old_record
from tests.sep2gw.forensics.worlds import logs
from tests.sep2gw.test_config import GOOD

COMMANDS = (
    ["replay"],
    ["explain", "A1"],
    ["explain", "--at", "2025-11-26T00:01:00Z"],
    ["report", "-o", "{tmp}/r.html"],
    ["export", "--what", "compliance"],
    ["export", "--what", "events", "--format", "csv"],
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return logs(tmp_path_factory.mktemp("forensic-worlds"))["demo"]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _command(args: list[str], log: Path, tmp: Path) -> list[str]:
    return [args[0], str(log), *(a.format(tmp=tmp) for a in args[1:])]


def _received_a1(demo: Path) -> int:
    """The seq of A1's ControlReceived (found, not assumed: how many records precede it is the
    gateway's business, e.g. polls of Time)."""
    with sqlite3.connect(demo) as db:
        (seq,) = db.execute(
            "SELECT min(seq) FROM events WHERE type = 'control.received.v1' AND body LIKE '%1500%'"
        ).fetchone()
    return int(seq)


def _tampered(demo: Path, tmp: Path, sql: str) -> Path:
    log = tmp / "tampered.sep2gw"
    log.write_bytes(demo.read_bytes())
    with sqlite3.connect(log) as db:
        db.execute(sql)
    return log


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_every_command_refuses_a_tampered_log_naming_the_first_bad_record(
    args: list[str], demo: Path, tmp_path: Path
) -> None:
    seq = _received_a1(demo)
    log = _tampered(
        demo, tmp_path, f"UPDATE events SET body = replace(body, '1500', '9500') WHERE seq = {seq}"
    )
    code, out, err = run(*_command(args, log, tmp_path))
    assert code == EXIT_REFUSED
    assert out == ""
    assert "refused: the log did not verify" in err and f"record {seq}: hash chain broken" in err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_every_command_goes_on_with_force_and_says_so_loudly(
    args: list[str], demo: Path, tmp_path: Path
) -> None:
    seq = _received_a1(demo)
    log = _tampered(
        demo, tmp_path, f"UPDATE events SET body = replace(body, '1500', '9500') WHERE seq = {seq}"
    )
    code, out, err = run(*_command(args, log, tmp_path), "--force")
    assert code == EXIT_OK
    assert "!!! THE LOG DID NOT VERIFY" in err and f"record {seq}" in err
    if args[0] in ("replay", "explain"):
        assert out.startswith("!!! THE LOG DID NOT VERIFY")


def test_records_removed_from_the_end_are_refused(demo: Path, tmp_path: Path) -> None:
    log = _tampered(demo, tmp_path, "DELETE FROM events WHERE seq > 400")
    code, _, err = run("replay", str(log))
    assert code == EXIT_REFUSED and "records were removed from the end" in err


def test_a_file_that_is_not_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    code, _, err = run("explain", str(path), "--at", "0")
    assert code == EXIT_UNREADABLE and "notes.txt" in err
    code, _, err = run("replay", str(tmp_path / "missing.sep2gw"))
    assert code == EXIT_UNREADABLE and "missing.sep2gw" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "{log}", "FFFF"], "no control with mRID 'FFFF' in the log; known: DE00"),
        (["explain", "{log}"], "name either a control (MRID) or an instant (--at TIME)"),
        (["explain", "{log}", "A1", "--at", "0"], "not both"),
        (["replay", "{log}", "--at", "yesterday"], "'yesterday' is not a time"),
        (["replay", "{log}", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus': not a time zone"),
        (["replay", "{log}", "--at", "1e30"], "'1e30' is not a time a log can hold"),
        (["explain", "{log}", "--at", "nan"], "'nan' is not a time a log can hold"),
        (
            ["replay", "{log}", "--from", "2025-11-26T00:05:00Z", "--to", "2025-11-26T00:01:00Z"],
            "--from 2025-11-26T00:05:00Z lies after --to 2025-11-26T00:01:00Z",
        ),
        (["report", "{log}", "-o", "{log}/no/such/dir/r.html"], "cannot write it"),
        (["export", "{log}", "-o", "{log}/no/such/dir/e.csv"], "cannot write it"),
    ],
)
def test_bad_arguments_get_exit_1_and_name_what_was_wrong(
    argv: list[str], message: str, demo: Path
) -> None:
    code, out, err = run(*(a.format(log=demo) for a in argv))
    assert code == EXIT_BAD_ARGUMENT, err
    assert message in err
    assert "Traceback" not in err


def test_explain_with_neither_control_nor_instant_does_not_say_both(demo: Path) -> None:
    """Given neither, the refusal used to read '…, not both'."""
    code, _, err = run("explain", str(demo))
    assert code == EXIT_BAD_ARGUMENT and "not both" not in err


def test_times_may_be_epoch_utc_or_site_local(demo: Path) -> None:
    outputs = {
        run("replay", str(demo), "--at", at, *tz)[1].split("state at")[1]
        for at, tz in (
            ("1764115410", []),
            ("2025-11-26T00:03:30Z", []),
            ("2025-11-26T10:33:30+10:30", []),
        )
    }
    assert len(outputs) == 1
    local = run("replay", str(demo), "--at", "2025-11-26T10:33:30", "--tz", "+10:30")[1]
    assert "state at 2025-11-26 00:03:30Z (10:33:30 +1030)" in local


def test_events_export_is_the_log_export_in_the_sites_zone(demo: Path) -> None:
    """The same records, hashes and events as ``log export`` (nothing in the demo is an old
    version), with each time also in the site's zone, named in the header (issue 20)."""
    code, ours, _ = run("export", str(demo), "--what", "events", "--tz", "Australia/Adelaide")
    assert code == EXIT_OK
    raw = [json.loads(line) for line in run("log", "export", str(demo))[1].splitlines()]
    rows = [json.loads(line) for line in ours.splitlines()]
    assert [(r["seq"], r["hash"], r["event"]) for r in rows] == [
        (r["seq"], r["hash"], r["event"]) for r in raw
    ]
    assert rows[0]["server_time"] == raw[0]["server_time"] == 1764115200.0
    assert rows[0]["time"] == "2025-11-26T10:30:00.000+10:30"
    assert rows[0]["zone"] == "Australia/Adelaide" and "recorded_as" not in rows[0]
    code, table, _ = run(
        "export", str(demo), "--what", "events", "--format", "csv", "--tz", "+10:30"
    )
    header, first = list(csv.reader(io.StringIO(table)))[:2]
    assert "time [UTC+10:30]" in header and "server_time [s since 1970 UTC]" in header
    assert first[header.index("time [UTC+10:30]")] == "2025-11-26T10:30:00.000+10:30"


def test_the_sites_configured_zone_is_the_default_and_tz_overrides_it(
    demo: Path, tmp_path: Path
) -> None:
    config = tmp_path / "site.toml"
    # the analyst's copy of the site's file: its certificates need not be here
    config.write_text(GOOD.replace("[site]", '[site]\ntime_zone = "Australia/Adelaide"', 1))
    code, out, err = run("export", str(demo), "--what", "compliance", "--config", str(config))
    assert code == EXIT_OK, err
    assert json.loads(out.splitlines()[0])["at"].endswith("+10:30")
    replay = run("replay", str(demo), "--config", str(config), "--telemetry-every", "600")[1]
    assert "(10:30:00 +1030)" in replay
    code, out, _ = run(
        "export", str(demo), "--what", "compliance", "--config", str(config), "--tz", "UTC"
    )
    assert json.loads(out.splitlines()[0])["at"].endswith("Z")
    code, _, err = run("export", str(demo), "--config", str(tmp_path / "missing.toml"))
    assert code == EXIT_BAD_ARGUMENT and "missing.toml: cannot read it" in err


def test_the_compliance_series_exports_one_row_per_sample(demo: Path, tmp_path: Path) -> None:
    with sqlite3.connect(demo) as db:
        samples = db.execute(
            "SELECT count(*) FROM events WHERE type = 'hardware.telemetry.v1'"
        ).fetchone()[0]
    code, out, _ = run("export", str(demo), "--what", "compliance")
    rows = [msgspec.json.decode(line, type=ComplianceRow) for line in out.splitlines()]
    assert code == EXIT_OK and len(rows) == samples
    target = tmp_path / "c.csv"
    assert (
        run("export", str(demo), "--what", "compliance", "--format", "csv", "-o", str(target))[0]
        == 0
    )
    table = list(csv.DictReader(target.open(encoding="utf-8")))
    assert len(table) == samples
    first = table[0]
    assert float(first["at_s [s since 1970 UTC]"]) == rows[0].at_s
    assert first["generation_limit_w [W]"] == "" and first["at [UTC]"].endswith("Z")
    assert json.loads(out.splitlines()[0])["export_source"].startswith("default:")


def test_progress_goes_to_stderr_when_asked(demo: Path) -> None:
    code, out, err = run("explain", str(demo), "A1", "--progress")
    assert code == EXIT_OK
    with sqlite3.connect(demo) as db:
        (records,) = db.execute("SELECT count(*) FROM events").fetchone()
    assert "verifying and replaying" in err and f"{records}/{records} records" in err
    assert "verifying" not in out
    assert "verifying" not in run("explain", str(demo), "A1")[2]


def test_explain_checks_its_arguments_before_reading_the_log(tmp_path: Path) -> None:
    """A long log was verified and folded before being told the arguments were wrong."""
    code, out, err = run("explain", str(tmp_path / "never-opened.sep2gw"))
    assert code == EXIT_BAD_ARGUMENT and out == ""
    assert "name either a control (MRID) or an instant (--at TIME)" in err


@pytest.mark.parametrize("command", ["report", "export"])
def test_an_output_in_a_missing_folder_is_refused_before_reading_the_log(
    command: str, tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "out.file"
    code, _, err = run(command, str(tmp_path / "never-opened.sep2gw"), "-o", str(target))
    assert code == EXIT_BAD_ARGUMENT
    assert f"{target}: cannot write it: {target.parent} is not a folder" in err


def test_an_old_logs_clamp_texts_export_as_structured_clamps(tmp_path: Path) -> None:
    """A log written before issue 20 holds each clamp as repr text: it still verifies and replays,
    and the people's export gives the structured clamp, saying the record was a v1."""
    path = tmp_path / "old.sep2gw"
    with SqliteEventStore(path, OLD_CATALOGUE) as old:
        old.append_events(
            "hardware",
            [old_record((OLD_TEXT, "not a clamp repr"))],
            server_time=1_764_115_200.0,
            monotonic=1.0,
        )
    assert run("log", "verify", str(path))[0] == EXIT_OK
    code, out, err = run("export", str(path), "--what", "events")
    assert code == EXIT_OK, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["type"] == "hardware.limits_applied.v2"
    assert row["recorded_as"] == "hardware.limits_applied.v1"
    assert row["event"]["clamps"] == [
        {"mode": "hold", "requested": 6123.456789, "applied": 5000.0, "bound": "max_discharge_w"}
    ]
    assert row["event"]["unparsed_clamps"] == ["not a clamp repr"]
    code, out, _ = run("replay", str(path))
    assert code == EXIT_OK and "battery: export_limit_w=5000 W applied" in out
