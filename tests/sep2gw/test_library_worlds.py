"""Every library scenario runs as a seeded world: the invariants hold (continuously and after the
run, ``sep2gw.world.check``) and so does every outcome its ``[expect]`` section demands
(``sep2gw.expect.check_expectations``). CI runs each family over at least 20 seeds (issue 8,
scope 3): the seeds of a family are dealt round-robin to its scenarios, so each scenario runs at
least once and the family as a whole over ``SEEDS_PER_FAMILY`` distinct seeds. Same seed ⇒
byte-identical log is checked once per family against the log of its first world."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Final

import pytest

from sep2gw.expect import check_expectations
from sep2gw.simserver.library import FAMILIES, LibraryScenario, library
from sep2gw.world import check, run_world

SEEDS_PER_FAMILY: Final = 20
LIBRARY: Final = library()


def family_runs() -> list[tuple[str, LibraryScenario, int]]:
    """(family, scenario, seed): family ``k`` (from 1) uses seeds ``1000 k + i``."""
    runs: list[tuple[str, LibraryScenario, int]] = []
    for k, family in enumerate(FAMILIES, start=1):
        members = [entry for entry in LIBRARY if entry.family == family]
        for i in range(max(SEEDS_PER_FAMILY, len(members))):
            runs.append((family, members[i % len(members)], 1000 * k + i))
    return runs


RUNS: Final = family_runs()
#: (file, seed) → SHA-256 of the world's log, filled by the world test (one process, in order).
LOG_HASHES: dict[tuple[str, int], str] = {}


def test_each_family_runs_over_at_least_20_seeds_and_every_scenario_runs() -> None:
    seeds: dict[str, set[int]] = defaultdict(set)
    for family, _, seed in RUNS:
        seeds[family].add(seed)
    assert set(seeds) == set(FAMILIES)
    assert all(len(s) >= SEEDS_PER_FAMILY for s in seeds.values())
    assert {entry.file for _, entry, _ in RUNS} == {entry.file for entry in LIBRARY}


@pytest.mark.parametrize(
    ("family", "entry", "seed"),
    [pytest.param(*run, id=f"{run[0]}-{run[1].scenario.name}-{run[2]}") for run in RUNS],
)
def test_library_world_keeps_invariants_and_expectations(
    family: str, entry: LibraryScenario, seed: int, pki: Path
) -> None:
    result = run_world(entry.scenario, seed=seed, site=pki)
    LOG_HASHES[(entry.file, seed)] = hashlib.sha256(result.log_bytes()).hexdigest()
    violations = check(result) + check_expectations(entry.scenario, result)
    assert not violations, (
        f"{family}/{entry.file} seed {seed} (reproduce: python3 -m sep2gw sim "
        f"sep2gw/simserver/scenarios/{entry.file} --seed {seed}):\n"
        + "\n".join(f"  {v.invariant}: {v.detail}" for v in violations)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_seed_gives_a_byte_identical_log_in_every_family(family: str, pki: Path) -> None:
    _, entry, seed = next(run for run in RUNS if run[0] == family)

    def log_hash() -> str:
        result = run_world(entry.scenario, seed=seed, site=pki)
        return hashlib.sha256(result.log_bytes()).hexdigest()

    first = LOG_HASHES.get((entry.file, seed)) or log_hash()
    assert log_hash() == first, f"{family}/{entry.file} seed {seed}: the log differs"
