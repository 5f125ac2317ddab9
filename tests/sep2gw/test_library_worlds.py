"""Every library scenario runs as a seeded world: the invariants hold (continuously and after the
run, ``sep2gw.world.check``) and so does every outcome its ``[expect]`` section demands
(``sep2gw.expect.check_expectations``). CI runs each family over at least 20 seeds (issue 8,
scope 3): the seeds of a family are dealt round-robin to its scenarios, so each scenario runs at
least once and the family as a whole over ``SEEDS_PER_FAMILY`` distinct seeds. Same seed ⇒
byte-identical log is checked once per family against the log of its first world.

Issue 18 point 1 (every scenario under each CSIP-AUS version): the versions are dealt over the same
runs, so each family runs under v1.2, v1.3-beta/storage and v1.3 and a scenario's successive runs
move through them (the k-th run of a family's j-th scenario is served in version ``(j + k) mod 3``)
at no extra cost; the full matrix is ``sep2gw sim --csipaus-version all`` (and ``--conformance``).
A scenario that names its own version or service discovery (the ``version_*`` files) is served as
it says. The strict server validates every request in every run, whatever the version."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Final

import pytest

from sep2gw.expect import check_expectations
from sep2gw.simserver import Scenario, ScenarioError, under_version
from sep2gw.simserver.library import FAMILIES, FLEET_FAMILY, LibraryScenario, library
from sep2gw.world import check, run_world
from transport.sep2 import CSIPAUS_NS
from transport.sep2.versions import CSIPAUS_VERSIONS

SEEDS_PER_FAMILY: Final = 20
LIBRARY: Final = library()


def family_runs() -> list[tuple[str, LibraryScenario, int, str]]:
    """(family, scenario, seed, CSIP-AUS version): family ``k`` (from 1) uses seeds
    ``1000 k + i``; the versions are dealt as the module text says."""
    runs: list[tuple[str, LibraryScenario, int, str]] = []
    for k, family in enumerate(FAMILIES, start=1):
        members = [entry for entry in LIBRARY if entry.family == family]
        for i in range(max(SEEDS_PER_FAMILY, len(members))):
            j, turn = i % len(members), i // len(members)
            version = CSIPAUS_VERSIONS[(j + turn) % len(CSIPAUS_VERSIONS)].name
            runs.append((family, members[j], 1000 * k + i, version))
    return runs


def served(entry: LibraryScenario, version: str) -> Scenario:
    """The scenario served in ``version``, unless it names its own version or discovery (or
    cannot be served in it: a control naming an element that version lacks)."""
    quirks = entry.scenario.quirks
    if quirks.csipaus_ns != CSIPAUS_NS or quirks.well_known != "absent":
        return entry.scenario
    try:
        return under_version(entry.scenario, version)
    except ScenarioError:
        return entry.scenario


RUNS: Final = family_runs()
#: (file, seed) → SHA-256 of the world's log, filled by the world test (one process, in order).
LOG_HASHES: dict[tuple[str, int], str] = {}


def test_each_family_runs_over_at_least_20_seeds_and_every_scenario_runs() -> None:
    seeds: dict[str, set[int]] = defaultdict(set)
    versions: dict[str, set[str]] = defaultdict(set)
    for family, entry, seed, version in RUNS:
        seeds[family].add(seed)
        versions[family].add(served(entry, version).quirks.csipaus_ns)
    assert set(seeds) == set(FAMILIES)
    assert all(len(s) >= SEEDS_PER_FAMILY for s in seeds.values())
    # the fleet family runs as fleets, in tests/sep2gw/test_fleet_world.py
    single_site = {entry.file for entry in LIBRARY if entry.family != FLEET_FAMILY}
    assert {entry.file for _, entry, _, _ in RUNS} == single_site
    every = {v.namespace for v in CSIPAUS_VERSIONS}
    assert all(served_in == every for served_in in versions.values()), versions


@pytest.mark.parametrize(
    ("family", "entry", "seed", "version"),
    [pytest.param(*run, id=f"{run[0]}-{run[1].scenario.name}-{run[2]}-{run[3]}") for run in RUNS],
)
def test_library_world_keeps_invariants_and_expectations(
    family: str, entry: LibraryScenario, seed: int, version: str, pki: Path
) -> None:
    scenario = served(entry, version)
    result = run_world(scenario, seed=seed, site=pki)
    # The strict server is on in every world, whatever the version (issue 18 point 1).
    assert result.server.validator is not None, result.server.validation_off
    assert result.server.validator.csipaus_ns == scenario.quirks.csipaus_ns
    LOG_HASHES[(entry.file, seed)] = hashlib.sha256(result.log_bytes()).hexdigest()
    violations = check(result) + check_expectations(scenario, result)
    served_in = "" if scenario is entry.scenario else f" --csipaus-version {version}"
    assert not violations, (
        f"{family}/{entry.file} seed {seed} (reproduce: python3 -m sep2gw sim "
        f"sep2gw/simserver/scenarios/{entry.file} --seed {seed}{served_in}):\n"
        + "\n".join(f"  {v.invariant}: {v.detail}" for v in violations)
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_the_same_seed_gives_a_byte_identical_log_in_every_family(family: str, pki: Path) -> None:
    _, entry, seed, version = next(run for run in RUNS if run[0] == family)

    def log_hash() -> str:
        result = run_world(served(entry, version), seed=seed, site=pki)
        return hashlib.sha256(result.log_bytes()).hexdigest()

    first = LOG_HASHES.get((entry.file, seed)) or log_hash()
    assert log_hash() == first, f"{family}/{entry.file} seed {seed}: the log differs"
