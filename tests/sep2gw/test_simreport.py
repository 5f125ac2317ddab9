"""Scenario TOML written back by the report module parses to the same scenario (a saved swarm
scenario must reproduce its world), and the reproduce command is exact."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

from sep2gw.simreport import reproduce_command, scenario_toml
from sep2gw.simserver import demo_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[2]


def swarm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("swarm", ROOT / "benchmarks" / "swarm.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_swarm_scenario_survives_the_toml_round_trip() -> None:
    generate = swarm().random_scenario
    rng = random.Random(2030)
    kinds: set[str] = set()
    for index in range(150):
        scenario = generate(rng, index)
        kinds |= {type(a).__name__ for a in scenario.actions}
        assert parse_scenario(scenario_toml(scenario), source=f"swarm {index}") == scenario
    # Every fault kind of the plan is drawn (and so round-trips).
    assert {
        "FailRequests",
        "SlowResponses",
        "TlsFail",
        "ModbusTimeout",
        "BatteryFault",
        "ClockSkew",
        "CrashGateway",
    } <= kinds


def test_the_demo_survives_the_toml_round_trip() -> None:
    assert parse_scenario(scenario_toml(demo_scenario()), source="demo") == demo_scenario()


def test_the_reproduce_command_names_the_scenario_seed_and_site() -> None:
    assert reproduce_command(Path("a b.toml"), 7) == "python3 -m sep2gw sim 'a b.toml' --seed 7"
    assert reproduce_command(None, 3, Path("/s")) == "python3 -m sep2gw sim --seed 3 --site /s"
