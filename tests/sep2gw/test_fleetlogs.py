"""A fleet's log directory (decision 0022a): which files are site logs, and which log a LOG argument
with or without ``--site`` names (``sep2gw.fleetlogs``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.fleetlogs import (
    FleetDir,
    FleetLogError,
    named_list,
    read_fleet_dir,
    resolve_log,
)


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).write_bytes(b"")


def test_site_logs_are_the_sep2gw_files_named_by_site_in_name_order(tmp_path: Path) -> None:
    _touch(tmp_path, "site-b.sep2gw", "site-a.sep2gw", "nmi_4103.sep2gw")
    fleet = read_fleet_dir(tmp_path)
    assert fleet.names() == ["nmi_4103", "site-a", "site-b"]
    assert fleet.sites[1].path == tmp_path / "site-a.sep2gw"
    assert fleet.ignored == ()


def test_companions_of_a_log_are_not_sites_and_not_noted(tmp_path: Path) -> None:
    """SQLite's WAL, shared memory and journal, the writer lock and an output being written."""
    _touch(
        tmp_path,
        "site-a.sep2gw",
        "site-a.sep2gw-wal",
        "site-a.sep2gw-shm",
        "site-a.sep2gw-journal",
        "site-a.sep2gw.lock",
        "report.html.partial",
        ".hidden",
    )
    fleet = read_fleet_dir(tmp_path)
    assert fleet.names() == ["site-a"]
    assert fleet.ignored == ()


def test_archives_foreign_files_and_bad_names_are_set_aside_with_a_note(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "site-a.sep2gw",
        "site-a.20251126T031500Z-seq81234-0a1b2c3d4e5f.sep2gw",  # sep2gw log rotate's archive
        "notes.txt",
        "Site-A.sep2gw",
        "-x.sep2gw",
    )
    (tmp_path / "folder.sep2gw").mkdir()
    fleet = read_fleet_dir(tmp_path)
    assert fleet.names() == ["site-a"]
    why = {i.name: i.why for i in fleet.ignored}
    assert (
        "archived log of site site-a" in why["site-a.20251126T031500Z-seq81234-0a1b2c3d4e5f.sep2gw"]
    )
    assert "not a site log" in why["notes.txt"]
    assert "'Site-A' is not a site name" in why["Site-A.sep2gw"]
    assert "'-x' is not a site name" in why["-x.sep2gw"]
    assert "a folder" in why["folder.sep2gw"]


def test_a_file_argument_is_used_as_it_is(tmp_path: Path) -> None:
    log = tmp_path / "anything.db"
    assert resolve_log(log, None) == log  # even missing: the command names it as today


def test_site_is_refused_with_a_file(tmp_path: Path) -> None:
    log = tmp_path / "site-a.sep2gw"
    _touch(tmp_path, "site-a.sep2gw")
    with pytest.raises(FleetLogError, match="is a log file, not a fleet log directory"):
        resolve_log(log, "site-a")


def test_a_directory_of_one_site_means_that_site(tmp_path: Path) -> None:
    _touch(tmp_path, "only.sep2gw", "notes.txt")
    assert resolve_log(tmp_path, None) == tmp_path / "only.sep2gw"


def test_several_sites_without_site_are_refused_naming_them(tmp_path: Path) -> None:
    _touch(tmp_path, "a.sep2gw", "b.sep2gw")
    with pytest.raises(
        FleetLogError, match=r"fleet log directory of 2 sites: name one with --site \(a, b\)"
    ):
        resolve_log(tmp_path, None)


def test_several_sites_give_the_fleet_to_the_commands_that_summarise_it(tmp_path: Path) -> None:
    _touch(tmp_path, "a.sep2gw", "b.sep2gw")
    fleet = resolve_log(tmp_path, None, fleet_ok=True)
    assert isinstance(fleet, FleetDir)
    assert fleet.names() == ["a", "b"]


def test_site_picks_its_log(tmp_path: Path) -> None:
    _touch(tmp_path, "a.sep2gw", "b.sep2gw")
    assert resolve_log(tmp_path, "b") == tmp_path / "b.sep2gw"


def test_an_unknown_site_is_refused_with_the_closest_names(tmp_path: Path) -> None:
    _touch(tmp_path, "site-001.sep2gw", "site-002.sep2gw", "depot.sep2gw")
    with pytest.raises(FleetLogError) as refused:
        resolve_log(tmp_path, "site-01")
    text = str(refused.value)
    assert "--site site-01: no such site" in text
    assert "did you mean site-001" in text
    assert "its 3 site(s): depot, site-001, site-002" in text


def test_a_directory_without_site_logs_is_refused_saying_so(tmp_path: Path) -> None:
    _touch(tmp_path, "notes.txt")
    with pytest.raises(
        FleetLogError, match=r"holding no site log .* \(1 other file\(s\) set aside\)"
    ):
        resolve_log(tmp_path, None)


def test_the_list_of_names_is_bounded() -> None:
    names = [f"s{i:02}" for i in range(25)]
    assert named_list(names) == ", ".join(names[:10]) + " and 15 more"
    assert named_list(names[:3]) == "s00, s01, s02"


def test_a_long_list_in_a_refusal_is_bounded(tmp_path: Path) -> None:
    _touch(tmp_path, *(f"site-{i:03}.sep2gw" for i in range(1000)))
    with pytest.raises(FleetLogError) as refused:
        resolve_log(tmp_path, None)
    assert str(refused.value).endswith("site-009 and 990 more)")
