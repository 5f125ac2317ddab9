"""Readings as a server audits them (PROTOCOL.md §2 step 8): each interval posted at the first post
instant after it closes, and a backlog after an outage batched and paced."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

import pytest

from actors.mirror import BACKLOG_PACE_S, MAX_SETS_PER_POST, POST_GRACE_S
from sep2gw.cli import main
from sep2gw.simserver.scenario import load_scenario
from sep2gw.world import WorldResult, check, run_world

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


def test_rule_2_8_a_backlog_goes_as_batches_of_reading_sets_at_a_bounded_pace(site: Path) -> None:
    """Six minutes without the server: its seven intervals of each of the seven quantities went
    out as 49 POSTs in one second. Now each quantity's intervals go as one MirrorMeterReading
    with several MirrorReadingSets, at most one such POST per BACKLOG_PACE_S — and still every
    interval once (the scenario's own expectations)."""
    result = world("telemetry_outage_backlog", site)
    assert check(result) == []
    posts = sorted(
        (at, len(reading.MirrorReadingSet))
        for mirror in result.server.state.mirrors
        for at, reading in mirror.readings
    )
    batches = [at for at, sets in posts if sets > 1]
    assert len(batches) == 7  # the backlog: one POST per quantity
    assert all(b - a >= BACKLOG_PACE_S for a, b in zip(batches, batches[1:], strict=False))
    per_second = Counter(at for at, _ in posts)
    assert max(per_second.values()) <= 7  # a normal cycle: one POST per quantity
    assert all(sets <= MAX_SETS_PER_POST for _, sets in posts)
