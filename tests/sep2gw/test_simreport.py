"""Scenario TOML written back by the report module parses to the same scenario (a saved swarm
scenario must reproduce its world), and the reproduce command is exact."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from events.hardware_events import TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.simreport import energy_curtailed_kwh, reproduce_command, scenario_toml
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


def test_energy_curtailed_is_the_shortfall_against_self_consumption_over_each_sample() -> None:
    """The summary's figure is computed from the log's samples: the battery would have covered the
    2 kW load (capped at its 1.5 kW discharge rating) but delivered 500 W, for 3 periods of 5 s;
    an output at or above what it would have done on its own counts nothing, and a gap in the
    samples counts at most 10 s."""
    t0 = 1_764_115_200.0
    store = MemoryEventStore(CATALOGUE)
    for t, der in ((0, 500.0), (5, 500.0), (10, 500.0), (15, 500.0), (20, 1600.0), (80, 1500.0)):
        sample = TelemetrySampled(at_s=t0 + t, site_w=0.0, der_w=der)
        store.append_events("hardware", [sample], server_time=t0 + t, monotonic=float(t))
    battery = SimpleNamespace(max_w=5000.0, max_charge_w=5000.0, max_discharge_w=1500.0)
    sim = SimpleNamespace(battery=battery, load_w=lambda t: 2000.0, pv_w=lambda t: 0.0)
    result = SimpleNamespace(battery=sim, store=store)
    expected_wh = 1000.0 * 3 * 5 / 3600  # 1.5 kW available - 0.5 kW delivered, 15 s
    assert energy_curtailed_kwh(result) == pytest.approx(expected_wh / 1000)  # type: ignore[arg-type]
    assert energy_curtailed_kwh(SimpleNamespace(battery=None, store=store)) == 0.0  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", ["0", "-5", "inf", "nan"])
def test_the_swarm_refuses_a_budget_that_is_not_positive_and_finite(
    budget: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zero budget printed {"worlds": 0, "violations": 0}, which reads as a clean swarm."""
    with pytest.raises(SystemExit) as exit_:
        swarm().main(["--budget", budget])
    assert exit_.value.code == 2
    assert "--budget must be positive and finite" in capsys.readouterr().err


def test_the_summary_shows_the_servers_subscription_audit_only_when_there_was_one() -> None:
    import msgspec

    from sep2gw.simreport import WorldSummary

    quiet = WorldSummary(
        scenario="s",
        seed=1,
        sim_seconds=60,
        boots=1,
        responses={},
        energy_curtailed_kwh=0.0,
        polls=1,
        posts=0,
        records=1,
        head_hash="00" * 32,
        invariants_held={},
        violations=[],
    )
    assert not any("subscriptions" in line for line in quiet.lines())
    counts = {
        "accepted": 3,
        "refused": 1,
        "made": 5,
        "delivered": 6,
        "dropped": 1,
        "duplicated": 2,
        "gave_up": 0,
    }
    busy = msgspec.structs.replace(quiet, notifications=counts)
    assert (
        "  subscriptions: 3 accepted, 1 refused; notifications: 5 made, 6 delivered, 1 dropped, "
        "2 duplicated, 0 given up"
    ) in busy.lines()
