"""Readings as a server audits them (PROTOCOL.md §2 step 8): each interval posted at the first post
instant after it closes, and a backlog after an outage batched and paced."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from actors.mirror import POST_GRACE_S
from sep2gw.cli import main
from sep2gw.simserver.scenario import load_scenario
from sep2gw.world import WorldResult, run_world

SCENARIOS = Path(__file__).parents[2] / "sep2gw" / "simserver" / "scenarios"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reading-posts")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["certs", "init", str(folder / "pki")]) == 0
    return folder


def world(name: str, site: Path) -> WorldResult:
    result = run_world(load_scenario(SCENARIOS / f"{name}.toml"), seed=1, site=site)
    assert result.violation is None, result.violation
    return result


def posted_sets(result: WorldResult) -> list[tuple[int, int, int]]:
    """(posted at, interval start, interval end) of every MirrorReadingSet the server accepted."""
    return [
        (at, s.timePeriod.start, s.timePeriod.start + s.timePeriod.duration)
        for mirror in result.server.state.mirrors
        for at, reading in mirror.readings
        for s in reading.MirrorReadingSet
    ]


def test_rule_2_8_each_interval_is_posted_at_the_first_post_instant_after_it_closes(
    site: Path,
) -> None:
    """postRate 60: the interval [07:06, 07:07) goes out at 07:07 (plus the moment the hardware
    actor takes to summarise it), not at 07:08 with the 07:07 instant sending nothing."""
    sets = posted_sets(world("telemetry_post_rate", site))
    assert len(sets) >= 4 * 7
    late = [(at, start, end) for at, start, end in sets if not end <= at <= end + POST_GRACE_S]
    assert late == []
