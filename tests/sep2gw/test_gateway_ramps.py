"""Regression: the running gateway ramps at the default's setGradW (PROTOCOL.md §4 rule 11).

setGradW is a fraction of setMaxW; the controls actor's core was built without setMaxW, so the
gateway never planned a setGradW ramp (only rampTms ones) and limits stepped at once.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from events.control_events import RampPlanned
from events.der_model import Mode
from sep2gw.cli import main
from sep2gw.simserver import parse_scenario
from sep2gw.world import check, run_world

GRAD = """
name = "setGradW ramp"
[server]
poll_rate_s = 20
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
set_grad_w = 1000
[[actions]]
at_s = 0
kind = "create_control"
mrid = "1A"
program = "retailer"
start_s = 60
duration_s = 60
modes = { opModExpLimW = 1000 }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ramps")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["certs", "init", str(folder / "pki")]) == 0
    return folder


def test_a_limit_change_ramps_at_the_defaults_set_grad_w(site: Path) -> None:
    """1000 = 10 %/s of the battery's 5 kW setMaxW: 5000 W → 1000 W in 8 s, and back."""
    result = run_world(parse_scenario(GRAD, source="test"), seed=3, site=site)
    assert check(result) == []
    ramps = [
        rec.event
        for rec in result.store.read()
        if isinstance(rec.event, RampPlanned) and rec.event.mode is Mode.EXPORT_LIMIT_W
    ]
    spans = [(ramp.from_value, ramp.to_value, ramp.end_s - ramp.start_s) for ramp in ramps]
    assert (5000.0, 1000.0, 8.0) in spans
    assert (1000.0, 5000.0, 8.0) in spans
