"""``sep2gw sim --conformance`` (issue 14, Acceptance): one line per procedure intent of the
conformance family — PASS, or FAIL with the first failed expectation — and exit code 1 if any
failed. The family here is a small stand-in (the library's own family runs in
``tests/sep2gw/test_library_worlds.py``), so the command's contract is checked in a few seconds."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from sep2gw.cli import main
from sep2gw.simserver import parse_scenario
from sep2gw.simserver.library import CONFORMANCE, LibraryScenario, parse_intent
from sep2gw.simserver.scenario import ScenarioError

SCENARIO = """
name = "NAME"
[server]
poll_rate_s = 20
[[programs]]
id = "network"
primacy = 10
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "network"
start_s = 30
duration_s = 30
modes = { opModExpLimW = 1500 }
[expect]
responses = { A1 = RESPONSES }
"""


def entry(name: str, responses: str, intent: str) -> LibraryScenario:
    text = SCENARIO.replace("NAME", name).replace("RESPONSES", responses)
    return LibraryScenario(
        file=f"{name}.toml",
        scenario=parse_scenario(text, source=name),
        rules=frozenset({"4.2"}),
        family=CONFORMANCE,
        intent=intent,
    )


def run(
    entries: list[LibraryScenario],
    pki: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, list[str]]:
    others = [msgspec.structs.replace(entry("other", "[1, 2, 3]", ""), family="events")]
    monkeypatch.setattr("sep2gw.simserver.library.library", lambda: entries + others)
    capsys.readouterr()
    code = main(["sim", "--conformance", "--site", str(pki), *extra])
    return code, capsys.readouterr().out.splitlines()


def test_sim_conformance_prints_one_line_per_intent_and_fails_on_any_failure(
    pki: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [
        entry("good_intent", "[1, 2, 3]", "Responses 1-2-3 for a scheduled control"),
        entry("bad_intent", "[1, 6]", "an intent the gateway does not meet"),
    ]
    code, lines = run(entries, pki, monkeypatch, capsys, "--seed", "3")
    assert code == 1
    assert len(lines) == 3  # one per intent (not the other family's scenario), then the tally
    assert lines[0].split() == [
        "PASS",
        "good_intent",
        *"Responses 1-2-3 for a scheduled control".split(),
    ]
    assert lines[1].startswith("FAIL  bad_intent   an intent the gateway does not meet — seed 3: ")
    assert lines[1].endswith(
        "expect.responses: mRID A1: expected [1, 6], the server accepted [1, 2, 3]"
    )
    assert lines[2] == "1 of 2 conformance intents pass"


def test_sim_conformance_exits_0_when_every_intent_passes(
    pki: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = run([entry("good_intent", "[1, 2, 3]", "scheduled")], pki, monkeypatch, capsys)
    assert code == 0
    assert lines == ["PASS  good_intent  scheduled", "1 of 1 conformance intents pass"]


def test_sim_conformance_runs_each_intent_under_each_csipaus_version_asked_for(
    pki: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 point 1: every scenario runs under each CSIP-AUS version (the strict server
    validating each version's requests)."""
    code, lines = run(
        [entry("good_intent", "[1, 2, 3]", "scheduled")],
        pki,
        monkeypatch,
        capsys,
        "--csipaus-version",
        "v1.3",
        "--csipaus-version",
        "v1.2",
    )
    assert code == 0, lines
    assert lines == [
        "PASS  [v1.3] good_intent  scheduled",
        "PASS  [v1.2] good_intent  scheduled",
        "2 of 2 conformance intents pass",
    ]


def test_sim_refuses_an_unknown_csipaus_version_naming_the_known_ones(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", "--csipaus-version", "v2", "--site", str(pki)]) == 2
    assert "'v2' is not one of v1.2, v1.3-beta/storage, v1.3 or all" in capsys.readouterr().err


def test_sim_conformance_refuses_scenario_files_naming_them(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sim", "--conformance", str(tmp_path / "x.toml"), "--site", str(pki)])
    assert code == 2
    assert "--conformance runs the library's conformance family; it does not take SCENARIO" in (
        capsys.readouterr().err
    )


def test_a_conformance_scenario_without_an_intent_is_refused() -> None:
    header = "# rules: 4.2\n# family: conformance\n"
    with pytest.raises(ScenarioError) as caught:
        parse_intent(header, CONFORMANCE, source="x.toml")
    assert caught.value.problems == [
        "header: no '# intent:' line (every conformance scenario names its intent)"
    ]
    assert parse_intent(header + "# intent:  comms loss  \n", CONFORMANCE, source="x") == (
        "comms loss"
    )
    assert parse_intent("# family: events\n", "events", source="x") == ""
