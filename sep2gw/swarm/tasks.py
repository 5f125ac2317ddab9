"""The stream of worlds a swarm runs: a function of the swarm's seed and the coverage it starts
from, so a swarm run again with the same seed and coverage file runs the same worlds."""

from __future__ import annotations

import random
from collections.abc import Iterator

from sep2gw.simreport import scenario_toml
from sep2gw.swarm.coverage import Coverage
from sep2gw.swarm.scenarios import FAULT_FAMILIES, random_scenario
from sep2gw.swarm.work import WorldTask, code_version

__all__ = ["RANDOM_FAMILY", "world_tasks"]

#: The scenario family of the generator's worlds (library worlds carry their library family).
RANDOM_FAMILY = "random"


def world_tasks(
    seed: int, coverage: Coverage, *, library: bool = False, first_index: int = 0
) -> Iterator[WorldTask]:
    """Worlds without end: random scenarios, their fault families drawn with the coverage's weights
    (thin families more often); with ``library``, the scenario library's files instead, the least
    explored first, each on a fresh seed."""
    rng = random.Random(seed)
    version = code_version()
    if not library:
        weights = coverage.fault_weights(FAULT_FAMILIES)
        index = first_index
        while True:
            scenario = random_scenario(rng, index, fault_weights=weights)
            yield WorldTask(
                index=index,
                family=RANDOM_FAMILY,
                scenario_toml=scenario_toml(scenario),
                seed=rng.getrandbits(31),
                code_version=version,
            )
            index += 1
    from sep2gw.simserver.library import FLEET_FAMILY
    from sep2gw.simserver.library import library as load_library

    # fleet scenarios run as fleets (sep2gw.fleet_world), not as the single-site worlds run here
    entries = {
        entry.scenario.name: entry for entry in load_library() if entry.family != FLEET_FAMILY
    }
    explored = dict(coverage.scenarios)
    index = first_index
    while True:
        name = min(sorted(entries), key=lambda n: explored.get(n, 0))
        explored[name] = explored.get(name, 0) + 1
        entry = entries[name]
        yield WorldTask(
            index=index,
            family=entry.family,
            scenario_toml=scenario_toml(entry.scenario),
            seed=rng.getrandbits(31),
            code_version=version,
        )
        index += 1
