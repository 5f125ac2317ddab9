"""Swarm testing of the gateway (issue 8, scope 6): random scenarios over random seeds.

    python3 benchmarks/swarm.py --budget 60 [--seed 1] [--site DIR] [--out DIR]

Each world draws a scenario — programs with defaults, controls (some superseding, some cancelled),
default changes, poll-rate changes and faults of every kind of the fault plan (5xx windows, resets,
slow answers, TLS failures, Modbus timeouts, battery trips, clock steps, crashes) — and a seed, runs
it with the continuous invariant monitor, and goes on until the budget (real seconds) is spent.
Programs may also be removed from and restored to the FunctionSetAssignments, the postRate may
change, and controls may carry opModMaxLimW, opModEnergize, opModConnect and rampTms.
Every scenario that broke an invariant is saved as TOML under ``--out`` and its failure report
(with the command that reproduces it) printed. The last line is JSON: ``{"worlds": W,
"violations": V}``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sep2gw.commands.sim import default_site, ensure_site  # noqa: E402
from sep2gw.simreport import failure_report, scenario_toml  # noqa: E402
from sep2gw.simserver import Scenario, parse_scenario  # noqa: E402
from sep2gw.world import check, run_world  # noqa: E402

__all__ = ["random_scenario"]

_MODES = ("opModExpLimW", "opModImpLimW", "opModGenLimW", "opModLoadLimW", "opModTargetW")


def _modes(rng: random.Random) -> dict[str, float | bool]:
    chosen = rng.sample(_MODES, rng.randint(1, 2))
    modes: dict[str, float | bool] = {}
    for name in chosen:
        if name == "opModTargetW":
            modes[name] = float(rng.choice((-3000, -1000, 0, 1000, 2500)))
        else:
            modes[name] = float(rng.choice((0, 500, 1500, 3000, 5000)))
    if rng.random() < 0.1:
        modes["opModMaxLimW"] = float(rng.choice((0, 50, 100)))
    if rng.random() < 0.05:
        modes["opModEnergize"] = rng.random() < 0.5
    if rng.random() < 0.05:
        modes["opModConnect"] = rng.random() < 0.5
    if rng.random() < 0.1:
        modes["rampTms"] = float(rng.choice((5, 30, 120)))
    return modes


def random_scenario(rng: random.Random, index: int) -> Scenario:
    """A short random scenario (a few simulated minutes) of controls and faults."""
    poll = rng.choice((10, 15, 30, 60))
    length = rng.randint(300, 900)
    lines = [
        f'name = "swarm-{index}"',
        "[server]",
        f"poll_rate_s = {poll}",
        "post_rate_s = 60",
    ]
    programs = rng.randint(1, 3)
    for p in range(programs):
        lines += ["[[programs]]", f'id = "p{p}"', f"primacy = {10 * (p + 1)}"]
        if rng.random() < 0.6:
            lines.append(f"default = {_inline(_modes(rng))}")
    actions: list[str] = []
    mrids: list[tuple[str, int]] = []
    for c in range(rng.randint(1, 6)):
        at = rng.randint(0, length // 2)
        mrid = f"5A{index % 0xFFFF:04X}{c:02X}"
        mrids.append((mrid, at))
        extra = ""
        if rng.random() < 0.2:
            extra = f"\nrandomize_start_s = {rng.choice((-30, 30, 60))}"
        actions.append(
            f'kind = "create_control"\nat_s = {at}\nmrid = "{mrid}"\nprogram = "p{rng.randrange(programs)}"\n'
            f"start_s = {at + rng.randint(0, 200)}\nduration_s = {rng.randint(30, 300)}\n"
            f"modes = {_inline(_modes(rng))}{extra}"
        )
    for mrid, at in mrids:
        if rng.random() < 0.25:
            actions.append(
                f'kind = "cancel_control"\nat_s = {at + rng.randint(1, 300)}\nmrid = "{mrid}"'
                + ("\nrandomized = true" if rng.random() < 0.3 else "")
            )
    if rng.random() < 0.3:
        actions.append(
            f'kind = "change_default"\nat_s = {rng.randint(0, length)}\n'
            f'program = "p{rng.randrange(programs)}"\nmodes = {_inline(_modes(rng))}'
        )
    if rng.random() < 0.2:
        actions.append(
            f'kind = "set_poll_rate"\nat_s = {rng.randint(0, length)}\n'
            f"seconds = {rng.choice((10, 20, 60))}"
        )
    if programs > 1 and rng.random() < 0.15:
        gone = rng.randint(0, length)
        program = f"p{rng.randrange(programs)}"
        actions.append(f'kind = "remove_program"\nat_s = {gone}\nprogram = "{program}"')
        if rng.random() < 0.6:
            back = gone + rng.randint(10, 300)
            actions.append(f'kind = "restore_program"\nat_s = {back}\nprogram = "{program}"')
    if rng.random() < 0.1:
        actions.append(
            f'kind = "set_post_rate"\nat_s = {rng.randint(0, length)}\n'
            f"seconds = {rng.choice((60, 120, 300))}"
        )
    for _ in range(rng.randint(1, 4)):
        actions.append(_fault(rng, length))
    body = "\n".join(lines) + "\n" + "".join(f"\n[[actions]]\n{a}\n" for a in actions)
    return parse_scenario(body, source=f"swarm scenario {index}")


def _fault(rng: random.Random, length: int) -> str:
    at = rng.randint(5, length)
    kind = rng.choice(
        (
            "fail",
            "reset",
            "slow",
            "tls_fail",
            "modbus_timeout",
            "battery_fault",
            "clock_skew",
            "crash",
        )
    )
    window = rng.randint(5, 120)
    if kind == "fail":
        return (
            f'kind = "fail"\nat_s = {at}\nduration_s = {window}\nstatus = {rng.choice((500, 503))}'
        )
    if kind == "reset":
        return f'kind = "fail"\nat_s = {at}\nduration_s = {window}\nreset = true'
    if kind == "slow":
        return (
            f'kind = "slow"\nat_s = {at}\nduration_s = {window}\ndelay_s = {rng.choice((1, 5, 20))}'
        )
    if kind == "clock_skew":
        return f'kind = "clock_skew"\nat_s = {at}\nseconds = {rng.choice((-120, -5, 5, 30, 300))}'
    if kind == "crash":
        return f'kind = "crash"\nat_s = {at}\ndown_s = {rng.choice((0, 0, 5, 60))}'
    return f'kind = "{kind}"\nat_s = {at}\nduration_s = {window}'


def _inline(modes: dict[str, float | bool]) -> str:
    def text(value: float | bool) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else f"{value:g}"

    return "{ " + ", ".join(f"{k} = {text(v)}" for k, v in modes.items()) + " }"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, required=True, help="real seconds to spend")
    parser.add_argument("--seed", type=int, default=None, help="the swarm's own seed")
    parser.add_argument("--site", type=Path, default=None, help="PKI folder (sep2gw sim --site)")
    parser.add_argument(
        "--out", type=Path, default=Path("swarm-failures"), help="where failing scenarios go"
    )
    args = parser.parse_args(argv)
    if not 0 < args.budget < math.inf:
        # A budget of 0 or less printed {"worlds": 0, "violations": 0}: a pass with no work done.
        parser.error(f"--budget must be positive and finite, got {args.budget:g}")
    swarm_seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(swarm_seed)
    site = args.site or default_site()
    ensure_site(site)
    print(f"swarm seed {swarm_seed}, budget {args.budget:g} s")
    deadline = time.perf_counter() + args.budget
    worlds = violations = 0
    sim_s = 0.0
    while time.perf_counter() < deadline:
        index = worlds
        scenario = random_scenario(rng, index)
        seed = rng.getrandbits(31)
        result = run_world(scenario, seed=seed, site=site)
        worlds += 1
        sim_s += result.seconds
        found = check(result)
        if found:
            violations += 1
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"swarm-{swarm_seed}-{index}.toml"
            path.write_text(scenario_toml(scenario))
            print(failure_report(result, found[0], scenario_path=path, site=args.site))
        else:
            kinds = sorted({type(a).__name__ for a in scenario.actions})
            print(f"world {index} seed {seed}: ok ({result.boots} boots; {', '.join(kinds)})")
    print(f"{worlds} worlds ({sim_s / 3600:.1f} simulated hours), {violations} with violations")
    print(json.dumps({"worlds": worlds, "violations": violations}))
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
