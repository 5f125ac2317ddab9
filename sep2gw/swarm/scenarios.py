"""The swarm's random scenarios (issue 8, scope 6): programs with defaults, controls (some
superseding, some cancelled), default changes, poll- and post-rate changes, programs removed and
restored, and faults of every kind of the fault plan.

A scenario is a function of the generator's draws alone, so a world is a pure function of
(scenario, seed, code version). Coverage guidance (issue 21) enters as ``fault_weights``: how likely
each fault family is to be drawn, so the next worlds go where coverage is thin.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final

from sep2gw.simserver import FailRequests, Scenario, parse_scenario

__all__ = ["FAULT_FAMILIES", "fault_families", "random_scenario"]

#: Every fault family the generator draws from (``fail`` is a 5xx window, ``reset`` a window of
#: dropped connections; the others are the scenario action kinds of the same name).
FAULT_FAMILIES: Final = (
    "fail",
    "reset",
    "slow",
    "tls_fail",
    "modbus_timeout",
    "battery_fault",
    "clock_skew",
    "crash",
)

_MODES: Final = ("opModExpLimW", "opModImpLimW", "opModGenLimW", "opModLoadLimW", "opModTargetW")


def fault_families(scenario: Scenario) -> list[str]:
    """The fault families a scenario exercises, each once, in ``FAULT_FAMILIES`` order."""
    found: set[str] = set()
    for action in scenario.actions:
        kind = str(action.__struct_config__.tag)
        if isinstance(action, FailRequests) and action.reset:
            kind = "reset"
        if kind in FAULT_FAMILIES:
            found.add(kind)
    return [family for family in FAULT_FAMILIES if family in found]


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


def random_scenario(
    rng: random.Random, index: int, *, fault_weights: Mapping[str, float] | None = None
) -> Scenario:
    """A short random scenario (a few simulated minutes) of controls and faults.

    ``fault_weights``: relative weight of each fault family (``FAULT_FAMILIES``); ``None`` draws
    them uniformly (the same draws as before coverage guidance existed).
    """
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
        actions.append(_fault(rng, length, fault_weights))
    body = "\n".join(lines) + "\n" + "".join(f"\n[[actions]]\n{a}\n" for a in actions)
    return parse_scenario(body, source=f"swarm scenario {index}")


def _fault(rng: random.Random, length: int, weights: Mapping[str, float] | None) -> str:
    at = rng.randint(5, length)
    if weights is None:
        kind = rng.choice(FAULT_FAMILIES)
    else:
        kind = rng.choices(FAULT_FAMILIES, [weights.get(f, 1.0) for f in FAULT_FAMILIES])[0]
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
