"""Issue 20 point 6: the bundled scenarios can be found and named from the CLI. ``sep2gw sim
--list`` lists them with a one-line description; ``sep2gw sim NAME`` (and ``sim-server
--scenario NAME``, ``run --scenario NAME``) runs one by name; a path still works; an unknown
name is refused naming the closest ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main
from sep2gw.simserver import ScenarioError
from sep2gw.simserver.library import catalogue, library_files, resolve_scenario


def test_sim_list_shows_every_library_scenario_with_its_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [f.name.removesuffix(".toml") for f in library_files()]
    assert [line.split()[0] for line in lines[:-1]] == names
    cancel_active = next(line for line in lines if line.startswith("cancel_active "))
    assert cancel_active.split()[1] == "cancel"
    assert "The server cancels a running event (currentStatus 2)" in cancel_active
    assert lines[-1].startswith(f"{len(names)} scenarios; run one with: sep2gw sim NAME")
    assert all(entry.description for entry in catalogue())  # every file says what it shows
    assert all(len(line) < 180 for line in lines)


def test_sim_list_takes_no_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--list", "cancel_active"]) == 2
    assert "--list lists the library; it does not take SCENARIO" in capsys.readouterr().err


def test_a_library_scenario_runs_by_name(pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "cancel_active", "--site", str(pki), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "cancel_active" in out and "1 world(s), 0 with violations" in out


def test_names_resolve_to_library_files_and_paths_still_work(tmp_path: Path) -> None:
    assert resolve_scenario("cancel_active").name == "cancel_active"
    assert resolve_scenario("cancel_active.toml").name == "cancel_active"
    own = tmp_path / "cancel_active.toml"  # a file of that name wins over the library's
    own.write_text('name = "mine"\n')
    assert resolve_scenario(str(own)).name == "mine"
    with pytest.raises(ScenarioError, match="cannot read the file"):
        resolve_scenario(str(tmp_path / "missing.toml"))


def test_an_unknown_name_is_refused_naming_the_closest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sim", "cancel_activ"]) == 2
    err = capsys.readouterr().err
    assert "cancel_activ: no such file, and no library scenario of that name" in err
    assert "did you mean cancel_active" in err
    assert main(["sim", "zzzz"]) == 2
    assert "`sep2gw sim --list` lists the library's scenarios" in capsys.readouterr().err
