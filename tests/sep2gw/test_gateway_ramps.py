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
from events.hardware_events import TelemetrySampled
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


FROM_WHERE_THE_DER_IS = """
name = "a limit far above the site's export hands over to a tight one"
[server]
poll_rate_s = 30
epoch = 1764158400  # noon: PV plus a 3 kW discharge export about 7.6 kW
[[programs]]
id = "network"
primacy = 10
default = { opModExpLimW = 20000 }
set_grad_w = 600
[[programs]]
id = "retailer"
primacy = 20
[[actions]]
at_s = 0
kind = "create_control"
mrid = "B1"
program = "retailer"
start_s = 60
duration_s = 600
modes = { opModTargetW = 3000 }
[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "network"
start_s = 300
duration_s = 300
modes = { opModExpLimW = 1000 }
"""


def test_rule11_curtailment_arrives_in_the_time_the_gradient_implies_from_the_measured_export(
    site: Path,
) -> None:
    """setGradW 600 = 300 W/s of 5 kW. Planned from the old 20 kW limit the ramp to 1 kW takes
    63 s, most of it above what the site exports; from the measured ~7.6 kW it takes ~22 s, and
    the site meter is under 1 kW (plus the loop's tolerance) by then, give or take a sample."""
    scenario = parse_scenario(FROM_WHERE_THE_DER_IS, source="test")
    result = run_world(scenario, seed=1, site=site)
    assert check(result) == []
    assert scenario.server.epoch is not None
    start = scenario.server.epoch + 300
    samples = [
        (rec.event.at_s, rec.event.site_w)
        for rec in result.store.read()
        if isinstance(rec.event, TelemetrySampled) and rec.event.site_w is not None
    ]
    export_at_start = next(w for t, w in reversed(samples) if t <= start)
    assert export_at_start > 5000.0  # far from the new limit, far under the old one
    gradient_s = (export_at_start - 1000.0) / 300.0
    curtailed_at = next(t for t, w in samples if t >= start and w <= 1000.0 + 100.0)
    assert curtailed_at - start <= gradient_s + 5.0 + 1.0  # a sample period, a control period
