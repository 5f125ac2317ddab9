"""``sep2gw export --format parquet`` (issue 21): verified logs as a Parquet dataset partitioned by
site and day; DuckDB over it gives each site the compliance ``export --what compliance`` gives;
every file states what it was made from; a log that does not verify leaves nothing behind."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sqlite3
from pathlib import Path
from types import ModuleType

import duckdb
import pyarrow.parquet as pq
import pytest

from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.forensics.compliance import ComplianceRow, summarise
from sep2gw.forensics.dataset import SCHEMA_VERSION, TABLES, _midnights
from tests.sep2gw.forensics.worlds import logs

ROOT = Path(__file__).resolve().parents[3]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three sites' logs (the forensic worlds: supersession, comms loss, crash and restart)."""
    built = logs(tmp_path_factory.mktemp("fleet-worlds"))
    folder = tmp_path_factory.mktemp("fleet")
    for name in ("demo", "comms", "restart"):  # of the forensic worlds, these three
        (folder / f"{name}.sep2gw").write_bytes(built[name].read_bytes())
    return folder


@pytest.fixture(scope="module")
def dataset(fleet: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "fleet"
    code, said, err = run("export", "--format", "parquet", str(fleet / "*.sep2gw"), "-o", str(out))
    assert code == 0, err
    assert "3 log(s)" in said and "3 site(s)" in said
    return out


def _compliance_jsonl(log: Path) -> list[dict[str, object]]:
    """The rows of ``export --what compliance`` (JSON Lines), the columns of a ComplianceRow (the
    export adds each instant's local time and the zone beside them)."""
    code, out, err = run("export", str(log), "--what", "compliance")
    assert code == 0, err
    fields = ComplianceRow.__struct_fields__
    return [{k: v for k, v in json.loads(line).items() if k in fields} for line in out.splitlines()]


def test_duckdb_over_the_dataset_gives_each_site_the_compliance_of_export_what_compliance(
    fleet: Path, dataset: Path
) -> None:
    con = duckdb.connect()
    files = str(dataset / "compliance" / "**" / "*.parquet")
    sites = [
        s
        for (s,) in con.execute(
            "SELECT DISTINCT site FROM read_parquet(?, hive_partitioning = true) ORDER BY site",
            [files],
        ).fetchall()
    ]
    assert sites == ["comms", "demo", "restart"]
    columns = ", ".join(ComplianceRow.__struct_fields__)
    for site in sites:
        expected = _compliance_jsonl(fleet / f"{site}.sep2gw")
        cursor = con.execute(
            f"SELECT {columns} FROM read_parquet(?, hive_partitioning = true) "
            "WHERE site = ? ORDER BY at_s",
            [files, site],
        )
        got = [
            dict(zip(ComplianceRow.__struct_fields__, row, strict=True))
            for row in cursor.fetchall()
        ]
        assert got == expected  # column for column, value for value (NULL as null)
        assert len(got) > 50
        # and the fleet question's numbers: seconds and energy over each limit, per supplier
        summaries = summarise(ComplianceRow(**row) for row in expected)  # type: ignore[arg-type]
        for mode, prefix in (("export_limit_w", "export"), ("import_limit_w", "import")):
            (seconds,) = con.execute(
                f"SELECT coalesce(sum(hold_s), 0) FROM read_parquet(?, hive_partitioning = true) "
                f"WHERE site = ? AND {prefix}_over_w > 50",
                [files, site],
            ).fetchone()
            want = sum(s.seconds_over for s in summaries if s.mode.value == mode)
            assert seconds == pytest.approx(want)


def test_every_file_states_the_schema_version_and_the_log_it_was_made_from(
    fleet: Path, dataset: Path
) -> None:
    for site in ("demo", "comms", "restart"):
        with SqliteEventStore(fleet / f"{site}.sep2gw", CATALOGUE, readonly=True) as store:
            head = store.head()
            raw = list(store.read_raw())
        for table in TABLES:
            files = sorted((dataset / table / f"site={site}").rglob("*.parquet"))
            assert files, table
            for file in files:
                meta = pq.read_schema(file).metadata
                assert meta[b"sep2gw.schema_version"] == str(SCHEMA_VERSION).encode()
                assert meta[b"sep2gw.head_hash"] == head.hash.hex().encode()
                assert meta[b"sep2gw.source"].endswith(f"{site}.sep2gw".encode())
                assert meta[b"sep2gw.table"] == table.encode()
        records = pq.ParquetDataset(dataset / "records" / f"site={site}").read().to_pylist()
        assert [(r["seq"], r["hash"], r["body"]) for r in records] == [
            (r.seq, r.hash.hex(), r.body.decode()) for r in raw
        ]
    sources = pq.read_table(dataset / "_sources.parquet").to_pylist()
    assert {s["site"] for s in sources} == {"demo", "comms", "restart"}


def test_a_log_that_does_not_verify_stops_the_export_and_nothing_is_left(
    fleet: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "logs" / "zz-tampered.sep2gw"
    bad.parent.mkdir()
    bad.write_bytes((fleet / "demo.sep2gw").read_bytes())
    with sqlite3.connect(bad) as db:
        db.execute("UPDATE events SET server_time = server_time + 1 WHERE seq = 40")
    out = tmp_path / "out" / "ds"
    out.parent.mkdir()
    code, said, err = run(
        "export", "--format", "parquet", str(fleet / "demo.sep2gw"), str(bad), "-o", str(out)
    )
    assert code == 3
    assert "refused" in err and "zz-tampered.sep2gw" in err and "nothing was written" in err
    assert list(out.parent.iterdir()) == []  # neither the dataset nor a partial folder


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{fleet}/*.nothing", "-o", "{tmp}/ds"], "the pattern matches no file"),
        (["{fleet}/absent.sep2gw", "-o", "{tmp}/ds"], "no such log file"),
        (["{fleet}/demo.sep2gw"], "name it with -o FOLDER"),
        (["{fleet}/demo.sep2gw", "-o", "{tmp}"], "exists; a dataset is written to a new folder"),
        (["{fleet}/demo.sep2gw", "-o", "{tmp}/no/such/ds"], "is not a folder"),
        (["{fleet}/*.sep2gw", "--site", "x", "-o", "{tmp}/ds"], "--site names the site of one log"),
        (["{fleet}/demo.sep2gw", "--site", "a/b", "-o", "{tmp}/ds"], "letters, digits"),
        (["{tmp}/garbage.sep2gw", "-o", "{tmp}/ds"], "garbage.sep2gw"),
        (["{fleet}/demo.sep2gw", "--force", "-o", "{tmp}/ds"], "verified logs only"),
        (["{fleet}/demo.sep2gw", "--what", "compliance", "-o", "{tmp}/ds"], "drop --what"),
    ],
)
def test_bad_input_is_named_with_exit_2(
    args: list[str], says: str, fleet: Path, tmp_path: Path
) -> None:
    (tmp_path / "garbage.sep2gw").write_text("not a log")
    argv = [a.format(fleet=fleet, tmp=tmp_path) for a in args]
    code, _, err = run("export", "--format", "parquet", *argv)
    assert code == 2, err
    assert says in err
    assert not (tmp_path / "ds").exists()


def test_the_other_formats_still_take_one_log(fleet: Path) -> None:
    code, _, err = run("export", str(fleet / "demo.sep2gw"), str(fleet / "comms.sep2gw"))
    assert code == 2 and "exports one log; 2 given" in err


def test_a_period_in_force_over_midnight_is_cut_at_midnight() -> None:
    midnight = 1_764_115_200.0  # 2025-11-26T00:00:00Z
    assert list(_midnights(midnight - 60, midnight + 86_400 + 30)) == [
        (midnight - 60, midnight),
        (midnight, midnight + 86_400),
        (midnight + 86_400, midnight + 86_400 + 30),
    ]
    assert list(_midnights(midnight, midnight + 10)) == [(midnight, midnight + 10)]


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fleet_duckdb", ROOT / "examples" / "fleet_duckdb.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_answers_the_fleet_question_from_the_compliance_series(
    dataset: Path, fleet: Path
) -> None:
    rows = _example().sites_over_export_envelope(dataset, "2025-11-26", tolerance_w=0.0)
    for row in rows:
        expected = _compliance_jsonl(fleet / f"{row['site']}.sep2gw")
        over = [r for r in expected if (r.get("export_over_w") or 0) > 0]
        assert row["seconds_over"] == pytest.approx(sum(r["hold_s"] for r in over))
        assert row["worst_over_w"] == max(r["export_over_w"] for r in over)
    code, out, _ = run_example(dataset)
    assert code == 0 and "export envelope on 2025-11-26" in out


def run_example(dataset: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _example().main([str(dataset), "--day", "2025-11-26"])
    return code, out.getvalue(), err.getvalue()


def test_battery_writes_carry_each_clamp_as_a_json_object(tmp_path: Path) -> None:
    """A storage target held back by the export limit (the forensic storage world): its clamps reach
    the dataset as JSON objects DuckDB can take apart."""
    built = logs(tmp_path / "worlds")
    out = tmp_path / "ds"
    code, _said, err = run("export", "--format", "parquet", str(built["storage"]), "-o", str(out))
    assert code == 0, err
    con = duckdb.connect()
    bounds = con.execute(
        "SELECT DISTINCT json_extract_string(c, '$.bound') FROM ("
        "  SELECT unnest(clamps) AS c FROM read_parquet(?, hive_partitioning = true))",
        [str(out / "battery_writes" / "**" / "*.parquet")],
    ).fetchall()
    assert ("export_limit_w",) in bounds
