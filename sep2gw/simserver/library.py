"""The scenario library (issue 8, scope 2): TOML scenarios shipped as package data under
``sep2gw/simserver/scenarios/``, each naming the PROTOCOL.md rules it covers and its family.

Every file opens with comment lines: a description, then ``# rules: 4.2 4.6 2.8`` (``4.N`` is §4
rule N, ``2.N`` §2 step N, ``3`` §3) and ``# family: events``. The family groups scenarios for CI
seeds (each family runs over at least 20 seeds, see ``tests/sep2gw/test_library_worlds.py``).

The ``conformance`` family walks the intents of the published CSIP-AUS client test procedures,
one file per intent (``conformance_*.toml``), each with the audits a strict test server runs
(``[expect.audit]``); its files also carry ``# intent: <one line>``, the procedure intent that
``sep2gw sim --conformance`` prints with PASS or FAIL.
"""

from __future__ import annotations

import difflib
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

import msgspec

from sep2gw.simserver.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "CONFORMANCE",
    "FAMILIES",
    "FLEET_FAMILY",
    "LibraryEntry",
    "LibraryScenario",
    "catalogue",
    "library",
    "library_files",
    "load_library_scenario",
    "parse_description",
    "parse_header",
    "parse_intent",
    "resolve_scenario",
]

#: The families, in the order CI runs them.
FAMILIES: Final = (
    "events",
    "supersession",
    "cancel",
    "defaults",
    "discovery",
    "telemetry",
    "faults",
    "conformance",
    "notifications",
)

#: Fleet scenarios (aggregator mode): run by ``sep2gw.fleet_world``, not as single-site worlds
#: (``sep2gw sim NAME`` runs them as fleets; the single-site families and the swarm leave them).
FLEET_FAMILY: Final = "fleet"

#: The family ``sep2gw sim --conformance`` runs; its files name their intent.
CONFORMANCE: Final = "conformance"

_RULES = re.compile(r"^#\s*rules:\s*(?P<rules>.+)$", re.MULTILINE)
_FAMILY = re.compile(r"^#\s*family:\s*(?P<family>\S+)\s*$", re.MULTILINE)
_INTENT = re.compile(r"^#\s*intent:\s*(?P<intent>\S.*?)\s*$", re.MULTILINE)
_RULE = re.compile(r"[2345](\.[0-9]{1,2})?")
_RULE_RANGE: Final = {"2": range(1, 11), "4": range(1, 17)}


class LibraryScenario(msgspec.Struct, frozen=True, kw_only=True):
    """One library file: its scenario, the rules its header names and its family."""

    file: str
    scenario: Scenario
    rules: frozenset[str]
    family: str
    intent: str = ""  # the procedure intent (conformance family)


def library_files() -> list[Traversable]:
    """The library's TOML files, sorted by name."""
    folder = resources.files("sep2gw.simserver") / "scenarios"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


def parse_header(text: str, *, source: str) -> tuple[frozenset[str], str]:
    """The ``# rules:`` and ``# family:`` of a library file; :class:`ScenarioError` names what is
    missing or wrong."""
    problems: list[str] = []
    rules_line = _RULES.search(text)
    family_line = _FAMILY.search(text)
    rules: set[str] = set()
    if rules_line is None:
        problems.append("header: no '# rules:' line naming the PROTOCOL.md rules covered")
    else:
        for token in rules_line["rules"].split():
            if not _RULE.fullmatch(token):
                problems.append(f"header rules: {token!r} is not a rule (4.N, 2.N, 3 or 5)")
                continue
            section, _, number = token.partition(".")
            allowed = _RULE_RANGE.get(section)
            if allowed is not None and (not number or int(number) not in allowed):
                problems.append(f"header rules: {token!r} is not a rule of PROTOCOL.md §{section}")
                continue
            rules.add(token)
    family = ""
    if family_line is None:
        problems.append(
            f"header: no '# family:' line (one of {', '.join((*FAMILIES, FLEET_FAMILY))})"
        )
    elif family_line["family"] not in (*FAMILIES, FLEET_FAMILY):
        problems.append(
            f"header family: {family_line['family']!r} is not one of "
            f"{', '.join((*FAMILIES, FLEET_FAMILY))}"
        )
    else:
        family = family_line["family"]
    if problems:
        raise ScenarioError(source, problems)
    return frozenset(rules), family


def parse_intent(text: str, family: str, *, source: str) -> str:
    """The ``# intent:`` line of a library file; required in the conformance family."""
    line = _INTENT.search(text)
    if line is None and family == CONFORMANCE:
        raise ScenarioError(
            source, ["header: no '# intent:' line (every conformance scenario names its intent)"]
        )
    return "" if line is None else line["intent"]


def load_library_scenario(file: Traversable) -> LibraryScenario:
    text = file.read_text(encoding="utf-8")
    source = f"library/{file.name}"
    rules, family = parse_header(text, source=source)
    intent = parse_intent(text, family, source=source)
    scenario = parse_scenario(text, source=source)
    return LibraryScenario(
        file=file.name, scenario=scenario, rules=rules, family=family, intent=intent
    )


def library() -> list[LibraryScenario]:
    """Every library scenario, parsed and checked (raises on the first bad file)."""
    return [load_library_scenario(f) for f in library_files()]


class LibraryEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A library scenario as ``sep2gw sim --list`` shows it: its name (the file's stem, which
    ``sep2gw sim NAME`` takes), family and one-line description; not parsed."""

    name: str
    family: str
    description: str


def parse_description(text: str) -> str:
    """The description a library file opens with (its comment lines before ``# rules:``), joined
    into one line; its first sentence is what ``sim --list`` shows."""
    lines: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#") or _RULES.match(line):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(part for part in lines if part)


#: ``sim --list`` keeps each line readable on a terminal.
_LIST_CHARS: Final = 100


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.:;])(\s|$)", text)
    sentence = match.group(1).rstrip(":;") if match else text
    return sentence if len(sentence) <= _LIST_CHARS else sentence[: _LIST_CHARS - 1] + "…"


def catalogue() -> list[LibraryEntry]:
    """Every library scenario's name, family and first sentence, sorted by name (headers only)."""
    entries = []
    for file in library_files():
        text = file.read_text(encoding="utf-8")
        family = _FAMILY.search(text)
        entries.append(
            LibraryEntry(
                name=file.name.removesuffix(".toml"),
                family="" if family is None else family["family"],
                description=_first_sentence(parse_description(text)),
            )
        )
    return entries


def resolve_scenario(given: str) -> Scenario:
    """A scenario named on the command line: a TOML file, or a library scenario by name
    (``cancel_active``, as ``sep2gw sim --list`` shows; ``.toml`` optional). A file that exists
    wins over a library name; a path that does not exist and is no library name is refused,
    naming the closest library names."""
    path = Path(given)
    if path.exists() or path.parent != Path(".") or given.startswith("."):
        return load_scenario(path)
    names = {f.name.removesuffix(".toml"): f for f in library_files()}
    name = given.removesuffix(".toml")
    if name in names:
        return load_library_scenario(names[name]).scenario
    close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else "`sep2gw sim --list` lists the library's scenarios"
    )
    raise ScenarioError(given, [f"no such file, and no library scenario of that name: {hint}"])
