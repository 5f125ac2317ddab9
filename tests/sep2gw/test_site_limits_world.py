"""The site against the limits in force, in whole worlds: the monitor's ``site within the limits in
force`` fires when the gateway stops holding a limit, holds when it does, and excuses what the
gateway honestly logged it could not meet."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from events.hardware_events import LimitsApplied
from sep2gw.cli import main
from sep2gw.simserver import parse_scenario
from sep2gw.simserver.scenario import Scenario, load_scenario
from sep2gw.world import run_world
from statemachines import site_limit

NOON = (
    Path(__file__).parents[2] / "sep2gw" / "simserver" / "scenarios" / "noon_export_envelope.toml"
)


def noon() -> Scenario:
    return load_scenario(NOON)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site-limits")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["certs", "init", str(folder / "pki")]) == 0
    return folder


def test_a_midday_envelope_is_held_and_judged_all_along(site: Path) -> None:
    result = run_world(noon(), seed=1, site=site)
    assert result.violation is None, result.violation
    assert result.monitor is not None
    assert result.monitor.checks["site within the limits in force"] > 100


def test_a_gateway_that_ignores_the_site_meter_is_caught(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed loop that no longer sees the connection-point limits lets the commanded discharge
    and the PV through to the meter: the invariant names the limit and the measured excess."""
    monkeypatch.setattr(site_limit, "_site_bounds", lambda *args, **kwargs: None)
    result = run_world(noon(), seed=1, site=site)
    assert result.violation is not None
    assert result.violation.invariant == "site within the limits in force"
    assert "export_limit_w" in result.violation.detail


UNMEETABLE = """
name = "import limit beyond the DER"
[server]
poll_rate_s = 60
[[programs]]
id = "net"
primacy = 10
default = { opModImpLimW = 600, opModMaxLimW = 0 }
[[actions]]
at_s = 900
kind = "set_poll_rate"
seconds = 60
"""


def test_a_site_limit_the_der_cannot_meet_is_logged_when_it_changes_and_excused(
    site: Path,
) -> None:
    """The DER may not discharge (opModMaxLimW 0) and the night load wanders around the 600 W
    import limit: the gateway logs each time the limit stops or starts being within the DER's
    range, and the monitor excuses what it logged as unmeetable (how often it may log is
    tests/actors/test_hardware_site_limit.py's)."""
    result = run_world(parse_scenario(UNMEETABLE, source="test"), seed=2, site=site)
    assert result.violation is None, result.violation
    flips = []
    last = None
    for record in result.store.read():
        event = record.event
        if isinstance(event, LimitsApplied) and event.site_limit_met != last:
            flips.append((event.at_s, event.site_limit_met))
            last = event.site_limit_met
    assert [met for _, met in flips].count(False) >= 2
    assert [met for _, met in flips[2:]].count(True) >= 2
